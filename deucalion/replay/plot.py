"""Plot a backtest: one panel per series with its values, its scores, the alerts and the
labelled windows. Needs matplotlib (``pip install deucalion[plot]``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deucalion.errors import ConfigError
from deucalion.replay.evaluate import WindowsLike, as_windows
from deucalion.replay.files import create_private, why_not_written
from deucalion.replay.results import BacktestResult, alert_about, names_series

__all__ = ["plot"]

#: More panels than this would not be readable in one picture.
MAX_PANELS = 8


def _formats() -> list[str]:
    """The picture formats matplotlib writes, by a path's suffix (png, svg, pdf, jpg, ...)."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise ConfigError("plotting needs matplotlib: pip install deucalion[plot]") from None
    return sorted(FigureCanvasBase.get_supported_filetypes())


def check_plot_path(path: str | Path) -> None:
    """Refuse a plot path whose suffix names no format matplotlib writes (none: PNG), or a
    plot without matplotlib, before the backtest it would draw has run (and before an empty
    file is left behind)."""
    suffix = Path(path).suffix[1:].lower()
    formats = _formats()
    if suffix and suffix not in formats:
        raise ConfigError(
            f"cannot draw {path}: a plot's format is its name's suffix, one of "
            f"{', '.join(formats)}; not .{suffix} (name it out.png)"
        )


def _peaks(result: BacktestResult) -> dict[str, float]:
    """Each scored series' highest finite score."""
    return {
        name: max((s for _, s in points if math.isfinite(s)), default=-math.inf)
        for name, points in result.scores.items()
    }


def top_scored(result: BacktestResult, count: int = 6) -> list[str]:
    """The series that scored highest, best first: the series the observer scored (its
    series scores, or alerts naming metric and series); when it scored only whole targets,
    the targets that scored highest (a key naming a target's series)."""
    peaks = _peaks(result)
    series = [n for n in peaks if " " in n] or list(peaks)
    return sorted(series, key=lambda n: (-peaks[n], n))[:count]


def panels(result: BacktestResult, series: Sequence[str] | None = None) -> list[str]:
    """The series ``plot`` draws, one a panel, at most ``MAX_PANELS``: those ``series`` names
    (a key naming a target: its series that scored highest first), else the kept series
    that scored highest first."""
    if series is None:
        ranked = top_scored(result, len(result.scores))
        series = sorted(
            result.values,
            key=lambda n: next(
                (i for i, key in enumerate(ranked) if names_series(key, n)), len(ranked)
            ),
        )
    names: list[str] = []
    peaks = _peaks(result)
    for key in series:
        if key in result.values:
            names.append(key)
        else:
            # A key naming a target names all its series (a preset's signals and the raw
            # series they came from): those that scored highest first, not the alphabet's.
            matches = [n for n in result.values if names_series(key, n)]
            names.extend(sorted(matches, key=lambda n: (-peaks.get(n, -math.inf), n)))
    return list(dict.fromkeys(names))[:MAX_PANELS]


def _dates(times: Sequence[float]) -> list[datetime]:
    return [datetime.fromtimestamp(t, UTC) for t in times]


def plot(
    result: BacktestResult,
    path: str | Path,
    *,
    windows: WindowsLike | None = None,
    series: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Draw ``result`` to ``path`` (PNG, SVG, PDF, JPEG, ... by its suffix, as matplotlib
    writes them); returns the path.

    ``series`` chooses the panels among the series whose values the result kept (a key may
    name a target, as ``names_series`` reads keys; default: the kept series that scored
    highest first, at most ``MAX_PANELS``). Each panel shows the values (left axis), the
    score (right axis), alerts about the series' target as red spans and labelled
    ``windows`` as green bands: a labels file's path, or ``{series: [(start, end), ...]}``
    with times in Unix seconds, ISO 8601 or datetimes, as a labels file has them
    (``deucalion.replay.evaluate.as_windows``).
    """
    check_plot_path(path)
    labelled = as_windows(windows) if windows is not None else {}
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plotting needs matplotlib: pip install deucalion[plot]") from None
    names = panels(result, series)
    if not names and series and (result.values or result.scores):
        # A backtest keeps the values of the series it was asked for only: when those names
        # matched nothing, the series it scored are what there is to name.
        there = sorted(result.values) or top_scored(result, len(result.scores))
        listed = ", ".join(there[:3]) + (", ..." if len(there) > 3 else "")
        raise ConfigError(
            f"nothing to plot: {'; '.join(series)} names none of the series the backtest "
            f"{'kept' if result.values else 'scored'} ({listed}): name them as outputs do "
            "('target metric{labels}', 'metric{labels}', a metric or a target)"
        )
    if not names:
        raise ConfigError(
            "nothing to plot: the backtest kept the values of no series (name "
            "them with keep_series=, or --series)"
        )
    figure, axes = plt.subplots(
        len(names), 1, figsize=(11, 2.3 * len(names) + 0.6), sharex=True, squeeze=False
    )
    last = result.last_time or 0.0
    first = min((t for n in names for t, _ in result.values[n][:1]), default=last)
    # An alert of one step over days of history would be a span a fraction of a pixel wide:
    # an alert is drawn at least a 300th of the time shown, and marked by a line.
    least = max(1.0, (last - first) / 300)
    for ax, name in zip(axes[:, 0], names, strict=True):
        points = result.values[name]
        ax.plot(
            _dates([t for t, _ in points]),
            [v for _, v in points],
            color="tab:blue",
            linewidth=1.0,
            label="value",
        )
        ax.set_title(name, fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
        target = name.partition(" ")[0]
        score = result.scores.get(name) or result.scores.get(target)
        if score:
            twin: Any = ax.twinx()
            # Scores given only now and then (an alert's) are points, not a line across gaps.
            sparse = len(score) < 0.9 * len(points)
            twin.plot(
                _dates([t for t, _ in score]),
                [s for _, s in score],
                color="tab:orange",
                linewidth=0 if sparse else 0.8,
                marker="o" if sparse else "",
                markersize=3,
                alpha=0.8,
                label="score",
            )
            twin.set_ylim(bottom=0)
            twin.set_ylabel("score", fontsize=8, color="tab:orange")
            twin.tick_params(labelsize=7, colors="tab:orange")
        for alert in result.alerts:
            if alert_about(alert.labels, alert.target, name):
                end = alert.end if alert.end is not None else last
                shown = _dates([alert.start, max(end, alert.start + least)])
                ax.axvspan(shown[0], shown[1], color="tab:red", alpha=0.3, linewidth=0)
                if end - alert.start < least:
                    ax.axvline(shown[0], color="tab:red", alpha=0.7, linewidth=1.0)
        for key, spans in labelled.items():
            if names_series(key, name):
                for w_start, w_end in spans:
                    band = _dates([w_start, w_end])
                    ax.axvspan(
                        band[0],
                        band[1],
                        facecolor="none",
                        edgecolor="tab:green",
                        hatch="//",
                        alpha=0.6,
                        linewidth=0.8,
                    )
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color="tab:blue", label="value"),
        Line2D([], [], color="tab:orange", label="score (right axis)"),
        Patch(color="tab:red", alpha=0.3, label="alert firing"),
        Patch(facecolor="none", edgecolor="tab:green", hatch="//", label="labelled window"),
    ]
    figure.legend(handles=handles, loc="upper right", fontsize=8, ncol=4, frameon=False)
    bottom = axes[-1, 0].xaxis
    bottom.set_major_formatter(
        mdates.ConciseDateFormatter(  # type: ignore[no-untyped-call]
            bottom.get_major_locator()
        )
    )
    figure.suptitle(title or f"backtest of {result.observer}", x=0.01, ha="left", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    out = Path(path)
    try:
        with create_private(out) as file:
            figure.savefig(file, dpi=100, format=out.suffix[1:].lower() or "png")
    except OSError as exc:
        raise ConfigError(f"cannot write the plot {out}: {why_not_written(exc)}") from None
    finally:
        plt.close(figure)
    return out

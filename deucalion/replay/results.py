"""What a backtest produces: alert spans, scores and values per series, outputs.

Series are named ``target metric{labels}`` (``series_name``) in outputs, labels and plots; a
key may also name a target or a ``metric{labels}`` of any target (``names_series``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from deucalion._progress import format_seconds
from deucalion._redact import redact_url
from deucalion.errors import ConfigError
from deucalion.replay.files import create_private, why_not_written

__all__ = ["AlertSpan", "BacktestResult", "RowWriter", "alert_about", "names_series", "series_name"]


def series_name(target: str, metric: str | None = None, series: str | None = None) -> str:
    """How outputs, labelled windows and plots name a series: ``target metric{labels}``, or
    the target alone for a score about a whole target."""
    if metric is None:
        return target
    return f"{target} {metric}{series or '{}'}"


#: A metric's name, as a key naming every series of that metric (``latency_p99``).
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def names_series(key: str, name: str) -> bool:
    """Whether ``key`` (a label's or option's name for a series) names the output series
    ``name``: equal to it, its target, its ``metric{labels}``, or its metric's name. A key
    that is a file's path (NAB's labels say ``category/file.csv``) names the target that is
    that file's name (a CSV file replayed from its own directory)."""
    if key == name:
        return True
    target, _, series = name.partition(" ")
    if key == target or (bool(series) and key == series):
        return True
    if series and _METRIC_NAME.fullmatch(key):
        return series.partition("{")[0] == key
    return "/" in key and "/" not in target and key.rpartition("/")[2] == target


def alert_about(labels: Mapping[str, str], target: str | None, key: str) -> bool:
    """Whether an alert (its ``labels`` and ``target``) concerns the series or target
    ``key`` names (as ``names_series`` reads keys). An alert about a target concerns all of
    its series, unless its ``metric`` (and ``series``) labels say which one, as the demo's
    observer's alerts do; a preset's alert concerns the signal its ``signal`` label names."""
    which = labels.get("metric", "") + labels.get("series", "")
    about, _, series = key.partition(" ")
    if series:  # "target metric{labels}"
        return (target is None or target == about) and (
            not which or which == series or series.startswith(which + "{")
        )
    if key.endswith("}"):  # "metric{labels}" of any target
        return bool(which) and which == key
    if target != key and which and _METRIC_NAME.fullmatch(key):  # a metric, any target
        return labels.get("metric") == key
    if target != key and "signal" in labels and _METRIC_NAME.fullmatch(key):
        # A preset's alert names the signal that opened its incident, as labels key it.
        return labels["signal"] == key
    return target == key


@dataclass
class AlertSpan:
    """One alert from when it fired to when it was resolved, on the data's clock."""

    labels: dict[str, str]
    annotations: dict[str, str]
    target: str | None
    start: float
    end: float | None = None
    """When the observer's next successful call left it out; None: still firing at the end."""
    starts_at: str = ""
    """``startsAt`` as Alertmanager received it."""
    ends_at: str = ""
    """The last ``endsAt`` Alertmanager received: the resolve time, or (still firing) when it
    would have expired had nothing been sent again."""

    def as_row(self) -> dict[str, Any]:
        """The alert as an output row."""
        return {
            "kind": "alert",
            "start": self.start,
            "end": self.end,
            "target": self.target,
            "startsAt": self.starts_at,
            "endsAt": self.ends_at,
            "labels": self.labels,
            "annotations": self.annotations,
        }


@dataclass
class BacktestResult:
    """What a backtest saw and produced."""

    observer: str
    steps: int = 0
    samples: int = 0
    """Samples of its desired metrics handed to the observer (``up`` and the other synthetic
    samples not counted): 0 means the history has none of them."""
    desired_metrics: list[str] = field(default_factory=list)
    """The observer's desired metrics, the synthetic ones apart."""
    errors: int = 0
    """Calls that raised or whose worker died; those steps have no result."""
    first_time: float | None = None
    last_time: float | None = None
    wall_seconds: float = 0.0
    alerts: list[AlertSpan] = field(default_factory=list)
    scores: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Per series (``series_name``): ``(time, score)`` of every step that scored it."""
    values: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Per kept series: ``(time, value)`` as handed to the observer (for plots); and per series
    the observer scored with its value (``SeriesScore.value``, as a preset's derived signals
    carry it), that value at each step it scored."""
    source_warnings: Counter[str] = field(default_factory=Counter)
    """What the source read as it came or repaired, by kind (see ``SourceStats``)."""
    source_errors: Counter[str] = field(default_factory=Counter)
    """Where the history was not whole (a damaged recording, an answer Prometheus said was
    partial), by kind: the command exits non-zero."""
    source_messages: list[str] = field(default_factory=list)
    """What the source said of each such error."""
    failure: str | None = None
    """Why the run stopped before the end of the history, or None."""
    preset: str | None = None
    """The preset the observer is (``backtest --preset``): its desired metrics are its own,
    not names a user gave, so what to do when none came differs."""
    targets: set[str] = field(default_factory=set)
    """The targets of the replayed history that had samples the observer desires (``up``
    included)."""
    scored_targets: set[str] = field(default_factory=set)
    """The targets the observer scored a series of at some step (a preset: those it computed
    a signal on)."""

    @property
    def span(self) -> float:
        """Seconds of history replayed."""
        if self.first_time is None or self.last_time is None:
            return 0.0
        return self.last_time - self.first_time

    @property
    def speed(self) -> float:
        """History replayed per second of wall time (multiples of real time)."""
        return self.span / self.wall_seconds if self.wall_seconds > 0 else math.inf

    @property
    def firing_fraction(self) -> float:
        """The fraction of the replayed time during which at least one alert fired."""
        if not self.span or self.last_time is None:
            return 0.0
        spans = sorted(
            (a.start, a.end if a.end is not None else self.last_time) for a in self.alerts
        )
        covered, reach = 0.0, -math.inf
        for start, end in spans:
            if end > reach:
                covered += end - max(start, reach)
                reach = end
        return covered / self.span

    def summary(self) -> str:
        """The terminal summary: steps, alerts fired, time firing, speed."""
        lines = [
            f"observer {self.observer}: {self.steps} steps over {format_seconds(self.span)} of "
            f"history in {self.wall_seconds:.2f}s ({self.speed:,.0f}x real time)",
            f"alerts fired: {len(self.alerts)}; firing {100 * self.firing_fraction:.1f}% of "
            "the time",
        ]
        if self.errors:
            lines.append(
                f"errors: {self.errors} call(s) raised or lost their worker (see the "
                "log); those steps have no result"
            )
        for kind, count in sorted(self.source_warnings.items()):
            lines.append(f"source: {count} {kind.replace('_', ' ')}")
        for kind, count in sorted(self.source_errors.items()):
            lines.append(f"source errors: {count} {kind.replace('_', ' ')}")
        for message in self.source_messages:
            lines.append(f"source error: {message}")
        if self.preset is not None and self.targets:
            lines.append(self.watched())
        if self.failure:
            lines.append(f"stopped early: {self.failure}")
        if self.received_nothing:
            lines.append(self.no_samples())
        return "\n".join(lines)

    def watched(self, shown: int = 3) -> str:
        """Which targets the preset computed signals on and which it found nothing on, in a
        line: a quiet run and one that watched nothing both fire no alert."""
        watched = sorted(self.targets & self.scored_targets)
        missed = sorted(self.targets - self.scored_targets)

        def listed(targets: list[str]) -> str:
            names = [redact_url(t) for t in targets[:shown]]
            more = f" and {len(targets) - shown} more" if len(targets) > shown else ""
            return f"{', '.join(names)}{more}"

        line = f"targets: the preset watched {len(watched)} of {len(self.targets)}"
        if watched:
            line += f" ({listed(watched)})"
        if missed:
            line += f"; found nothing to watch on {listed(missed)}"
        return line

    @property
    def received_nothing(self) -> bool:
        """Whether the observer desired metrics and received not one sample of them (the
        command exits non-zero: a replay that tested nothing is no pass)."""
        return not self.samples and bool(self.desired_metrics)

    def no_samples(self) -> str:
        """What to say when the observer received no sample of its desired metrics."""
        if self.preset is not None:
            return (
                f"the preset {self.preset} received none of the metrics its signals need "
                f"({', '.join(self.desired_metrics)}) in the replayed range: backtest a "
                f"recording of a {self.preset} target made with `deucalion record --all` "
                f"(`deucalion presets show {self.preset} --target URL` checks a target first), or "
                "widen --start/--end"
            )
        return (
            f"the observer received no samples: the history has none of its desired metrics "
            f"({', '.join(self.desired_metrics)}) in the replayed range; check the names "
            "(selected as live: names, whole families, regular expressions) and the range"
        )


# --- outputs ----------------------------------------------------------------------------------

_CSV_COLUMNS = [
    "kind",
    "time",
    "target",
    "metric",
    "series",
    "score",
    "value",
    "start",
    "end",
    "labels",
    "error",
    "annotations",
]


class RowWriter:
    """Rows written as they come: JSON lines, or CSV when the name ends in ``.csv``."""

    def __init__(self, path: str | Path | None) -> None:
        self._file: IO[str] | None = None
        self._csv: Any = None
        if path is None:
            return
        self.path = Path(path)
        try:
            raw = create_private(self.path)
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {why_not_written(exc)}") from None
        self._file = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        if self.path.suffix == ".csv":
            self._csv = csv.DictWriter(self._file, _CSV_COLUMNS, extrasaction="ignore")
            self._csv.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self._file is None:
            return
        if self._csv is not None:
            if "labels" in row:
                row = {**row, "labels": json.dumps(row["labels"], sort_keys=True)}
            if "annotations" in row:
                # An alert's explanation (its summary, the value, the expected band).
                row = {**row, "annotations": json.dumps(row["annotations"], sort_keys=True)}
            self._csv.writerow(row)
        else:
            self._file.write(json.dumps(row, allow_nan=True) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

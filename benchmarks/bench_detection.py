"""Detection quality of the built-in detectors, measured where nothing was tuned.

``python -m benchmarks.bench_detection`` (or ``python -m benchmarks bench_detection``) writes a
section of benchmarks/results.md and the figures into results.json. Every detector is driven
through the one interface (``Detector.update`` once per cycle). Four measurements:

- **NAB on nab-dev, cross-validated (the headline).** ``../shared/data/nab-dev`` (NAB's 17
  realAWSCloudwatch files) is split into ``FOLDS`` folds of files (in name order, dealt round).
  For each fold, each detector's setting (``AnomalyDetector``: its budget, from a fixed grid;
  the others: their default) and NAB's one threshold for the set are chosen on the other
  folds, and the held fold is scored with them; the held folds' detections together give the
  cross-validated NAB score. The in-sample figure (chosen and scored on all 17 files, as NAB
  reports) stands beside it only. Skipped, saying so, when the folder is absent.
- **Budget adherence on noise** (``benchmarks/corpus.py``, seeds never used to tune): the
  realised false alerts per series per 10,000 points of ``AnomalyDetector`` at several budgets,
  on Gaussian, heavy-tailed, counter-tick and seasonal noise.
- **Recall per anomaly kind** on the corpus' labelled synthetic series: the share of series
  alerted within ``WITHIN`` points of the anomaly's start.
- **A real node_exporter**: a recording of this machine's node_exporter (``deucalion record
  --all``, counters as rates through ``deucalion.history.promql.CounterRates``), given with
  ``--recording``: false alerts per series per day and per 10,000 points against the budget,
  and recall of incidents injected into its own series.
- **Speed and memory**: series-updates per CPU second (``time.process_time``) for 10,000
  series updated together, and bytes of state per series.

The machine is shared with other work: speed figures are noisy, read them as ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import corpus
from benchmarks.report import machine, table, write_section
from deucalion.detectors import AnomalyDetector, Detector, EWMAZScore, RobustZScore
from deucalion.detectors.anomaly import KINDS
from deucalion.detectors.nab import RangeDetector
from deucalion.detectors.statistical import SeasonalBaseline
from deucalion.history.promql import CounterRates
from deucalion.replay import nab

ROOT = Path(__file__).resolve().parent.parent
#: Where nab-dev is looked for: ``../shared`` beside the repository (or beside its worktrees).
NAB_DEV_CANDIDATES = [
    ROOT.parent / "shared" / "data" / "nab-dev",
    ROOT.parent.parent / "shared" / "data" / "nab-dev",
]
#: The recording of a real node_exporter, when made (see the module doc).
RECORDING_CANDIDATES = [
    ROOT.parent.parent / "recordings" / "node_idle.om.gz",
    ROOT.parent / "recordings" / "node_idle.om.gz",
    ROOT / "benchmarks" / "corpus" / "node_idle_1s.npz",
]
"""The last is the recording this repository's figures came from, as arrays (``times``,
``values`` with counters as rates, ``res``: their resolution, ``keys``): 507 series of this
machine's node_exporter, 70 minutes at 1 s, made by ``recording_matrix``."""
COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
FOLDS = 5
BUDGETS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
"""The budgets (false alerts per series per 10,000 points) cross-validation chooses among."""
KIND_CHOICES = (KINDS, ("out_of_range",), ("spike", "out_of_range"))
"""The components cross-validation may choose among for the second AnomalyDetector row."""
WITHIN = 150
"""Points after an anomaly's start within which an alert counts as finding it."""


# --- contenders -------------------------------------------------------------------------------


class Random(Detector):
    """Uniform random scores: NAB's reference floor (about 16.8 on its full set)."""

    threshold = 0.999

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def update_rows(self, times: Any, values: Any, resolution: Any) -> Any:
        scores = self.rng.random(len(values))
        self.alerting_ = scores >= self.threshold
        return scores


def contenders() -> dict[str, dict[str, Callable[[], Detector]]]:
    """Each detector, with the settings cross-validation may choose among."""
    return {
        "AnomalyDetector (default)": {
            f"budget={b:g}": (lambda b=b: AnomalyDetector(budget=b)) for b in BUDGETS
        },
        "AnomalyDetector, kinds and budget chosen by CV": {
            f"kinds={'+'.join(kinds) if len(kinds) < 7 else 'all'}, budget={b:g}": (
                lambda b=b, kinds=kinds: AnomalyDetector(budget=b, kinds=kinds)
            )
            for kinds in KIND_CHOICES
            for b in (1.0, 10.0, 100.0)
        },
        "RangeDetector": {"default": RangeDetector},
        "RobustZScore, 120 points": {"default": RobustZScore},
        "EWMAZScore, 120 points": {"default": EWMAZScore},
        "SeasonalBaseline, a day": {"default": lambda: _seasonal()},
        "random (reference)": {"default": Random},
    }


def _seasonal() -> Detector:
    detector = SeasonalBaseline(86400.0)
    detector.history_points = 300  # a day of 5-minute points, and a little more
    return detector


def run(
    make: Callable[[], Detector],
    times: np.ndarray,
    values: np.ndarray,
    resolution: np.ndarray | None = None,
    explained: dict[tuple[int, int], Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Feed ``values`` (``[points, series]``) to a fresh detector one cycle at a time; returns
    its scores and whether each series alerted, both ``[points, series]``. Given
    ``explained``, every alert's explanation is put in it at ``(point, series)``."""
    detector = make()
    scores = np.zeros(values.shape)
    alerts = np.zeros(values.shape, dtype=bool)
    zero = np.zeros(values.shape[1])
    for i in range(values.shape[0]):
        steps = zero if resolution is None else resolution[i]
        scores[i] = detector.update(values[i], steps, times=times[i])
        alerts[i] = detector.__dict__.get("alerting_", scores[i] >= detector.threshold)
        if explained is not None and alerts[i].any():
            explained.update(((i, int(why.series)), why) for why in detector.alerts())
    return np.nan_to_num(scores, nan=0.0), alerts


# --- NAB, cross-validated -----------------------------------------------------------------------


def find_nab_dev(given: Path | None = None) -> Path | None:
    """The nab-dev folder: ``given``, else ``../shared/data/nab-dev``; None when absent."""
    for folder in [given] if given is not None else NAB_DEV_CANDIDATES:
        if (folder / "windows.json").exists():
            return folder
    return None


def _matrix(files: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    names = sorted(files)
    length = max(len(files[k][1]) for k in names)
    values = np.full((length, len(names)), np.nan)
    times = np.full((length, len(names)), np.nan)
    for column, name in enumerate(names):
        values[: len(files[name][1]), column] = files[name][1]
        times[: len(files[name][0]), column] = files[name][0]
    return names, times, values


def _labelled(
    files: dict[str, Any], names: list[str], output: np.ndarray, members: list[str]
) -> list[nab.LabelledSeries]:
    column = {name: i for i, name in enumerate(names)}
    return [
        nab.LabelledSeries(
            name,
            files[name][0],
            output[: len(files[name][1]), column[name]].tolist(),
            files[name][2],
        )
        for name in members
    ]


def nab_figures(
    settings: dict[str, Callable[[], Detector]], files: dict[str, Any], folds: int = FOLDS
) -> dict[str, Any]:
    """In-sample and cross-validated NAB scores of one detector (see the module doc)."""
    names, times, values = _matrix(files)
    outputs = {}
    for setting, make in settings.items():
        scores, alerts = run(make, times, values)
        # A detector that decides its own alerts (and keeps quiet after one) is scored by
        # them; the others by their scores, with NAB's swept threshold.
        outputs[setting] = alerts.astype(float) if isinstance(make(), AnomalyDetector) else scores
    figures: dict[str, Any] = {}
    halves = {"all": names, "half A": names[0::2], "half B": names[1::2]}
    for part, members in halves.items():
        figures[part] = {}
        for profile in nab.PROFILES:
            best = max(
                (
                    (nab.sweep(_labelled(files, names, out, members), profile), setting)
                    for setting, out in outputs.items()
                ),
                key=lambda pair: pair[0].raw,
            )
            figures[part][profile] = best[0].score
            if part == "all":
                figures.setdefault("chosen", {})[profile] = {
                    "setting": best[1],
                    "threshold": best[0].threshold,
                }
    held: dict[str, Any] = {}
    for profile in nab.PROFILES:
        detections = {}
        choices = []
        for fold in range(folds):
            test = names[fold::folds]
            train = [n for n in names if n not in test]
            result, setting = max(
                (
                    (nab.sweep(_labelled(files, names, out, train), profile), setting)
                    for setting, out in outputs.items()
                ),
                key=lambda pair: pair[0].raw,
            )
            choices.append(setting)
            for one in _labelled(files, names, outputs[setting], test):
                detections[one.name] = nab.LabelledSeries(
                    one.name,
                    one.timestamps,
                    [1.0 if s >= result.threshold else 0.0 for s in one.scores],
                    one.windows,
                )
        pooled = nab.score_at_threshold(list(detections.values()), 0.5, profile)
        held[profile] = {
            "score": pooled.score,
            "detected": pooled.detected,
            "windows": pooled.windows,
            "false_positives": pooled.false_positives,
            "settings": choices,
        }
    figures["cv"] = held
    return figures


# --- the corpus: budget adherence and recall ----------------------------------------------------


def budget_adherence(
    series: int, points: int, seed: int, budgets: tuple[float, ...] = (0.1, 1.0, 10.0)
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Realised false alerts per series per 10,000 points of ``AnomalyDetector`` on each
    noise kind, per budget (points after the detector's warm-up; a weekly pattern's after
    its first week, whose weekend is news to a series that has seen no week); and per kind
    measured so, the alerts per series in that first week."""
    out: dict[str, Any] = {}
    first: dict[str, Any] = {}
    for kind in corpus.NOISE_KINDS:
        data = corpus.noise(kind, series, points, seed)
        times = np.broadcast_to(data.times[:, None], (points, series))
        out[kind] = {}
        for budget in budgets:
            detector = AnomalyDetector(budget=budget)
            _, alerts = run(lambda d=detector: d, times, data.values.T)
            seen = corpus.WEEK_POINTS if kind == "weekly" else detector.warmup
            scored = series * (points - seen)
            out[kind][f"{budget:g}"] = float(alerts[seen:].sum() / scored * 10_000)
            if kind == "weekly":
                first.setdefault(kind, {})[f"{budget:g}"] = float(alerts[:seen].sum() / series)
    return out, first


def recall(make: Callable[[], Detector], series: int, seed: int) -> dict[str, Any]:
    """Per anomaly kind, the share of series alerted within ``WITHIN`` points of the start,
    and the false alerts per 10,000 points before it; and of the first alerts within those
    points, the share named the anomaly's kind and the share whose observed value lies outside
    the expected band they give (a detector that explains no kind: neither)."""
    out: dict[str, Any] = {}
    for kind in corpus.ANOMALY_KINDS:
        points = corpus.points_for(kind)
        data = corpus.anomalies(kind, series, points, seed)
        times = np.broadcast_to(data.times[:, None], (points, series))
        explained: dict[tuple[int, int], Any] = {}
        _, alerts = run(make, times, data.values.T, explained=explained)
        found = [bool(alerts[s : s + WITHIN, row].any()) for row, s in enumerate(data.starts)]
        before = sum(int(alerts[:s, row].sum()) for row, s in enumerate(data.starts))
        out[kind] = {
            "recall": float(np.mean(found)),
            "false_per_10k_before": before / float(data.starts.sum()) * 10_000,
        }
        first = [
            explained.get((s + int(np.argmax(alerts[s : s + WITHIN, row])), row))
            for row, s in enumerate(data.starts)
            if found[row]
        ]
        first = [why for why in first if why is not None and why.kind in KINDS]
        if first:
            out[kind]["first_alerts"] = len(first)
            named = corpus.NAMED[kind]
            out[kind]["named_its_kind"] = float(np.mean([why.kind == named for why in first]))
            out[kind]["outside_band"] = float(
                np.mean(
                    [not why.expected_low <= why.observed <= why.expected_high for why in first]
                )
            )
    return out


WARMUP_STARTS = (60, 120, 250, 500, 1000)
"""Points of history before the anomaly in the warm-up measurement."""
WARMUP_KINDS = ("spike", "level_shift", "variance", "stuck", "trend")


def warmup_recall(make: Callable[[], Detector], series: int, seed: int) -> dict[str, Any]:
    """How soon a young series can alert: per anomaly kind and number of points of history
    before it (``WARMUP_STARTS``), the share of series alerted within ``WITHIN`` points of
    the anomaly's start; and the false alerts per 10,000 points before it, all starts
    together (the budget while young)."""
    out: dict[str, Any] = {}
    false = scored = 0
    for kind in WARMUP_KINDS:
        out[kind] = {}
        for start in WARMUP_STARTS:
            data = corpus.anomalies(kind, series, start + WITHIN, seed, start=start)
            times = np.broadcast_to(data.times[:, None], data.values.T.shape)
            _, alerts = run(make, times, data.values.T)
            out[kind][str(start)] = float(alerts[start:].any(axis=0).mean())
            false += int(alerts[:start].sum())
            scored += start * series
    out["false_per_10k_before"] = false / scored * 10_000
    return out


# --- the real recording -------------------------------------------------------------------------


def recording_matrix(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """A recording as ``(times, values, resolution, keys)``: ``[cycles, series]`` arrays,
    counters as per-second rates with their resolution (``CounterRates``), gauges as they are."""
    from deucalion.replay.recording import RecordingSource

    rates = CounterRates()

    async def read() -> list[tuple[float, dict[str, float], dict[str, float]]]:
        rows = []
        async for cycle in RecordingSource(path).cycles():
            values: dict[str, float] = {}
            steps: dict[str, float] = {}
            for target, samples in cycle.samples.items():
                now = cycle.target_times.get(target, cycle.time)
                for metric, series in samples.items():
                    if metric in ("up", "scrape_duration_seconds"):
                        continue
                    counter = metric.endswith(COUNTER_SUFFIXES)
                    for labels, raw in series.items():
                        key = metric + labels
                        if counter:
                            values[key], steps[key] = rates.update(key, now, raw)
                        else:
                            values[key] = raw
            rows.append((cycle.time, values, steps))
        return rows

    rows = asyncio.run(read())
    keys = sorted({key for _, values, _ in rows for key in values})
    column = {key: i for i, key in enumerate(keys)}
    times = np.array([t for t, _, _ in rows])
    values = np.full((len(rows), len(keys)), np.nan)
    resolution = np.zeros((len(rows), len(keys)))
    for i, (_, row, steps) in enumerate(rows):
        for key, value in row.items():
            values[i, column[key]] = value
        for key, step in steps.items():
            resolution[i, column[key]] = step
    return times, values, resolution, keys


def real_figures(path: Path, budgets: tuple[float, ...] = (0.1, 1.0, 10.0)) -> dict[str, Any]:
    """False alerts on the real recording per budget, and RangeDetector's for comparison."""
    if path.suffix == ".npz":
        with np.load(path) as arrays:
            times, values = arrays["times"], arrays["values"]
            resolution, keys = arrays["res"], [str(k) for k in arrays["keys"]]
    else:
        times, values, resolution, keys = recording_matrix(path)
    interval = float(np.median(np.diff(times)))
    grid = np.broadcast_to(times[:, None], values.shape)
    # A series that never moves cannot alert: counted in, the constant series of an idle node
    # (two thirds of them) dilute the rate per series threefold. The series that moved at
    # least once are the ones the budget is judged on; the rate over all is kept beside it.
    steps = np.diff(values, axis=0)
    moving = (np.isfinite(steps) & (steps != 0)).any(axis=0)
    out: dict[str, Any] = {
        "series": len(keys),
        "moving_series": int(moving.sum()),
        "cycles": len(times),
        "interval_s": interval,
        "minutes": (times[-1] - times[0]) / 60,
        "budgets": {},
    }
    for budget in budgets:
        detector = AnomalyDetector(budget=budget)
        _, alerts = run(lambda d=detector: d, grid, values, resolution)
        scored_points = float(np.isfinite(values[detector.warmup :]).sum())
        per_10k = alerts.sum() / max(scored_points, 1.0) * 10_000
        half = len(times) // 2
        late = alerts[half:].sum() / max(float(np.isfinite(values[half:]).sum()), 1.0) * 10_000
        moved = alerts[:, moving]
        scored_moving = float(np.isfinite(values[detector.warmup :, moving]).sum())
        out["budgets"][f"{budget:g}"] = {
            "alerts": int(alerts.sum()),
            "per_10k": float(per_10k),
            "per_10k_moving": float(moved.sum() / max(scored_moving, 1.0) * 10_000),
            "per_moving_series_per_day": float(
                moved.sum() / max(scored_moving, 1.0) * 86400 / interval
            ),
            "per_10k_moving_second_half": float(
                moved[half:].sum()
                / max(float(np.isfinite(values[half:, moving]).sum()), 1.0)
                * 10_000
            ),
            "per_10k_second_half": float(late),
            "per_series_per_day": float(per_10k * 86400 / interval / 10_000),
            "series_alerting": int(alerts.any(axis=0).sum()),
        }
    _, alerts = run(RangeDetector, grid, values, resolution)
    scored_points = float(np.isfinite(values[576:]).sum())
    per_10k = alerts.sum() / max(scored_points, 1.0) * 10_000
    out["RangeDetector"] = {
        "alerts": int(alerts.sum()),
        "per_10k": float(per_10k),
        "per_series_per_day": float(per_10k * 86400 / interval / 10_000),
    }
    out["injected"] = injected_recall(values, times)
    return out


def injected_recall(values: np.ndarray, times: np.ndarray, seed: int = 11) -> dict[str, float]:
    """Incidents injected into the recording's own gauges (those that move): per kind, the
    share found within ``WITHIN`` points by ``AnomalyDetector()``."""
    rng = np.random.default_rng(seed)
    moving = [
        c
        for c in range(values.shape[1])
        if np.isfinite(values[:, c]).all()
        and np.nanstd(np.diff(values[:, c])) > 0
        and (np.diff(values[:, c]) != 0).mean() > 0.5
    ]
    chosen = rng.choice(moving, size=min(40, len(moving)), replace=False)
    base = values[:, chosen].copy()
    cycles = len(times)
    grid = np.broadcast_to(times[:, None], base.shape)
    out = {}
    for kind in ("spike", "level_shift", "variance", "stuck"):
        data = base.copy()
        starts = rng.integers(cycles // 2, cycles - WITHIN, len(chosen))
        for col, start in enumerate(starts):
            column = data[:, col]
            spread = float(np.std(column[:start])) or 1e-9  # the series' own variability
            sign = rng.choice([-1, 1])
            if kind == "spike":
                column[start] = (
                    column[:start].max() + 3 * spread
                    if sign > 0
                    else column[:start].min() - 3 * spread
                )
            elif kind == "level_shift":
                column[start:] += sign * 3 * spread
            elif kind == "variance":
                column[start:] += rng.normal(0, 3 * spread, cycles - start)
            elif kind == "stuck":
                column[start:] = column[start]
        _, alerts = run(AnomalyDetector, grid, data)
        out[kind] = float(np.mean([alerts[s : s + WITHIN, c].any() for c, s in enumerate(starts)]))
    return out


# --- speed --------------------------------------------------------------------------------------


def speed(
    make: Callable[[], Detector], series: int = 10_000, updates: int = 50, keyed: bool = False
) -> float:
    """Series-updates per CPU second, ``series`` updated together ``updates`` times."""
    rng = np.random.default_rng(1)
    detector = make()
    batches = [rng.standard_normal(series) for _ in range(updates + 1)]
    keys = [f"s{i}" for i in range(series)]
    if keyed:  # (a detector holding rows given as arrays refuses keys, and the other way)
        first = zip([1.0] * series, batches[0].tolist(), strict=True)
        detector.update(dict(zip(keys, first, strict=True)))
    else:
        detector.update(batches[0])
    start = time.process_time()
    for i, batch in enumerate(batches[1:]):
        if keyed:
            detector.update(
                # Times after the first update's (at 1): a late value is dropped, not scored.
                dict(zip(keys, zip([i + 2.0] * series, batch.tolist(), strict=True), strict=True))
            )
        else:
            detector.update(batch)
    return series * updates / (time.process_time() - start)


def memory_per_series(series: int = 10_000) -> float:
    """Bytes of ``AnomalyDetector`` state per series."""
    detector = AnomalyDetector()
    detector.update(np.zeros(series))
    return detector.nbytes / series


# --- the report ---------------------------------------------------------------------------------


def main(
    quick: bool = False, nab_dev: Path | None = None, recording: Path | None = None
) -> dict[str, Any]:
    """Measure everything that can be measured here; return the figures and the markdown."""
    results: dict[str, Any] = {}
    notes = [f"Machine: {machine()}. Shared machine: speed figures are noisy, compare rows."]
    folder = find_nab_dev(nab_dev)
    files = nab.load_labelled_directory(folder) if folder is not None else None
    rows = []
    for name, settings in contenders().items():
        figures: dict[str, Any] = {}
        if files is not None:
            figures["nab"] = nab_figures(settings, files)
        first = next(iter(settings.values()))
        figures["series_per_s"] = speed(first, updates=10 if quick else 50)
        results[name] = figures
        if "nab" in figures:
            cv, whole = figures["nab"]["cv"], figures["nab"]["all"]
            rows.append(
                [
                    name,
                    *[f"**{cv[p]['score']:.1f}** ({whole[p]:.1f})" for p in nab.PROFILES],
                    f"{cv['standard']['detected']}/{cv['standard']['windows']}, "
                    f"{cv['standard']['false_positives']}",
                    f"{figures['series_per_s']:,.0f}",
                ]
            )
    if files is None:
        notes.append("NAB skipped: no nab-dev folder.")
    markdown = ["## Detection quality (bench_detection)\n"]
    if rows:
        markdown.append(
            table(
                [
                    "detector",
                    "NAB standard, CV (in-sample)",
                    "low FP, CV (in)",
                    "low FN, CV (in)",
                    "windows found, false detections (CV)",
                    "series-updates/s (1 core)",
                ],
                rows,
            )
        )

    anomaly = AnomalyDetector()
    results["AnomalyDetector (default)"]["keyed_series_per_s"] = speed(
        AnomalyDetector, updates=5 if quick else 20, keyed=True
    )
    results["memory_bytes_per_series"] = memory_per_series()
    # 100 series: at budget 0.1 a million points expect 10 false alerts (20 series expected 2,
    # and twice the budget was one alert more or less).
    series, points = (10, 4000) if quick else (100, 10_000)
    results["budget"], results["budget_first_week"] = budget_adherence(series, points, seed=7)
    brows = [[kind, *[f"{v:.2f}" for v in per.values()]] for kind, per in results["budget"].items()]
    markdown.append(
        "\nRealised false alerts per series per 10,000 points of noise, "
        f"AnomalyDetector, {series} series x {points:,} points each (seed 7):\n\n"
    )
    markdown.append(
        table(["noise", *[f"budget {b}" for b in results["budget"]["gaussian"]]], brows)
    )
    n = 10 if quick else 40
    results["recall"] = {
        "AnomalyDetector (default)": recall(AnomalyDetector, n, seed=5),
        "RangeDetector": recall(RangeDetector, n, seed=5),
    }
    kinds = list(corpus.ANOMALY_KINDS)
    markdown.append(
        f"\nRecall per anomaly kind ({n} labelled series each, found within {WITHIN} points):\n\n"
    )
    markdown.append(
        table(
            ["detector", *kinds],
            [
                [
                    name,
                    *[
                        f"{per[k]['recall']:.2f} ({per[k]['false_per_10k_before']:.1f})"
                        for k in kinds
                    ],
                ]
                for name, per in results["recall"].items()
            ],
        )
    )
    markdown.append(
        "\n(In brackets: false alerts per series per 10,000 points before the anomalies.)\n"
    )

    results["warmup"] = warmup_recall(AnomalyDetector, n, seed=9)
    markdown.append(
        "\nWarm-up: share of series alerted within "
        f"{WITHIN} points of an anomaly that comes after only so many points of "
        f"history ({n} labelled series each, AnomalyDetector at budget 1):\n\n"
    )
    markdown.append(
        table(
            ["kind", *[f"after {s}" for s in WARMUP_STARTS]],
            [
                [kind, *[f"{results['warmup'][kind][str(s)]:.2f}" for s in WARMUP_STARTS]]
                for kind in WARMUP_KINDS
            ],
        )
    )
    markdown.append(
        f"\n(False alerts per series per 10,000 points before the anomalies: "
        f"{results['warmup']['false_per_10k_before']:.2f}.)\n"
    )

    path = recording or next((p for p in RECORDING_CANDIDATES if p.exists()), None)
    if path is not None:
        real = results["real"] = real_figures(path)
        markdown.append(
            f"\nReal node_exporter ({real['series']} series, {real['moving_series']} of them "
            f"moved; {real['minutes']:.0f} min at {real['interval_s']:g} s): AnomalyDetector's "
            "false alerts per series that moved per 10,000 points (per day; over all series) "
            "by budget: "
            + ", ".join(
                f"budget {b}: {v['per_10k_moving']:.2f} "
                f"({v['per_moving_series_per_day']:.1f}/day; all series {v['per_10k']:.2f}; "
                f"second half {v['per_10k_moving_second_half']:.2f}; {v['series_alerting']} "
                "series ever alerted)"
                for b, v in real["budgets"].items()
            )
            + f"; RangeDetector {real['RangeDetector']['per_10k']:.2f} "
            f"({real['RangeDetector']['per_series_per_day']:.1f}/day). Injected incidents "
            "found: " + ", ".join(f"{k} {v:.2f}" for k, v in real["injected"].items()) + ".\n"
        )
        results["AnomalyDetector (default)"]["idle_per_day"] = (
            real["budgets"]["1"]["per_series_per_day"] * real["series"]
        )
        results["AnomalyDetector (default)"]["idle_alerts"] = real["budgets"]["1"]["alerts"]
    else:
        notes.append("Real recording skipped: none found (give --recording).")
    notes.append(
        f"AnomalyDetector holds {results['memory_bytes_per_series']:.0f} bytes per "
        f"series; through the keyed update (a dict per cycle) it does "
        f"{results['AnomalyDetector (default)']['keyed_series_per_s']:,.0f} "
        "series-updates/s. Its threshold at budget 1 is "
        f"{anomaly.threshold:g}."
    )
    markdown.append("\n" + "\n".join(f"- {note}" for note in notes) + "\n")
    results["markdown"] = "".join(markdown)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller corpus, fewer updates")
    parser.add_argument("--nab-dev", type=Path, default=None, help="the labelled folder")
    parser.add_argument(
        "--recording",
        type=Path,
        default=None,
        help="a deucalion recording of a real node_exporter (.om.gz)",
    )
    args = parser.parse_args()
    out = main(args.quick, args.nab_dev, args.recording)
    write_section("bench_detection", out["markdown"])
    print(out["markdown"])

"""Detection quality of the built-in detectors: NAB scores, speed, false alerts at idle.

``python -m benchmarks.bench_detection`` (or ``python -m benchmarks bench_detection``) writes
the table to benchmarks/results.md. Three measurements per detector:

- NAB scores (standard, reward_low_FP_rate, reward_low_FN_rate) on ``../shared/data/nab-dev``
  with deucalion.replay.nab, one threshold for the whole set chosen by sweeping, as NAB does;
  on the whole set and on its two halves (files in name order, alternately), so a default that
  only fits some files shows. Skipped, saying so, when the folder is absent.
- Speed: series updated per second of CPU on one core (``time.process_time``), for one update
  of many series at once. The machine is shared: read the figures as ratios between rows.
- False alerts per day on an idle real node_exporter: every series it serves is scraped each
  ``--interval`` seconds (1) for ``--idle-minutes`` (20), counters turned into per-second
  rates, each detector run over the recording at its own default threshold; alerts after the
  detector's warm-up are scaled to a day. The recording is kept in $TMPDIR and reused by later
  runs when long enough, so that ``make bench`` does not wait 20 minutes each time.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import random
import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import machine, table, write_section
from deucalion.detectors.nab import RangeDetector
from deucalion.exposition import parse_exposition
from deucalion.replay import nab

ROOT = Path(__file__).resolve().parent.parent
#: Where nab-dev is looked for: ``../shared`` beside the repository (or beside its worktrees).
NAB_DEV_CANDIDATES = [ROOT.parent / "shared" / "data" / "nab-dev",
                      ROOT.parent.parent / "shared" / "data" / "nab-dev"]
_COUNTER = re.compile(r"_(total|count|sum|bucket)$")


class _RobustZ:
    """The demo's robust z-score (30 values) as a batch scorer, for the table."""

    threshold = 6.0
    warmup = 8

    def __init__(self) -> None:
        from deucalion.demo import RobustZScoreObserver  # type: ignore[attr-defined]

        self.observer = RobustZScoreObserver({"series"})

    def update(self, values: Any) -> Any:
        out = np.zeros(len(values))
        for row, value in enumerate(values):
            if math.isfinite(value):
                score = self.observer._score(("", "", str(row)), float(value))
                out[row] = 0.0 if score is None else score
        return out


class _Random:
    """Uniform random scores: NAB's reference floor (about 16.8 on its full set)."""

    threshold = 0.999
    warmup = 0

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def update(self, values: Any) -> Any:
        return self.rng.random(len(values))


class _Windowed:
    """A window detector of deucalion.detectors (``score(block)``) fed the last ``points``."""

    def __init__(self, detector: Any, points: int = 120) -> None:
        self.detector = detector
        self.threshold = detector.threshold
        self.warmup = getattr(detector, "min_points", 0)
        self.points = points
        self.values: Any = None
        self.cycle = 0

    def update(self, values: Any) -> Any:
        from deucalion.history.vectors import Block  # type: ignore[import-not-found]

        x = np.asarray(values, dtype=float)
        if self.values is None:
            self.values = np.full((len(x), self.points), np.nan)
        self.values = np.roll(self.values, -1, axis=1)
        self.values[:, -1] = x
        self.cycle += 1
        times = np.broadcast_to(np.arange(self.cycle - self.points, self.cycle, dtype=float),
                                self.values.shape).copy()
        times[np.isnan(self.values)] = np.nan
        keys = [("", str(i)) for i in range(len(x))]
        scores = self.detector.score(Block("series", keys, times, self.values))
        return np.nan_to_num(scores, nan=0.0)


def _detectors() -> dict[str, Callable[[], Any]]:
    """Every built-in detector present in this tree, and the random reference."""
    found: dict[str, Callable[[], Any]] = {
        "RangeDetector (detectors.nab)": RangeDetector,
        "RangeDetector(record_step_factor=2)": lambda: RangeDetector(record_step_factor=2),
    }
    try:
        from deucalion.detectors import statistical  # type: ignore[attr-defined]
    except ImportError:
        pass
    else:
        found["RobustZScore, 120 points (detectors)"] = lambda: _Windowed(
            statistical.RobustZScore())
        found["EWMAZScore, 120 points (detectors)"] = lambda: _Windowed(
            statistical.EWMAZScore())
    from deucalion import demo

    # The demo's own robust z-score, while it has one (the detectors' one replaces it).
    if hasattr(getattr(demo, "RobustZScoreObserver", None), "_score"):
        found["robust z-score, 30 values (demo)"] = _RobustZ
    found["random (reference)"] = _Random
    return found


def find_nab_dev(given: Path | None = None) -> Path | None:
    """The nab-dev folder: ``given``, else ``../shared/data/nab-dev``; None when absent."""
    for folder in [given] if given is not None else NAB_DEV_CANDIDATES:
        if (folder / "windows.json").exists():
            return folder
    return None


def _nab_scores(make: Callable[[], Any], files: dict[str, Any]) -> dict[str, Any]:
    names = sorted(files)
    length = max(len(files[k][1]) for k in names)
    matrix = np.full((length, len(names)), np.nan)
    for column, name in enumerate(names):
        matrix[: len(files[name][1]), column] = files[name][1]
    detector = make()
    scores = np.array([detector.update(row) for row in matrix])
    labelled = {
        name: nab.LabelledSeries(name, files[name][0],
                                 scores[: len(files[name][1]), column].tolist(), files[name][2])
        for column, name in enumerate(names)
    }
    halves = {"all": names, "half A": names[0::2], "half B": names[1::2]}
    out: dict[str, Any] = {
        part: {p: r.score for p, r in nab.evaluate([labelled[n] for n in members]).items()}
        for part, members in halves.items()
    }
    out["threshold"] = nab.sweep(list(labelled.values())).threshold
    return out


def _speed(make: Callable[[], Any], series: int, updates: int) -> float:
    rng = np.random.default_rng(1)
    detector = make()
    detector.update(rng.standard_normal(series))
    start = time.process_time()
    for _ in range(updates):
        detector.update(rng.standard_normal(series))
    return series * updates / (time.process_time() - start)


def record_idle(minutes: float, interval: float, path: Path) -> Path:
    """Scrape an idle real node_exporter every ``interval`` s for ``minutes``; save as JSON."""
    from tests.integration import servers

    server = servers.start_node_exporter()
    cycles = []
    try:
        deadline = time.monotonic() + minutes * 60
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            scraped_at = time.time()
            with urllib.request.urlopen(server.url + "/metrics", timeout=5) as response:
                samples = parse_exposition(response.read())
            cycles.append({"time": scraped_at, "samples": samples})
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        server.stop()
    path.write_text(json.dumps({"interval": interval, "cycles": cycles}))
    return path


def _recorded_minutes(path: Path) -> float:
    """How long a recording made by ``record_idle`` lasts; 0 when there is none."""
    try:
        recording = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0.0
    return len(recording["cycles"]) * float(recording["interval"]) / 60


def _idle_matrix(path: Path) -> tuple[Any, Any, float]:
    """The recording as (cycles, series) values, counters as per-second rates, with each rate's
    resolution (the counter's smallest increase so far over the interval, as RangeObserver
    reads it; 0 for gauges); and the scrape interval."""
    recording = json.loads(path.read_text())
    cycles = recording["cycles"]
    keys = sorted({(metric, labels) for c in cycles for metric, series in c["samples"].items()
                   for labels in series})
    column = {key: i for i, key in enumerate(keys)}
    matrix = np.full((len(cycles), len(keys)), np.nan)
    resolution = np.zeros((len(cycles), len(keys)))
    previous: dict[tuple[str, str], tuple[float, float]] = {}
    smallest: dict[tuple[str, str], float] = {}
    for row, cycle in enumerate(cycles):
        for metric, series in cycle["samples"].items():
            for labels, value in series.items():
                key = (metric, labels)
                if _COUNTER.search(metric):
                    last = previous.get(key)
                    previous[key] = (cycle["time"], value)
                    if last is None or value < last[1] or cycle["time"] <= last[0]:
                        continue
                    increase, seconds = value - last[1], cycle["time"] - last[0]
                    if 0 < increase < smallest.get(key, math.inf):
                        smallest[key] = increase
                    if key in smallest:
                        resolution[row, column[key]] = smallest[key] / seconds
                    value = increase / seconds
                matrix[row, column[key]] = value
    return matrix, resolution, float(recording["interval"])


def _idle_alerts(make: Callable[[], Any], matrix: Any, resolution: Any,
                 interval: float) -> tuple[float, int]:
    """(false alerts per day, alerts) at the detector's default threshold after its warm-up;
    a detector that takes each value's resolution (RangeDetector) is given it."""
    detector = make()
    takes_resolution = "resolution" in inspect.signature(detector.update).parameters
    alerts = 0
    for row, steps in zip(matrix, resolution, strict=True):
        scores = detector.update(row, steps) if takes_resolution else detector.update(row)
        alerts += int((scores >= detector.threshold).sum())
    scored_seconds = max(1.0, (len(matrix) - detector.warmup - 1) * interval)
    return alerts * 86400 / scored_seconds, alerts


def main(quick: bool = False, idle_minutes: float | None = None, interval: float = 1.0,
         idle_recording: Path | None = None, nab_dev: Path | None = None) -> dict[str, Any]:
    """Measure every detector; return the markdown section and the figures."""
    minutes = idle_minutes if idle_minutes is not None else (2.0 if quick else 20.0)
    results: dict[str, Any] = {}
    notes = [f"Machine: {machine()}. Shared machine: speed figures are noisy, compare rows."]

    folder = find_nab_dev(nab_dev)
    files = nab.load_labelled_directory(folder) if folder is not None else None
    if files is None:
        where = nab_dev or " or ".join(str(c) for c in NAB_DEV_CANDIDATES)
        notes.append(f"NAB scores skipped: no nab-dev at {where}.")

    recording = idle_recording
    if recording is None:
        # An earlier run's recording is reused when long enough: `make bench` stays short.
        recording = Path(os.environ.get("TMPDIR", "/tmp")) / "deucalion-idle-node-exporter.json"
        if _recorded_minutes(recording) < minutes - 0.5:
            record_idle(minutes, interval, recording)
    matrix, resolution, step = _idle_matrix(recording)
    notes.append(
        f"Idle: {matrix.shape[1]} series of a real node_exporter, scraped every {step:g} s for "
        f"{len(matrix) * step / 60:.1f} min; alerts after each detector's warm-up, scaled to a day."
    )

    rows = []
    for name, make in _detectors().items():
        figures: dict[str, Any] = {}
        if files is not None:
            figures["nab"] = _nab_scores(make, files)
        vectorised = not name.startswith("robust z-score")
        figures["series_per_s"] = (_speed(make, 10_000, 20 if quick else 100) if vectorised
                                   else _speed(make, 1000, 5 if quick else 20))
        idle = _idle_alerts(make, matrix, resolution, step)
        figures["idle_per_day"], figures["idle_alerts"] = idle
        results[name] = figures
        nab_cells = ["-"] * 10
        if "nab" in figures:
            nab_cells = [f"{figures['nab'][part][p]:.1f}" for p in nab.PROFILES
                         for part in ("all", "half A", "half B")]
            nab_cells.append(f"{figures['nab']['threshold']:.3g}")
        rows.append([name, *nab_cells, f"{figures['series_per_s']:,.0f}",
                     f"{figures['idle_per_day']:,.0f} ({figures['idle_alerts']})"])
    header = ["detector"] + [f"{p} {part}" for p in ("standard", "low FP", "low FN")
                             for part in ("all", "A", "B")] + [
        "swept threshold", "series/s (1 core)", "idle false alerts/day (in run)"]
    notes += [
        "NAB: nab-dev is NAB's 17 realAWSCloudwatch files (30 windows); A and B are its halves "
        "(files in name order, alternately), each swept for its own threshold. NAB's published "
        "random detector scores 16.8 on its full 58 files.",
        "Idle figures scale what a short run saw: a detector learning a new series meets most of "
        "its new records early (a record after n values comes with probability about 1/n), so a "
        "sidecar running for days sees fewer than this scaling says. The machine is shared: its "
        "other work (page faults, TCP connections) is in node_exporter's metrics.",
    ]
    markdown = "## Detection quality (bench_detection)\n\n" + table(header, rows) + "\n" + \
        "\n".join(f"- {n}" for n in notes) + "\n"
    results["markdown"] = markdown
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 min idle run, fewer updates")
    parser.add_argument("--idle-minutes", type=float, default=None)
    parser.add_argument("--interval", type=float, default=1.0, help="idle scrape interval, s")
    parser.add_argument("--nab-dev", type=Path, default=None, help="the labelled folder")
    parser.add_argument("--idle-recording", type=Path, default=None,
                        help="reuse a recording made by an earlier run instead of scraping")
    args = parser.parse_args()
    random.seed(0)
    out = main(args.quick, args.idle_minutes, args.interval, args.idle_recording, args.nab_dev)
    write_section("bench_detection", out["markdown"])
    print(out["markdown"])

"""Replay: how many times faster than real time a backtest runs, and what a recording weighs.

1. A week of node_exporter's three benchmark metrics (``DESIRED``: 8 CPUs x 8 modes of
   ``node_cpu_seconds_total``, ``node_load1``, ``node_memory_MemAvailable_bytes``: 66 series)
   at 15 s steps, written to a recording, then backtested with a robust z-score observer. The
   run is taken apart to name the bottleneck: reading the recording alone, the observer alone
   in this process, and the whole backtest (recording -> selection -> dispatch worker -> alert
   lifecycle).
2. The same with 10,000 series (10 targets x 1,000), over fewer steps, with a vectorised
   (NumPy) robust z-score, the kind a detector over many series is.
3. The size of one hour of a real node_exporter's three metrics at 1 s, recorded by
   ``deucalion record``'s loop for a minute and scaled, and of a synthetic hour.

Figures are wall-clock on a shared 2-core machine; read them as ratios.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from benchmarks._common import DESIRED
from deucalion.observer import MetricsObserver, TargetsData
from deucalion.replay import Cycle, RecordingSource, RecordingWriter, SourceStats
from deucalion.replay.backtesting import backtest

WEEK = 7 * 86400
STEP = 15.0
T0 = 1_700_000_000.0
MODES = ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user")


class RobustZScore(MetricsObserver):
    """Per series: |x - median| / (1.4826 MAD) over the last ``window`` values; the worst
    score per target, returned (and so alerting) when it passes ``threshold``, else 0."""

    def __init__(
        self, desired_metrics: Iterable[str], window: int = 30, threshold: float = 8.0
    ) -> None:
        super().__init__(desired_metrics)
        self.window, self.threshold = window, threshold
        self.history: dict[tuple[str, str, str], deque[float]] = {}

    def new_data(self, targets_data_dict: TargetsData) -> dict[str, float]:
        out = {}
        for target, samples in targets_data_dict.items():
            worst = 0.0
            for metric, per_series in samples.items():
                for series, value in per_series.items():
                    past = self.history.get((target, metric, series))
                    if past is None:
                        past = self.history[(target, metric, series)] = deque(maxlen=self.window)
                    if len(past) >= 10:
                        ordered = sorted(past)
                        median = ordered[len(ordered) // 2]
                        mad = sorted(abs(v - median) for v in ordered)[len(ordered) // 2]
                        worst = max(worst, abs(value - median) / (1.4826 * mad or 1e-9))
                    past.append(value)
            out[target] = worst if worst >= self.threshold else 0.0
        return out


class VectorZScore(MetricsObserver):
    """The same score over every series at once with NumPy: a ring buffer of the last
    ``window`` values, one ``median`` per step."""

    def __init__(
        self, desired_metrics: Iterable[str], window: int = 30, threshold: float = 8.0
    ) -> None:
        super().__init__(desired_metrics)
        self.window, self.threshold = window, threshold
        self.buffer: Any = None
        self.filled = 0

    def new_data(self, targets_data_dict: TargetsData) -> dict[str, float]:
        import numpy as np

        rows = [
            np.fromiter(per_series.values(), float)
            for samples in targets_data_dict.values()
            for per_series in samples.values()
        ]
        values = np.concatenate(rows)
        if self.buffer is None or self.buffer.shape[1] != values.size:
            self.buffer, self.filled = np.empty((self.window, values.size)), 0
        out = dict.fromkeys(targets_data_dict, 0.0)
        if self.filled >= 10:
            past = self.buffer[: min(self.filled, self.window)]
            median = np.median(past, axis=0)
            mad = np.median(np.abs(past - median), axis=0) * 1.4826
            score = np.abs(values - median) / np.where(mad > 0, mad, 1e-9)
            if float(score.max()) >= self.threshold:
                out[next(iter(out))] = float(score.max())
        self.buffer[self.filled % self.window] = values
        self.filled += 1
        return out


def node_cycles(
    steps: int, targets: int = 1, series_per_target: int | None = None, seed: int = 16
) -> Iterator[Cycle]:
    """Synthetic node_exporter history: CPU counters, load and memory, 15 s apart."""
    rng = random.Random(seed)
    urls = [f"http://node-{i}:9100/metrics" for i in range(targets)]
    cpus = 8 if series_per_target is None else max(1, (series_per_target - 2) // len(MODES))
    counters = {(u, c, m): rng.uniform(1e3, 1e5) for u in urls for c in range(cpus) for m in MODES}
    load = dict.fromkeys(urls, 0.5)
    memory = dict.fromkeys(urls, 8e9)
    for step in range(steps):
        now = T0 + STEP * step
        samples: TargetsData = {}
        for url in urls:
            cpu = {}
            for c in range(cpus):
                for m in MODES:
                    counters[(url, c, m)] += rng.uniform(0, STEP if m == "idle" else 1.0)
                    cpu[f'{{cpu="{c}",mode="{m}"}}'] = round(counters[(url, c, m)], 2)
            load[url] = max(0.0, load[url] + rng.gauss(0, 0.05))
            memory[url] = memory[url] + rng.gauss(0, 1e6)
            samples[url] = {
                "node_cpu_seconds_total": cpu,
                "node_load1": {"{}": load[url]},
                "node_memory_MemAvailable_bytes": {"{}": memory[url]},
                "up": {"{}": 1.0},
            }
        yield Cycle(now, {u: now + 0.004 for u in urls}, samples)


class MemorySource:
    """Cycles held in memory: the backtest without reading a file."""

    def __init__(self, cycles: list[Cycle]) -> None:
        self.list = cycles
        self.stats = SourceStats()

    async def cycles(
        self,
        metrics: Iterable[str] | None = None,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> AsyncIterator[Cycle]:
        for cycle in self.list:
            yield cycle


def _write(path: Path, cycles: Iterable[Cycle]) -> float:
    began = time.perf_counter()
    with RecordingWriter(path) as writer:
        for cycle in cycles:
            writer.write_cycle(cycle)
    return time.perf_counter() - began


async def _read_all(source: RecordingSource) -> int:
    return sum([1 async for _ in source.cycles(DESIRED)])


def _observer_alone(observer: MetricsObserver, cycles: Iterable[Cycle]) -> float:
    began = time.perf_counter()
    for cycle in cycles:
        observer.new_data(cycle.samples)
    return time.perf_counter() - began


def _case(
    name: str,
    steps: int,
    observer: MetricsObserver,
    workdir: Path,
    targets: int = 1,
    series_per_target: int | None = None,
) -> dict[str, Any]:
    span = steps * STEP
    path = workdir / f"{name}.om.gz"
    write = _write(path, node_cycles(steps, targets, series_per_target))
    began = time.perf_counter()
    read_steps = asyncio.run(_read_all(RecordingSource(path)))
    read = time.perf_counter() - began
    alone = _observer_alone(observer, node_cycles(steps, targets, series_per_target))
    result = backtest(observer, path.as_posix(), keep_scores=False, keep_series=[], progress=False)
    assert result.steps == steps == read_steps, (result.steps, steps, read_steps)
    memory = backtest(
        observer,
        MemorySource(list(node_cycles(min(steps, 5760), targets, series_per_target))),
        keep_scores=False,
        keep_series=[],
        progress=False,
    )
    series = sum(
        len(s)
        for per in next(node_cycles(1, targets, series_per_target)).samples.values()
        for n, s in per.items()
        if n != "up"
    )
    per_step = {
        "read the recording": read / steps,
        "the observer (in this process)": alone / steps,
        "dispatch, selection, alerts (the rest)": max(
            0.0, result.wall_seconds / steps - read / steps - alone / steps
        ),
    }
    bottleneck = max(per_step, key=per_step.__getitem__)
    return {
        "case": name,
        "series": series,
        "steps": steps,
        "history_s": span,
        "recording_bytes": path.stat().st_size,
        "write_s": write,
        "read_s": read,
        "observer_alone_s": alone,
        "backtest_s": result.wall_seconds,
        "speed_x": span / result.wall_seconds,
        "speed_from_memory_x": memory.span / memory.wall_seconds,
        "per_step_ms": {k: 1000 * v for k, v in per_step.items()},
        "bottleneck": bottleneck,
        "alerts": len(result.alerts),
    }


async def _record_real(seconds: float, path: Path) -> tuple[int, int, str]:
    from deucalion.config.loading import load_settings
    from deucalion.replay.recording import record
    from tests.integration.servers import ServerUnavailable, start_node_exporter

    try:
        server = start_node_exporter()
    except (ServerUnavailable, RuntimeError) as exc:
        return 0, 0, f"no node_exporter ({exc})"
    try:
        settings = load_settings(
            None,
            environ={},
            default_file=None,
            targets=[server.url + "/metrics"],
            scrape_interval=1.0,
        )
        writer = await record(settings, path, metrics=DESIRED, duration=seconds)
    finally:
        server.stop()
    return writer.cycles, writer.samples, "a real node_exporter"


def main(quick: bool = False) -> dict[str, Any]:
    """Run the three parts; returns the report section and figures."""
    week = (86400 if quick else WEEK) // int(STEP)
    with TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        three = _case("3 metrics", week, RobustZScore(DESIRED), workdir)
        many = _case(
            "10,000 series",
            240 if quick else 960,
            VectorZScore(DESIRED),
            workdir,
            targets=10,
            series_per_target=1000,
        )
        seconds = 10.0 if quick else 60.0
        real = workdir / "real.om.gz"
        cycles, samples, origin = asyncio.run(_record_real(seconds, real))
        real_bytes = real.stat().st_size if cycles else 0
        hour = workdir / "hour.om.gz"
        _write(
            hour,
            (
                c._replace(time=T0 + i, target_times={u: T0 + i + 0.004 for u in c.target_times})
                for i, c in enumerate(node_cycles(3600))
            ),
        )
        hour_bytes = hour.stat().st_size
    rows = []
    for case in (three, many):
        parts = ", ".join(f"{k} {v:.3f} ms" for k, v in case["per_step_ms"].items())
        rows.append(
            f"| {case['case']} ({case['series']:,} series) | {case['steps']:,} steps = "
            f"{case['history_s'] / 86400:.1f} days | {case['backtest_s']:.1f} s | "
            f"**{case['speed_x']:,.0f}x** (from memory {case['speed_from_memory_x']:,.0f}x) | "
            f"{parts} | {case['bottleneck']} |"
        )
    per_hour = real_bytes * 3600 / max(cycles, 1)
    line_us = 1e3 * many["per_step_ms"]["read the recording"] / many["series"]
    markdown = "\n".join(
        [
            "## Replay (bench_replay)",
            "",
            "Backtest speed, as multiples of real time (history replayed / wall time); a week of "
            "15 s steps is 40,320 steps. Target: >= 1,000x for the 3-metric week.",
            "",
            "| history | length | wall | speed | per step | bottleneck |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            f"Recording size: {three['recording_bytes'] / 1e6:.1f} MB for the 3-metric week "
            f"({three['recording_bytes'] / three['steps'] / 66:.1f} bytes a sample, written in "
            f"{three['write_s']:.0f} s). One hour of {origin} at 1 s with the 3 metrics: "
            f"{per_hour / 1e6:.2f} MB (recorded for {cycles} s: {real_bytes:,} bytes, "
            f"{samples:,} samples), a synthetic 8-CPU hour {hour_bytes / 1e6:.2f} MB.",
            "",
            "Per step: the parts are timed separately (reading the recording alone, the observer "
            "alone in this process) and the rest is the whole backtest less those, so it is noisy "
            "on a shared machine (it can come out as 0). At 66 series no part dominates (each is a "
            "few tenths of a millisecond a step); at 10,000 series the observer's own work and "
            f"reading the recording ({line_us:.1f} us a sample line) are the bottleneck, while the "
            "hand-off to the worker stays a few ms.",
            "",
            "Measured on the shared 2-core machine while other helpers ran: read ratios, not "
            "absolute times.",
        ]
    )
    return {
        "markdown": markdown,
        "cases": [three, many],
        "hour": {"real_bytes_per_hour": per_hour, "synthetic_bytes": hour_bytes, "origin": origin},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main(quick=True), indent=2, default=str))

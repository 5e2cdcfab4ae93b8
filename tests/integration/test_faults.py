"""Faults: hung and out-of-memory observers, hostile targets, SIGTERM during a long call.

Each test starts the real thing (worker processes, HTTP on loopback, an application process)
and checks that nothing else stops: cycles keep coming and a good target's data keeps arriving.
A worker killed with SIGKILL mid-call is in test_core_real.py.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import deucalion as dc
from tests.fault_observers import MemoryErrorOnceObserver, SummaryObserver
from tests.helpers import Handler, TargetServer, text, wait_for
from tests.integration.servers import Server
from tests.integration.test_core_real import alive, children_of, survivors
from tests.observers import RecordingObserver, read_records

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
GOOD_BODY = "# TYPE good_metric gauge\ngood_metric 1\n"
BODY_SIZE_LIMIT = 40 * 2**20


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- observers that hang or run out of memory --------------------------------------------------


async def test_a_stopped_worker_is_replaced_after_observer_timeout(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """SIGSTOP on a worker: past observer_timeout it is killed and replaced, data flows again."""
    url = target_server.add("/metrics", text(GOOD_BODY))
    await target_server.start()
    path = tmp_path / "calls.jsonl"
    provisioner = dc.MetricsProvisioner(
        targets=[url], scrape_interval=0.2, observer_timeout=1.0, telemetry={"enabled": False}
    )
    provisioner.register(RecordingObserver({"good_metric"}, path))
    async with provisioner:
        worker = provisioner.workers[0]
        await wait_for(lambda: len(read_records(path)) >= 2)
        victim = worker.pid
        assert victim is not None
        os.kill(victim, signal.SIGSTOP)
        try:
            await wait_for(lambda: worker.stats.timeouts >= 1 and worker.stats.restarts >= 1)
            cycles = provisioner.stats.cycles
            await wait_for(lambda: any(r["pid"] != victim for r in read_records(path)))
            await wait_for(lambda: provisioner.stats.cycles >= cycles + 3)
        finally:
            if alive(victim):
                os.kill(victim, signal.SIGKILL)
    assert not alive(victim), "the stopped worker was left behind"
    assert worker.pid != victim
    fresh = [r for r in read_records(path) if r["pid"] != victim]
    assert all(r["data"][url]["good_metric"] == {"{}": 1.0} for r in fresh)


async def test_memory_error_in_new_data_is_logged_and_the_observer_called_again(
    target_server: TargetServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A MemoryError from a failed allocation in new_data: logged, same worker called again."""
    url = target_server.add("/metrics", text(GOOD_BODY))
    await target_server.start()
    path = tmp_path / "calls.jsonl"
    provisioner = dc.MetricsProvisioner(
        targets=[url], scrape_interval=0.2, telemetry={"enabled": False}
    )
    provisioner.register(MemoryErrorOnceObserver({"good_metric", "up"}, path))
    with caplog.at_level(logging.ERROR, logger="deucalion"):
        async with provisioner:
            worker = provisioner.workers[0]
            await wait_for(lambda: len(_records(path)) >= 2)
    assert "new_data raised MemoryError" in caplog.text
    assert worker.stats.errors == 1 and worker.stats.restarts == 0
    assert {r["pid"] for r in _records(path)} == {worker.pid}
    assert all(r["targets"][url]["series"]["good_metric"] == 1 for r in _records(path))


# --- hostile targets beside a good one ------------------------------------------------------


@functools.cache
def _gzip_bomb() -> bytes:
    """64 MiB of zeros compressed to well under 1 MB."""
    return gzip.compress(bytes(64 * 2**20), 9)


def gzip_bomb() -> Handler:
    # Compressed now, not on the loop at the first request (a second of CPU that would hold
    # up the good target's scrape too).
    body = _gzip_bomb()

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=body,
            headers={"Content-Type": "text/plain; version=0.0.4", "Content-Encoding": "gzip"},
        )

    return handler


def huge_label() -> Handler:
    return text('# TYPE bad_metric gauge\nbad_metric{big="' + "a" * 10 * 2**20 + '"} 1\n')


def million_series() -> Handler:
    return text("".join(f'huge_metric{{i="{i}"}} {i}\n' for i in range(1_000_000)))


def slowloris() -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        for _ in range(600):  # a byte every 50 ms, far past any scrape timeout
            await response.write(b"g")
            await asyncio.sleep(0.05)
        return response

    return handler


def invalid_utf8() -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=b'# TYPE bad_metric gauge\nbad_metric{l="\xff\xfe"} 1\n',
            headers={"Content-Type": "text/plain; version=0.0.4"},
        )

    return handler


# Expected of the bad target: up, and what else to check in its summary.
HOSTILE = {
    "gzip_bomb": (gzip_bomb, 0.0, {}),
    "slowloris": (slowloris, 0.0, {}),
    "invalid_utf8": (invalid_utf8, 0.0, {}),
    # Within body_size_limit: accepted as Prometheus does (no label length limit by default),
    # and the 10 MiB value arrives whole.
    "label_10mb": (huge_label, 1.0, {"longest_key": 10 * 2**20 + len('{big=""}')}),
    # Within body_size_limit: up, every sample counted, the undesired series cost no hand-off.
    "million_series": (million_series, 1.0, {"samples_scraped": 1_000_000.0}),
}


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_a_hostile_target_costs_only_its_own_data(
    case: str, target_server: TargetServer, tmp_path: Path
) -> None:
    """A gzip bomb, a 10 MiB label, 10^6 series, a slowloris or bad UTF-8 beside a good target."""
    make_handler, expected_up, expected = HOSTILE[case]
    good = target_server.add("/good", text(GOOD_BODY))
    bad = target_server.add("/bad", make_handler())
    await target_server.start()
    path = tmp_path / "calls.jsonl"
    provisioner = dc.MetricsProvisioner(
        # The bad target is served from this process, so its body holds up the good one's
        # scrape too: the million series took up to 0.5 s, 2 s in a first cycle, on a machine
        # at load 7. The timeout and the hand-off deadline (half the interval), 5 s, leave a
        # loaded machine room (10x the usual figure); the slowloris still takes 30 s.
        targets=[good, bad],
        scrape_interval=10.0,
        scrape_timeout=5.0,
        body_size_limit=BODY_SIZE_LIMIT,
        telemetry={"enabled": False},
    )
    provisioner.register(
        SummaryObserver({"good_metric", "bad_metric", "up", "scrape_samples_scraped"}, path)
    )
    async with provisioner:
        await wait_for(lambda: len(_records(path)) >= 2, within=90)
        cycles = provisioner.stats.cycles
        await wait_for(lambda: provisioner.stats.cycles > cycles, within=30)
    records = _records(path)
    for record in records:
        assert record["targets"][good]["up"] == 1.0
        assert record["targets"][good]["series"]["good_metric"] == 1
        assert record["targets"][bad]["up"] == expected_up, record["targets"][bad]
        for key, value in expected.items():
            assert record["targets"][bad][key] == value


# --- SIGTERM during a long call ------------------------------------------------------------------

LONG_CALL_APP = """
import sys, time
from pathlib import Path
import deucalion as dc

class Slow(dc.MetricsObserver):
    def new_data(self, targets_data_dict):
        Path(sys.argv[2]).touch()
        time.sleep(60)

provisioner = dc.MetricsProvisioner(targets=[sys.argv[1]], scrape_interval=0.5,
                                    shutdown_grace_period=2, telemetry={"enabled": False})
provisioner.register(Slow({"up"}))
provisioner.run()
"""


def test_sigterm_during_a_long_new_data_exits_cleanly_after_the_grace_period(
    node_exporter: Server, tmp_path: Path
) -> None:
    """SIGTERM while new_data runs for a minute: exit 0 after the 2s grace, no orphan process."""
    started_marker = tmp_path / "started"
    process = subprocess.Popen(
        [sys.executable, "-c", LONG_CALL_APP, f"{node_exporter.url}/metrics", str(started_marker)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not started_marker.exists():
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "new_data was never called"
            time.sleep(0.05)
        tree = children_of(process.pid)
        tree |= {pid for child in tree for pid in children_of(child)}
        assert tree, "the worker is a child of the application"
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=50)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "still busy after 2s" in err
    assert not survivors(tree), "a process outlived the application"
    # A bound on shutdown, not a speed measurement: the 2s grace plus process teardown, with
    # room for a loaded machine (~10x), and still well short of new_data's minute.
    assert took < 30, err

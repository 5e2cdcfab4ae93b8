"""Observer faults through a provisioner with real worker processes (issue 24 items 5, 6, 7,
10): what an observer does wrong costs that observer's call or worker, never the application.
"""

from __future__ import annotations

import asyncio
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

import deucalion as dc
from deucalion.dispatch import keeper as keeper_module
from tests.fault_observers import (
    HangOnLoadObserver,
    SpawningObserver,
    SummaryObserver,
    UnprintableErrorObserver,
)
from tests.helpers import TargetServer, text, wait_for

BODY = "# TYPE good_metric gauge\ngood_metric 1\n"
ROOT = Path(__file__).resolve().parents[2]


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
async def url(target_server: TargetServer) -> str:
    address = target_server.add("/metrics", text(BODY))
    await target_server.start()
    return address


def provisioner_for(
    url: str, *observers: dc.MetricsObserver, **settings: Any
) -> dc.MetricsProvisioner:
    provisioner = dc.MetricsProvisioner(
        targets=[url], scrape_interval=0.1, telemetry={"enabled": False}, **settings
    )
    for observer in observers:
        provisioner.register(observer)
    return provisioner


async def test_an_exception_that_cannot_be_printed_is_an_error_of_its_call(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 7: its __str__ raising killed the call loop; now each call is counted as an error
    and the observer keeps being called."""
    path = tmp_path / "calls.jsonl"
    provisioner = provisioner_for(url, UnprintableErrorObserver({"good_metric"}, path))
    with caplog.at_level(logging.ERROR, logger="deucalion"):
        async with provisioner:
            worker = provisioner.workers[0]
            await wait_for(lambda: worker.stats.errors >= 3)
            assert worker.call_loop is not None
            assert worker.call_loop.deaths == 0
    assert worker.stats.calls >= 3
    assert len(records(path)) >= 3
    assert (
        "new_data raised UnprintableError: <str() of the exception raised RuntimeError>"
        in caplog.text
    )
    assert "a bug in deucalion" not in caplog.text


def pids(path: Path) -> set[int]:
    return {int(line) for line in path.read_text().split()} if path.exists() else set()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_an_observer_whose_install_hangs_is_replaced_and_the_others_run(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 5: unpickling that hangs blocked start() for good. Now it is a hung call: logged,
    counted, its worker killed and a new one tried with backoff, while the others run."""
    loads, calls = tmp_path / "loads", tmp_path / "calls.jsonl"
    provisioner = provisioner_for(
        url,
        HangOnLoadObserver({"good_metric"}, loads),
        SummaryObserver({"good_metric"}, calls),
        observer_timeout=1,
    )
    with caplog.at_level(logging.ERROR, logger="deucalion"):
        async with provisioner:
            hung = provisioner.workers[0]
            await wait_for(lambda: len(records(calls)) >= 3)
            await wait_for(lambda: hung.stats.timeouts >= 2, within=60)
            assert hung.stats.errors >= 2
    assert (
        "observer hangs-on-load: installing it in its worker ran longer than "
        "observer_timeout (1s)" in caplog.text
    )
    assert len(pids(loads)) >= 2
    assert not [pid for pid in pids(loads) if alive(pid)], "a hung worker was left behind"


async def test_without_observer_timeout_a_hung_install_does_not_hold_up_start(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 5: start() waits a bounded time for an install, then lets it go on in the
    background; stop() ends it."""
    monkeypatch.setattr(keeper_module, "START_WAIT", 0.5)
    loads, calls = tmp_path / "loads", tmp_path / "calls.jsonl"
    provisioner = provisioner_for(
        url, HangOnLoadObserver({"good_metric"}, loads), SummaryObserver({"good_metric"}, calls)
    )
    async with provisioner:
        await wait_for(lambda: len(records(calls)) >= 3)
        assert pids(loads)
    assert not [pid for pid in pids(loads) if alive(pid)], "the hung worker was left behind"


HANGING_APP = """
import sys
import deucalion as dc
from tests.fault_observers import HangOnLoadObserver

if __name__ == "__main__":
    provisioner = dc.MetricsProvisioner(targets=[sys.argv[1]], scrape_interval=0.2,
                                        telemetry={"enabled": False})
    provisioner.register(HangOnLoadObserver({"good_metric"}, sys.argv[2]))
    provisioner.run()
"""


def test_two_sigterms_stop_an_application_whose_observer_hangs_on_load(
    tmp_path: Path,
) -> None:
    """Item 5: README promises that a second SIGTERM stops deucalion at once; an install that
    hangs (here with no observer_timeout) is no exception."""
    loads = tmp_path / "loads"
    process = subprocess.Popen(
        [sys.executable, "-c", HANGING_APP, "http://127.0.0.1:9/metrics", str(loads)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not pids(loads):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the observer was never loaded"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert not [pid for pid in pids(loads) if alive(pid)], "the hung worker was left behind"


async def test_processes_started_in_new_data_end_with_their_worker(
    url: str, tmp_path: Path
) -> None:
    """Item 6: a child that new_data starts (and that ignores SIGTERM) outlived its worker's
    replacement and the application's stop. Now it ends with its worker's process group."""
    children_hung, children_calm = tmp_path / "hung", tmp_path / "calm"
    provisioner = provisioner_for(
        url,
        SpawningObserver({"good_metric"}, children_hung, True),
        SpawningObserver({"good_metric"}, children_calm, False),
        observer_timeout=1,
    )
    async with provisioner:
        hung = provisioner.workers[0]
        await wait_for(lambda: hung.stats.timeouts >= 3, within=60)
        replaced = set(pids(children_hung))
        await wait_for(lambda: len(pids(children_calm)) >= 2)
    assert len(replaced) >= 3
    # The group gets SIGKILL; a child ends when the kernel next schedules it, which a loaded
    # machine does not do at once (and nothing of ours reaps it): up to 10 s.
    for path, what in (
        (children_hung, "orphans of hung workers"),
        (children_calm, "orphans after stop"),
    ):
        try:
            await wait_for(lambda path=path: not [p for p in pids(path) if alive(p)], within=10)
        except AssertionError:
            raise AssertionError(f"{what}: {[p for p in pids(path) if alive(p)]}") from None


SPAWNING_APP = """
import sys
from pathlib import Path
import deucalion as dc
from tests.fault_observers import SpawningObserver

if __name__ == "__main__":
    provisioner = dc.MetricsProvisioner(targets=[sys.argv[1]], scrape_interval=0.2,
                                        telemetry={"enabled": False})
    provisioner.register(SpawningObserver({"good_metric"}, Path(sys.argv[2]), {busy}))
    provisioner.run()
"""


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rpartition(")")[2].split()[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's /proc and prctl")
@pytest.mark.parametrize("busy", [True, False], ids=["busy-in-new-data", "between-calls"])
async def test_kill_9_of_the_application_ends_its_workers_and_their_children(
    url: str, tmp_path: Path, busy: bool
) -> None:
    """An application killed with SIGKILL (no shutdown of its own) left the `sleep` new_data
    started running, whether the worker was still in new_data or between calls. Now the
    worker notices its application is gone and kills its process group: worker and child."""
    children, log = tmp_path / "children", tmp_path / "stderr"
    stderr = os.open(log, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SPAWNING_APP.replace("{busy}", str(busy)),
            url,
            str(children),
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    finally:
        os.close(stderr)
    try:
        await wait_for(lambda: pids(children) or process.returncode is not None, within=60)
        assert process.returncode is None, log.read_text()
        child = min(pids(children))
        worker = parent_of(child)
        assert worker != process.pid and parent_of(worker) == process.pid
    finally:
        process.kill()
        await process.wait()
    # No timing claim: a loaded machine may take a while to schedule the dying; 30 s is far
    # more than the second or so it takes.
    leftovers = lambda: [p for p in (worker, *pids(children)) if alive(p)]  # noqa: E731
    try:
        await wait_for(lambda: not leftovers(), within=30)
    except AssertionError:
        left = leftovers()
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"left running after kill -9 of the application: {left}") from None

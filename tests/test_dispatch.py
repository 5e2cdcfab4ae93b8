"""ObserverWorker: a process per observer, state kept, newest data wins, faults contained."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from deucalion.dispatch import CallOutcome, ObserverWorker
from deucalion.errors import ConfigError, DeucalionError
from tests.helpers import records_at_least, wait_for
from tests.observers import (
    DyingOnLoadObserver,
    ExitOnceObserver,
    HangOnceObserver,
    InterpreterObserver,
    ModulesObserver,
    RaisingObserver,
    RecordingObserver,
    TimeoutRaisingObserver,
    UnloadableObserver,
    UnpicklableErrorObserver,
    UnpicklableResultObserver,
    read_records,
)

DATA = {"http://t/metrics": {"up": {"{}": 1.0}}}


async def started(worker: ObserverWorker) -> ObserverWorker:
    await worker.start()
    return worker


async def test_state_persists_in_a_process_of_its_own(tmp_path: Path) -> None:
    """An attribute changed in new_data is still changed at the next call, in another process."""
    path = tmp_path / "calls.jsonl"
    worker = await started(ObserverWorker(RecordingObserver({"up"}, path)))
    try:
        for _ in range(3):
            worker.submit(DATA)
            await wait_for(lambda: not worker.busy and worker._pending is None)
            await asyncio.sleep(0.05)
        await wait_for(records_at_least(path, 3))
    finally:
        await worker.close()
    records = read_records(path)
    assert [r["calls"] for r in records] == [1, 2, 3]
    assert {r["pid"] for r in records} == {worker.pid}
    assert worker.pid != os.getpid()
    assert records[0]["data"] == DATA


async def test_a_busy_observer_gets_only_the_newest_data(tmp_path: Path) -> None:
    """While a call runs, older pending data is dropped and counted; no backlog builds up."""
    path = tmp_path / "calls.jsonl"
    worker = await started(ObserverWorker(RecordingObserver({"up"}, path, sleep=0.5)))
    try:
        worker.submit({"first": {}})
        await wait_for(lambda: worker.busy)
        for i in range(5):
            worker.submit({f"pending-{i}": {}})
        await wait_for(records_at_least(path, 2))
        await asyncio.sleep(0.7)
    finally:
        await worker.close()
    seen = [next(iter(r["data"])) for r in read_records(path)]
    assert seen == ["first", "pending-4"]
    assert worker.stats.dropped == 4


async def test_an_observer_that_raises_keeps_being_called(tmp_path: Path) -> None:
    """new_data raising is reported in the outcome and counted; the next call goes on."""
    path = tmp_path / "calls.jsonl"
    outcomes: list[CallOutcome] = []
    worker = await started(ObserverWorker(RaisingObserver({"up"}, path),
                                          on_result=outcomes.append))
    try:
        for expected in (1, 2):
            worker.submit(DATA)
            await wait_for(lambda n=expected: len(outcomes) >= n)
    finally:
        await worker.close()
    assert [type(o.error) for o in outcomes] == [ValueError, ValueError]
    assert worker.stats.errors == 2
    assert worker.stats.restarts == 0
    assert [r["calls"] for r in read_records(path)] == [1, 2]


async def test_a_worker_that_exits_is_replaced_and_called_again(tmp_path: Path) -> None:
    """An observer calling os._exit gets a new worker, installed from the registered observer."""
    path = tmp_path / "calls.jsonl"
    worker = await started(ObserverWorker(ExitOnceObserver({"up"}, path)))
    first_pid = worker.pid
    try:
        worker.submit(DATA)
        await wait_for(lambda: worker.stats.restarts == 1)
        worker.submit(DATA)
        await wait_for(records_at_least(path, 1))
    finally:
        await worker.close()
    records = read_records(path)
    assert records[0]["pid"] == worker.pid != first_pid
    assert records[0]["calls"] == 1
    assert records[0]["data"] == DATA  # the new worker got every series key


async def test_a_hung_worker_is_replaced_after_the_observer_timeout(tmp_path: Path) -> None:
    """With observer_timeout set, a call that hangs costs its worker, not the observer."""
    path = tmp_path / "calls.jsonl"
    worker = await started(ObserverWorker(HangOnceObserver({"up"}, path), timeout=0.5))
    first_pid = worker.pid
    try:
        worker.submit(DATA)
        await wait_for(lambda: worker.stats.restarts == 1)
        worker.submit(DATA)
        await wait_for(records_at_least(path, 1))
    finally:
        await worker.close()
    assert worker.stats.timeouts == 1
    assert read_records(path)[0]["pid"] != first_pid
    with pytest.raises(ProcessLookupError):
        os.kill(first_pid, 0)  # type: ignore[arg-type]


async def test_closing_ends_the_worker_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """close() leaves no process behind, nor a request task, even when a call is running."""
    path = tmp_path / "calls.jsonl"
    worker = await started(ObserverWorker(RecordingObserver({"up"}, path, sleep=30)))
    pid = worker.pid
    worker.submit(DATA)
    await wait_for(lambda: worker.busy)
    await worker.close(grace=0.2)
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    await asyncio.sleep(0.05)  # let a request task left behind fail on the closed socket
    gc.collect()
    assert "never retrieved" not in caplog.text


async def test_the_worker_does_not_import_aiohttp_or_pydantic() -> None:
    """A worker holds the observer and the standard library, not the application's stack."""
    outcomes: list[CallOutcome] = []
    worker = await started(ObserverWorker(ModulesObserver({"up"}), on_result=outcomes.append))
    try:
        worker.submit(DATA)
        await wait_for(lambda: outcomes)
    finally:
        await worker.close()
    modules = set(outcomes[0].result)
    assert "deucalion.observer" in modules
    assert not {"aiohttp", "pydantic", "yaml", "prometheus_client", "asyncio",
                "deucalion.dispatch", "deucalion.provisioner"} & modules
    # The observer's class is importable, so it travelled by reference: no cloudpickle needed.
    assert "cloudpickle" not in modules


async def test_the_worker_has_the_applications_argv_path_and_cwd() -> None:
    """new_data sees the application's sys.argv, sys.path and working directory."""
    outcomes: list[CallOutcome] = []
    worker = await started(ObserverWorker(InterpreterObserver({"up"}), on_result=outcomes.append))
    try:
        worker.submit(DATA)
        await wait_for(lambda: outcomes)
    finally:
        await worker.close()
    seen = outcomes[0].result
    assert seen == {"argv": sys.argv, "path": sys.path, "cwd": os.getcwd()}


@pytest.mark.parametrize(("observer", "message"), [
    (UnpicklableResultObserver({"up"}), "new_data returned what cannot be sent back"),
    (UnpicklableErrorObserver({"up"}), "ValueError: feature store unreachable"),
])
async def test_what_cannot_travel_back_is_an_error_of_the_call(
    observer: object, message: str
) -> None:
    """A result or exception pickle cannot carry becomes the call's error; the worker stays."""
    outcomes: list[CallOutcome] = []
    worker = await started(ObserverWorker(observer, on_result=outcomes.append))  # type: ignore[arg-type]
    try:
        for expected in (1, 2):
            worker.submit(DATA)
            await wait_for(lambda n=expected: len(outcomes) >= n)
    finally:
        await worker.close()
    assert all(message in str(o.error) for o in outcomes), [o.error for o in outcomes]
    assert outcomes[0].error is not None
    # The worker's traceback comes along, naming where new_data failed.
    assert "new_data" in str(outcomes[0].error.__cause__)
    assert worker.stats.restarts == 0


async def test_an_unpicklable_observer_is_refused_with_its_name(tmp_path: Path) -> None:
    """An observer that cannot reach its worker is a ConfigError naming it, at start."""
    observer = RecordingObserver({"up"}, tmp_path / "x")
    observer.lock = threading.Lock()  # type: ignore[attr-defined]
    worker = ObserverWorker(observer)
    with pytest.raises(ConfigError, match="RecordingObserver cannot be sent"):
        await worker.start()
    await worker.close()


async def test_a_worker_killed_while_idle_is_replaced_at_the_next_call(tmp_path: Path) -> None:
    """A worker that died between calls (OOM killer, kill -9) is replaced, not silently lost."""
    path = tmp_path / "calls.jsonl"
    worker = await started(ObserverWorker(RecordingObserver({"up"}, path)))
    victim = worker.pid
    assert victim is not None
    try:
        os.kill(victim, signal.SIGKILL)
        await asyncio.sleep(0.5)  # let the pool notice that its process is gone
        worker.submit(DATA)
        await wait_for(lambda: worker.stats.restarts == 1)
        worker.submit(DATA)
        await wait_for(records_at_least(path, 1))
    finally:
        await worker.close()
    assert read_records(path)[0]["pid"] not in (victim, os.getpid())


async def test_a_timeout_error_raised_by_new_data_is_the_observers_error(tmp_path: Path) -> None:
    """new_data raising TimeoutError is an error of the call; the worker and its state stay."""
    outcomes: list[CallOutcome] = []
    path = tmp_path / "calls.jsonl"
    worker = await started(ObserverWorker(TimeoutRaisingObserver({"up"}, path), timeout=30,
                                          on_result=outcomes.append))
    try:
        for expected in (1, 2):
            worker.submit(DATA)
            await wait_for(lambda n=expected: len(outcomes) >= n)
    finally:
        await worker.close()
    assert [type(o.error) for o in outcomes] == [TimeoutError, TimeoutError]
    assert worker.stats.restarts == 0 and worker.stats.timeouts == 0
    assert [r["calls"] for r in read_records(path)] == [1, 2]


@pytest.mark.parametrize(("observer", "reason"), [
    (UnloadableObserver({"up"}), "ModuleNotFoundError: No module named 'feature_store'"),
    (DyingOnLoadObserver({"up"}), "ended while starting"),
])
async def test_a_worker_that_cannot_load_its_observer_is_an_error_saying_why(
    observer: object, reason: str
) -> None:
    """start() fails naming the observer and the worker's own reason; no process is left."""
    worker = ObserverWorker(observer)  # type: ignore[arg-type]
    with pytest.raises(DeucalionError, match="worker process of observer") as info:
        await worker.start()
    message = str(info.value)
    assert type(observer).__name__ in message and reason in message
    assert worker.pid is None and not worker.ready
    await worker.close()

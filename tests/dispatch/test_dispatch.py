"""ObserverWorker: a process per observer, state kept, newest data wins, faults contained."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from deucalion.dispatch import CallOutcome, ObserverError, ObserverWorker
from deucalion.errors import ConfigError, DeucalionError
from tests.fault_observers import UnpicklableResultObserver
from tests.helpers import LoopProbe, records_at_least, wait_for
from tests.observers import (
    BallastObserver,
    BaseExceptionObserver,
    CustomStop,
    DataTimeObserver,
    DyingOnLoadObserver,
    ExitAlwaysObserver,
    ExitOnceObserver,
    HangOnceObserver,
    InterpreterObserver,
    LearningObserver,
    ModelObserver,
    ModulesObserver,
    NeedsCode,
    RaisingObserver,
    RecordingObserver,
    TimeoutRaisingObserver,
    UnloadableObserver,
    UnpicklableErrorObserver,
    UnrebuildableErrorObserver,
    read_records,
)

DATA = {"http://t/metrics": {"up": {"{}": 1.0}}}


async def started(worker: ObserverWorker) -> ObserverWorker:
    await worker.start()
    return worker


async def call_once(
    worker: ObserverWorker, outcomes: list[CallOutcome], data: Any = DATA, **times: Any
) -> CallOutcome:
    """Submit ``data`` and wait for its outcome."""
    expected = len(outcomes) + 1
    worker.submit(data, **times)
    await wait_for(lambda: len(outcomes) >= expected)
    return outcomes[-1]


async def called(
    observer: Any,
    times: int = 1,
    data: Any = DATA,
    *,
    observer_timeout: float | None = None,
    **call: Any,
) -> tuple[ObserverWorker, list[CallOutcome]]:
    """Start a worker for ``observer``, call it ``times`` times with ``data``, close it, and
    return the closed worker (its stats) with the outcome of every call."""
    outcomes: list[CallOutcome] = []
    worker = await started(
        ObserverWorker(observer, timeout=observer_timeout, on_result=outcomes.append)
    )
    try:
        for _ in range(times):
            await call_once(worker, outcomes, data, **call)
    finally:
        await worker.close()
    return worker, outcomes


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
    worker, outcomes = await called(RaisingObserver({"up"}, path), times=2)
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
    _, outcomes = await called(ModulesObserver({"up"}))
    modules = set(outcomes[0].result)
    assert "deucalion.observer" in modules
    assert (
        not {
            "aiohttp",
            "pydantic",
            "yaml",
            "prometheus_client",
            "asyncio",
            "deucalion.dispatch.calls",
            "deucalion.dispatch.process",
            "deucalion.provisioner",
        }
        & modules
    )
    # The observer's class is importable, so it travelled by reference: no cloudpickle needed.
    assert "cloudpickle" not in modules


async def test_the_worker_has_the_applications_argv_path_and_cwd() -> None:
    """new_data sees the application's sys.argv, sys.path and working directory."""
    _, outcomes = await called(InterpreterObserver({"up"}))
    seen = outcomes[0].result
    assert seen == {"argv": sys.argv, "path": sys.path, "cwd": os.getcwd()}


@pytest.mark.parametrize(
    ("observer", "message"),
    [
        (UnpicklableResultObserver({"up"}), "new_data returned what cannot be sent back"),
        (UnpicklableErrorObserver({"up"}), "ValueError: feature store unreachable"),
    ],
)
async def test_what_cannot_travel_back_is_an_error_of_the_call(
    observer: object, message: str
) -> None:
    """A result or exception pickle cannot carry becomes the call's error; the worker stays."""
    worker, outcomes = await called(observer, times=2)
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
    path = tmp_path / "calls.jsonl"
    worker, outcomes = await called(
        TimeoutRaisingObserver({"up"}, path), times=2, observer_timeout=30
    )
    assert [type(o.error) for o in outcomes] == [TimeoutError, TimeoutError]
    assert worker.stats.restarts == 0 and worker.stats.timeouts == 0
    assert [r["calls"] for r in read_records(path)] == [1, 2]


@pytest.mark.parametrize(
    ("observer", "reason"),
    [
        (UnloadableObserver({"up"}), "ModuleNotFoundError: No module named 'feature_store'"),
        (DyingOnLoadObserver({"up"}), "ended while starting"),
    ],
)
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


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_the_dispatch_is_a_process_pool_executor_called_with_run_in_executor() -> None:
    """What users read in deucalion/dispatch/: a ProcessPoolExecutor per observer, spawn, and
    run_in_executor for every call."""
    package = Path(__file__).parents[2] / "deucalion" / "dispatch"
    source = (package / "process.py").read_text() + (package / "calls.py").read_text()
    assert "ProcessPoolExecutor(" in source and "max_workers=1" in source
    assert "loop.run_in_executor(executor, in_worker.call" in source
    assert 'START_METHOD = "spawn"' in source


async def test_a_busy_worker_killed_with_sigkill_is_replaced(tmp_path: Path) -> None:
    """SIGKILL in the middle of new_data loses that call only: a new worker takes the next."""
    path = tmp_path / "calls.jsonl"
    worker = await started(ObserverWorker(RecordingObserver({"up"}, path, sleep=3)))
    victim = worker.pid
    assert victim is not None
    try:
        worker.submit(DATA)
        await wait_for(lambda: worker.busy)
        os.kill(victim, signal.SIGKILL)
        await wait_for(lambda: worker.stats.restarts == 1)
        worker.submit(DATA)
        await wait_for(records_at_least(path, 1), within=30)
    finally:
        await worker.close()
    assert worker.stats.errors == 1
    assert read_records(path)[0]["pid"] == worker.pid != victim
    assert not alive(victim)


@pytest.mark.parametrize(
    ("kind", "raised"),
    [("exit", SystemExit), ("interrupt", KeyboardInterrupt), ("custom", CustomStop)],
)
async def test_a_base_exception_in_new_data_is_an_error_of_that_call(
    kind: str, raised: type[BaseException], tmp_path: Path
) -> None:
    """sys.exit, KeyboardInterrupt and a BaseException of the user's are logged, counted and
    the next cycle calls again, in the same worker: nothing ends, here or there."""
    path = tmp_path / "calls.jsonl"
    worker, outcomes = await called(BaseExceptionObserver({"up"}, path, kind), times=2)
    assert [type(o.error) for o in outcomes] == [raised, raised]
    assert worker.stats.errors == 2 and worker.stats.calls == 2 and worker.stats.restarts == 0
    assert [r["calls"] for r in read_records(path)] == [1, 2]


async def test_an_exception_that_cannot_be_rebuilt_travels_as_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception class pickle cannot rebuild arrives as its type, message and traceback,
    not as the TypeError of rebuilding it."""
    _, (outcome,) = await called(UnrebuildableErrorObserver({"up"}))
    assert isinstance(outcome.error, ObserverError)
    assert not isinstance(outcome.error, NeedsCode)
    assert str(outcome.error) == "NeedsCode: feature lookup failed with code 42"
    assert "raise NeedsCode" in str(outcome.error.__cause__)
    assert "feature lookup failed with code 42" in caplog.text
    assert "raise NeedsCode" in caplog.text


async def test_a_repeated_error_is_logged_in_full_once_then_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A raising observer logs its traceback once, then one line per repeat with a count."""
    path = tmp_path / "calls.jsonl"
    await called(RaisingObserver({"up"}, path), times=3)
    messages = [r.getMessage() for r in caplog.records if "new_data raised" in r.getMessage()]
    assert len(messages) == 3
    assert "Traceback" in messages[0] and "model exploded" in messages[0]
    assert [len(m.splitlines()) for m in messages[1:]] == [1, 1]
    assert "again (2 times in a row" in messages[1]
    assert "again (3 times in a row" in messages[2]


async def test_data_time_in_new_data_is_the_scrape_time_of_the_data() -> None:
    """A real observer reads dc.data_time() and dc.data_times(): the cycle's and each target's
    scrape times handed with the data, not the worker's clock."""
    data = {"http://a/metrics": {"up": {"{}": 1.0}}, "http://b/metrics": {"up": {"{}": 0.0}}}
    _, (outcome,) = await called(
        DataTimeObserver({"up"}),
        data=data,
        cycle_time=1000.0,
        target_times={"http://a/metrics": 1000.25},
    )
    assert outcome.error is None, outcome.error
    assert outcome.result == {
        "cycle": 1000.0,
        "targets": {"http://a/metrics": 1000.25, "http://b/metrics": 1000.0},
        "all": {"http://a/metrics": 1000.25},
    }


async def test_what_the_observer_learned_survives_kill_9_of_its_worker() -> None:
    """With checkpoints, a replaced worker starts from the newest state, not from scratch."""
    outcomes: list[CallOutcome] = []
    worker = await started(
        ObserverWorker(
            LearningObserver({"up"}), on_result=outcomes.append, checkpoint_interval=0.001
        )
    )
    try:
        for _ in range(3):
            await call_once(worker, outcomes)
        await wait_for(lambda: worker.stats.checkpoints >= 3)
        victim = worker.pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        worker.submit(DATA)
        await wait_for(lambda: worker.stats.restarts == 1)
        after = await call_once(worker, outcomes)
    finally:
        await worker.close()
    assert after.result["pid"] != victim
    # Three calls learned and checkpointed; the call at the kill may have been lost with its
    # worker, or made before the kill and checkpointed.
    assert after.result["seen"] in (4, 5) and after.result["total"] == after.result["seen"]
    assert worker.stats.restarts == 1


async def test_without_checkpoints_a_replaced_worker_starts_from_the_registered_observer() -> None:
    """Checkpoints are opt-in: without them a new worker starts from scratch."""
    outcomes: list[CallOutcome] = []
    worker = await started(ObserverWorker(LearningObserver({"up"}), on_result=outcomes.append))
    try:
        for _ in range(2):
            await call_once(worker, outcomes)
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        # The call right after the kill may have gone to the dead worker: the one after that
        # has a new worker.
        worker.submit(DATA)
        await wait_for(lambda: worker.stats.restarts == 1)
        after = await call_once(worker, outcomes)
    finally:
        await worker.close()
    assert after.result["seen"] == 1


async def test_a_checkpoint_file_lets_a_restarted_application_resume(tmp_path: Path) -> None:
    """Stopped and started again with the same checkpoint_path, the observer goes on from
    where it was; the file is replaced atomically (no partial file is left)."""
    observer = LearningObserver({"up"})
    for expected in (1, 2, 3), (4, 5, 6):
        outcomes: list[CallOutcome] = []
        worker = await started(
            ObserverWorker(
                observer,
                on_result=outcomes.append,
                checkpoint_interval=3600,
                checkpoint_path=tmp_path / "state",
            )
        )
        try:
            for _ in range(3):
                await call_once(worker, outcomes)
        finally:
            await worker.close(grace=5)  # takes a last checkpoint
        assert [o.result["seen"] for o in outcomes] == list(expected)
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["LearningObserver.pickle"]


async def test_a_checkpoint_that_fails_keeps_the_previous_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An observer that cannot be pickled at a checkpoint is logged; the previous good state
    is what a new worker gets."""
    outcomes: list[CallOutcome] = []
    worker = await started(
        ObserverWorker(
            LearningObserver({"up"}, unpicklable_at=2),
            on_result=outcomes.append,
            checkpoint_interval=0.001,
        )
    )
    try:
        await call_once(worker, outcomes)
        await wait_for(lambda: worker.stats.checkpoints == 1)
        await call_once(worker, outcomes)
        await wait_for(lambda: worker.stats.checkpoint_failures == 1)
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        worker.submit(DATA)
        await wait_for(lambda: worker.stats.restarts == 1)
        after = await call_once(worker, outcomes)
    finally:
        await worker.close()
    assert after.result["seen"] == 2  # from the checkpoint after the first call
    assert "its checkpoint failed" in caplog.text


async def test_a_checkpoint_file_that_does_not_load_is_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged checkpoint file is logged; the observer starts as it was registered."""
    (tmp_path / "LearningObserver.pickle").write_bytes(b"not a pickle")
    outcomes: list[CallOutcome] = []
    worker = await started(
        ObserverWorker(
            LearningObserver({"up"}),
            on_result=outcomes.append,
            checkpoint_interval=60,
            checkpoint_path=tmp_path,
        )
    )
    try:
        outcome = await call_once(worker, outcomes)
    finally:
        await worker.close()
    assert outcome.result["seen"] == 1
    assert "its checkpoint cannot be loaded" in caplog.text


async def test_the_call_loop_is_restarted_when_it_dies_of_a_bug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug that ends an observer's call loop is logged with its traceback and the loop is
    started again: the next data is still handed over."""
    outcomes: list[CallOutcome] = []

    def on_result(outcome: CallOutcome) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 1:
            raise CustomStop("a bug past Exception")

    worker = await started(ObserverWorker(LearningObserver({"up"}), on_result=on_result))
    try:
        await call_once(worker, outcomes)
        await wait_for(lambda: worker.call_loop is not None and worker.call_loop.deaths == 1)
        await wait_for(lambda: worker.call_loop is not None and worker.call_loop.running)
        after = await call_once(worker, outcomes)
    finally:
        await worker.close()
    assert after.result["seen"] == 2
    assert "the call loop of observer LearningObserver failed" in caplog.text
    assert "a bug past Exception" in caplog.text


async def test_the_loop_probe_sees_a_blocked_loop() -> None:
    """The stall probe the tests below rely on counts a loop held by a blocking call or by
    code running on it, however busy the machine (those are not waits for a CPU)."""
    probe = LoopProbe()
    probe.start()
    await asyncio.sleep(0.05)
    time.sleep(0.3)  # noqa: ASYNC251 - the blocking call the probe must see
    await asyncio.sleep(0.05)
    ends = time.thread_time() + 0.3
    while time.thread_time() < ends:  # running, on the loop: 0.3 s of this thread's CPU
        pass
    await asyncio.sleep(0.05)
    await probe.stop()
    assert sum(stall > 0.25 for stall in probe.stalls) == 2, sorted(probe.stalls)[-3:]


async def test_replacing_a_big_worker_never_stalls_the_event_loop() -> None:
    """A probe ticking every 10 ms sees no long gap while a hung 1 GB worker is killed,
    reaped and replaced: the kill only signals, reaping and starting run in a thread.

    The bound is a correctness check of non-blocking, not a speed target: reaping 1 GB on the
    loop took 62 ms before. The probe leaves out the time the process waited for a CPU, so a
    loaded machine meets the bound (100 ms, 10x the probe's tick) with room; the test takes
    the longest stall around the replacement only."""
    probe = LoopProbe()
    worker = await started(ObserverWorker(BallastObserver({"up"}, 1024), timeout=4.0))
    victim = worker.pid
    assert victim is not None
    try:
        worker.submit(DATA)
        await wait_for(lambda: worker.busy)
        await asyncio.sleep(3.0)  # the ballast is written by now
        probe.start()
        await wait_for(lambda: worker.stats.restarts == 1, within=60)
        longest = await probe.stop()
    finally:
        await worker.close()
    assert worker.stats.timeouts == 1 and not alive(victim)
    assert longest < 0.1, f"the loop stalled for {longest * 1000:.0f} ms"


ORPHAN_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from deucalion.dispatch import ObserverWorker
    from tests.observers import RecordingObserver

    async def main():
        worker = ObserverWorker(RecordingObserver({"up"}, sys.argv[1], sleep=3600))
        await worker.start()
        worker.submit({"t": {}})
        print(worker.pid, flush=True)
        await asyncio.sleep(3600)

    if __name__ == "__main__":
        asyncio.run(main())
""")


def test_a_busy_worker_dies_with_its_application_killed_with_sigkill(tmp_path: Path) -> None:
    """kill -9 of the application leaves no worker behind, even one busy in new_data (the
    parent-death signal ends it)."""
    script = tmp_path / "app.py"
    script.write_text(ORPHAN_SCRIPT)
    root = Path(__file__).parents[2]
    app = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "calls.jsonl")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert app.stdout is not None
        pid = int(app.stdout.readline())
        time.sleep(0.5)  # new_data is running
        assert alive(pid)
        app.kill()
        app.wait()
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(pid), "the worker outlived its application"
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        assert app.stdout is not None
        app.stdout.close()


def rss_mb() -> float:
    """This process's resident memory, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_a_large_observer_is_sent_without_a_copy_or_a_stall() -> None:
    """Starting the worker of a 200 MB observer keeps no pickled copy in the application (it
    is pickled straight into the worker's pipe) and never stalls the event loop (the probe's
    bound, 100 ms, is generous: pickling it to bytes on the loop took about 0.5 s; the probe
    leaves out the time the process waited for a CPU, so a loaded machine meets it too)."""
    observer = ModelObserver({"up"}, 200)
    probe = LoopProbe()
    before = rss_mb()
    probe.start()
    outcomes: list[CallOutcome] = []
    worker = ObserverWorker(observer, on_result=outcomes.append)
    try:
        await worker.start()
        longest = await probe.stop()
        grown = rss_mb() - before
        outcome = await call_once(worker, outcomes)
    finally:
        await worker.close()
    assert outcome.result == 200 << 20  # the whole model reached the worker
    assert grown < 50, f"the application grew by {grown:.0f} MB"
    assert longest < 0.1, f"the loop stalled for {longest * 1000:.0f} ms"


async def test_a_worker_that_keeps_dying_is_replaced_with_growing_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each death breaks the executor (BrokenProcessPool) and a new one is started, waiting
    longer each time while the worker keeps dying."""
    caplog.set_level(logging.INFO, logger="deucalion.dispatch")
    worker = await started(ObserverWorker(ExitAlwaysObserver({"up"})))
    try:
        for restarts in (1, 2, 3):
            worker.submit(DATA)
            await wait_for(lambda n=restarts: worker.stats.restarts == n)
    finally:
        await worker.close()
    assert worker.stats.errors == 3
    delays = [
        r.getMessage() for r in caplog.records if "starting a new worker in" in r.getMessage()
    ]
    assert [d.rpartition(" in ")[2] for d in delays] == ["1.0s", "2.0s"]
    assert "BrokenProcessPool" in caplog.text or "terminated abruptly" in caplog.text


LOGGING_SCRIPT = textwrap.dedent("""
    import asyncio, logging, sys
    from deucalion.dispatch import ObserverWorker
    from tests.observers import LoggingObserver

    async def main():
        outcomes = []
        worker = ObserverWorker(LoggingObserver({"up"}), on_result=outcomes.append)
        await worker.start()
        worker.submit({"http://t/metrics": {"up": {"{}": 1.0}}})
        while not outcomes:
            await asyncio.sleep(0.05)
        await worker.close()

    if __name__ == "__main__":
        logging.basicConfig(level=sys.argv[1], format="[app] %(levelname)s %(name)s: %(message)s")
        asyncio.run(main())
""")


@pytest.mark.parametrize("level", ["INFO", "WARNING"])
def test_an_observer_logs_in_its_worker_as_the_application_does(tmp_path: Path, level: str) -> None:
    """A spawned worker starts with no logging: an observer's log.info was lost, its warnings
    printed bare. It logs at the application's level, in the application's format."""
    script = tmp_path / "app.py"
    script.write_text(LOGGING_SCRIPT)
    root = Path(__file__).parents[2]
    app = subprocess.run(
        [sys.executable, str(script), level],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert app.returncode == 0, app.stderr
    logged = "[app] INFO tests.observers: saw 1 target(s)" in app.stderr
    assert logged == (level == "INFO"), app.stderr

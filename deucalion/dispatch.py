"""Handing data to observers: a ``ProcessPoolExecutor(max_workers=1)`` per observer, called
with ``loop.run_in_executor``.

Each registered observer gets an executor of its own whose ``initializer``
(``deucalion._in_worker.install``) unpickles the observer once in the worker process; every call
is ``loop.run_in_executor(executor, _in_worker.call, payload)`` and sends only the cycle's data
and its scrape times, so the observer's state (a model, a window of past values) lives on in the
worker between calls and a large model is never sent again. At most one call is in flight per
observer; while it runs only the newest data waits, and older data is dropped and counted.

The start method is **spawn**, never fork: the application runs an event loop and threads (the
executors' own manager threads among them) that a forked child would inherit in an undefined
state. spawn rather than forkserver because a sidecar runs one or two observers: forkserver's
saving, workers sharing the modules its server preloaded, would not pay for the server process
itself, and that server is process-wide state shared with whatever else the host application
runs. spawn also behaves the same on every platform. Its one trap: spawn imports the
application's ``__main__`` again in each worker, so a script must start deucalion under
``if __name__ == "__main__":`` (a script that does not gets an error naming the fix).

Faults stay with their observer: what ``new_data`` raises is that call's error; a worker that
dies gives ``BrokenProcessPool`` and a new executor, with backoff while it keeps dying; a call
past ``observer_timeout`` costs its worker, killed by the pid it reported itself (or with
``kill_workers()`` on Python 3.14+) and replaced. Starting, reaping and shutting down executors,
and pickling the observer for them, happen in a thread of the observer's own, never on the
event loop. With ``checkpoint_interval`` the worker pickles its observer between calls and the
newest checkpoint is what a new worker (and, with ``checkpoint_path``, a restarted application)
starts from.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from deucalion import _in_worker
from deucalion._payload import PayloadEncoder
from deucalion._supervision import Supervised
from deucalion.errors import ConfigError, DeucalionError
from deucalion.observer import MetricsObserver, TargetsData, name_of

__all__ = [
    "CallOutcome",
    "ObserverError",
    "ObserverWorker",
    "RemoteTraceback",
    "refuse_in_worker_bootstrap",
]

log = logging.getLogger(__name__)

#: Never fork (see the module's docstring).
START_METHOD = "spawn"
# Replacing a worker that keeps dying waits longer each time, up to this.
MAX_RESTART_BACKOFF = 30.0
# Results larger than this (pickled) are unpickled in a thread, not on the event loop.
UNPICKLE_INLINE_MAX_BYTES = 1 << 20
# Payloads with more series than this are encoded in a thread, not on the event loop.
ENCODE_INLINE_MAX_SERIES = 2000

MAIN_GUARD_FIX = (
    'put the code that builds and runs the provisioner under `if __name__ == "__main__":` '
    "(observers run in processes started with multiprocessing's spawn method, which imports "
    "your script again in each of them)"
)


@dataclass
class CallOutcome:
    """The end of one ``new_data`` call."""

    observer: MetricsObserver
    data: TargetsData
    result: Any = None
    error: BaseException | None = None
    duration: float = 0.0
    """Seconds from hand-off to the result."""
    latency: float = 0.0
    """Seconds from hand-off until ``new_data`` started in the worker."""


ResultHandler = Callable[[CallOutcome], Awaitable[None] | None]


@dataclass
class ObserverStats:
    """Counters for one observer, read by telemetry."""

    calls: int = 0
    errors: int = 0
    restarts: int = 0
    dropped: int = 0
    timeouts: int = 0
    checkpoints: int = 0
    checkpoint_failures: int = 0


class RemoteTraceback(Exception):
    """The worker's traceback of an exception, attached to it as ``__cause__``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


class ObserverError(DeucalionError):
    """What ``new_data`` raised, when the exception itself could not be rebuilt here (its
    message and the worker's traceback, as ``__cause__``, still tell what happened)."""


def refuse_in_worker_bootstrap() -> None:
    """Raise when called while a spawned worker process imports the application's script.

    spawn runs the script's top level again, as ``__mp_main__``, in every worker; a script
    without a ``__main__`` guard would start a second provisioner there.
    """
    main = sys.modules.get("__main__")
    if (
        getattr(main, "__name__", None) == "__mp_main__"
        and multiprocessing.parent_process() is not None
        # Set by multiprocessing only while a new process is being prepared, that is
        # while it imports __main__ again: a provisioner run later, from the process's
        # own target, is legitimate.
        and getattr(multiprocessing.current_process(), "_inheriting", False)
    ):
        raise DeucalionError(
            f"deucalion was started while an observer's worker process "
            f"imported your script: {MAIN_GUARD_FIX}"
        )


def _rebuild(failure: _in_worker.Failure) -> BaseException:
    """The worker's exception, or an ``ObserverError`` carrying its text; with the worker's
    traceback as ``__cause__``."""
    blob, summary, text, _ = failure
    raised: BaseException | None = None
    if blob is not None:
        try:
            rebuilt = pickle.loads(blob)
        except BaseException:  # an exception class that cannot be rebuilt here
            rebuilt = None
        if isinstance(rebuilt, BaseException):
            raised = rebuilt
    if raised is None:
        raised = ObserverError(summary)
    raised.__cause__ = RemoteTraceback(text)
    return raised


def _safe_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "observer"


class ObserverWorker:
    """One observer, its executor and worker process, and the newest data waiting for it."""

    def __init__(
        self,
        observer: MetricsObserver,
        *,
        on_result: ResultHandler | None = None,
        timeout: float | None = None,
        checkpoint_interval: float | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.observer = observer
        self.name = name_of(observer)
        self.timeout = timeout
        self.checkpoint_interval = checkpoint_interval
        self.checkpoint_file = (
            Path(checkpoint_path) / f"{_safe_file_name(self.name)}.pickle"
            if checkpoint_path is not None and checkpoint_interval is not None
            else None
        )
        self.stats = ObserverStats()
        self._on_result = on_result
        self._executor: ProcessPoolExecutor | None = None
        # One thread per observer starts, reaps and shuts down its executors, and pickles the
        # observer for them. The worker's parent-death signal fires when the thread that
        # started it ends, so this thread lives exactly as long as the observer's workers.
        self._keeper = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"deucalion-{self.name}"
        )
        self._pidfd: int | None = None
        # Series keys go only when they changed, values as one array (deucalion._payload):
        # bench_dispatch measured it halving the hand-off of 10,000 series inside the call.
        self._encoder = PayloadEncoder()
        # The last call handed to the worker: running there until done, even when the task
        # that awaited it was cancelled.
        self._in_flight: asyncio.Future[Any] | None = None
        self._pending: tuple[TargetsData, float, Mapping[str, float]] | None = None
        self._wakeup = asyncio.Event()
        self._busy = False
        self._loop_task: Supervised | None = None
        self._closing = False
        self._consecutive_failures = 0
        self._checkpoint: bytes | None = None
        self._last_checkpoint = 0.0
        self._last_error: tuple[str, int] | None = None
        self.pid: int | None = None
        self.ready = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker process and wait until the observer is installed in it."""
        if self.checkpoint_file is not None:
            self._checkpoint = await self._in_keeper(self._read_checkpoint_file)
        self._last_checkpoint = time.monotonic()
        await self._spawn()
        self._loop_task = Supervised(
            self._run,
            name=f"the call loop of observer {self.name}",
            task_name=f"deucalion-observer-{self.name}",
        )

    @property
    def call_loop(self) -> Supervised | None:
        """The supervised task that hands data to the worker, while started."""
        return self._loop_task

    async def _in_keeper(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._keeper, function, *args)

    async def _spawn(self) -> None:
        try:
            executor, pid, failure = await self._in_keeper(self._new_executor, self._checkpoint)
            if failure is not None and self._checkpoint is not None:
                # The checkpoint does not load (a changed class, say): the observer as it
                # was registered still does.
                await self._in_keeper(self._shut_down, executor)
                log.error(
                    "observer %s: its checkpoint cannot be loaded (%s); starting from the "
                    "observer as it was registered",
                    self.name,
                    failure[1],
                    exc_info=_rebuild(failure),
                )
                self._checkpoint = None
                executor, pid, failure = await self._in_keeper(self._new_executor, None)
        except BrokenProcessPool as exc:
            raise DeucalionError(
                f"the worker process of observer {self.name} ended while starting ({exc}; its "
                "output is above). Is the observer's class importable there, and are the "
                f"libraries it uses installed? If your script starts deucalion at its top "
                f"level, {MAIN_GUARD_FIX}"
            ) from exc
        if failure is not None:
            await self._in_keeper(self._shut_down, executor)
            raise DeucalionError(
                f"the worker process of observer {self.name} cannot load it: {failure[1]}. Is "
                "the observer's class importable there, and are the libraries it uses "
                "installed?"
            ) from _rebuild(failure)
        self._executor = executor
        self.pid = pid
        self._encoder.reset()  # a new worker knows no series keys yet
        self._close_pidfd()
        if hasattr(os, "pidfd_open"):
            # A pidfd names this process for good: a kill through it cannot hit a process
            # that reused the pid after this one was reaped.
            try:
                self._pidfd = os.pidfd_open(pid)
            except OSError:
                self._pidfd = None
        self.ready = True
        log.debug("observer %s runs in worker pid %s", self.name, pid)

    def _new_executor(
        self, checkpoint: bytes | None
    ) -> tuple[ProcessPoolExecutor, int, _in_worker.Failure | None]:
        """In the keeper thread: start an executor's worker process, stream the observer (or
        a checkpoint) to its initializer and ask the worker for its pid.

        The observer is pickled straight into a pipe the initializer reads from, rather than
        into bytes passed as ``initargs``: the application then never holds a pickled copy of
        a large model (``initargs`` live as long as the executor, and spawn copies them once
        more on the way), and the pickler writes a large buffer with the GIL released, so the
        event loop keeps running meanwhile.
        """
        reader, writer = multiprocessing.Pipe(duplex=False)
        executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context(START_METHOD),
            initializer=_in_worker.install,
            initargs=(reader, os.getpid()),
        )
        unpicklable: Exception | None = None
        try:
            try:
                # The first submit starts the process, from this thread (see _keeper); the
                # pipe's reading end goes to it, so ours is closed: a worker that dies then
                # breaks the pipe instead of leaving the writes below blocked.
                hello = executor.submit(_in_worker.hello)
            finally:
                reader.close()
            try:
                with open(writer.fileno(), "wb", closefd=False) as stream:
                    if checkpoint is None:
                        cloudpickle.dump(self.observer, stream, protocol=pickle.HIGHEST_PROTOCOL)
                    else:
                        stream.write(checkpoint)
            except BrokenPipeError:
                pass  # the worker ended while loading: hello() says how
            except Exception as exc:  # any pickling failure: the message names what is wrong
                unpicklable = exc
            finally:
                writer.close()  # the end of the pickle, for the worker
            pid, failure = hello.result()
        except BaseException:
            executor.shutdown(wait=True, cancel_futures=True)
            if unpicklable is None:
                raise
            failure = None
        if unpicklable is not None:
            executor.shutdown(wait=True, cancel_futures=True)
            raise ConfigError(
                f"observer {self.name} cannot be sent to its worker process: "
                f"{type(unpicklable).__name__}: {unpicklable}. Keep only picklable attributes "
                "(models, arrays, numbers); open files, sockets and locks in new_data instead"
            ) from None
        return executor, pid, failure

    @staticmethod
    def _shut_down(executor: ProcessPoolExecutor) -> None:
        """In the keeper thread: end the executor and reap its process."""
        executor.shutdown(wait=True, cancel_futures=True)

    def submit(
        self,
        data: TargetsData,
        *,
        cycle_time: float | None = None,
        target_times: Mapping[str, float] | None = None,
    ) -> None:
        """Queue data for the next call; older data still waiting is dropped and counted.

        ``cycle_time`` and ``target_times`` are the data's scrape times, which
        ``deucalion.data_time()`` answers in ``new_data`` (now and the cycle's time when not
        given).
        """
        if self._closing:
            return
        if self._pending is not None:
            self.stats.dropped += 1
            log.debug("observer %s is busy: dropped older pending data", self.name)
        cycle = time.time() if cycle_time is None else cycle_time
        self._pending = (data, cycle, {} if target_times is None else target_times)
        self._wakeup.set()

    @property
    def busy(self) -> bool:
        """Whether a ``new_data`` call is running now."""
        return self._busy

    async def close(self, grace: float = 0.0) -> None:
        """Stop taking data, give the call in flight ``grace`` seconds, take a last
        checkpoint (when enabled) within what is left of it, then end the worker."""
        self._closing = True
        self._pending = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        task, self._loop_task = self._loop_task, None
        if task is not None:
            if self._busy and grace > 0:
                # The call loop ends by itself after this call and its result's handling.
                self._wakeup.set()
                done, _ = await asyncio.wait({task.task}, timeout=grace)
                if not done:
                    log.warning("observer %s still busy after %gs: stopping it", self.name, grace)
            await task.stop()
        if (
            self._executor is not None
            and not self._working
            and self.checkpoint_interval
            and deadline - loop.time() > 0
        ):
            await self._take_checkpoint(deadline - loop.time())
        self._end_worker(kill=self._working)
        await self._reap()
        self._close_pidfd()
        self._keeper.shutdown(wait=False)

    @property
    def _working(self) -> bool:
        """Whether the worker is running a call now (whoever waits for it)."""
        return self._in_flight is not None and not self._in_flight.done()

    def kill(self) -> None:
        """End the worker at once, whatever it is doing; the observer takes no more data.
        It only signals: ``close()`` reaps the process."""
        self._closing = True
        self._pending = None
        self._wakeup.set()
        self._end_worker(kill=True)

    def _end_worker(self, *, kill: bool) -> None:
        """Stop calling the worker; with ``kill``, SIGKILL it now. Never waits."""
        self.ready = False
        if kill and self._executor is not None:
            self._kill_process(self._executor)

    def _kill_process(self, executor: ProcessPoolExecutor) -> None:
        kill_workers = getattr(executor, "kill_workers", None)
        if kill_workers is not None:  # Python 3.14+
            kill_workers()
            return
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            elif self.pid is not None:
                os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it has ended already

    async def _reap(self) -> None:
        """Shut the executor down and reap its process, in the keeper thread."""
        executor, self._executor = self._executor, None
        self.ready = False
        if executor is not None:
            await self._in_keeper(self._shut_down, executor)

    def _close_pidfd(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            os.close(fd)

    # --- the call loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            await self._wakeup.wait()
            self._wakeup.clear()
            pending, self._pending = self._pending, None
            if pending is None or self._closing:
                continue
            self._busy = True
            try:
                outcome = await self._call(*pending)
            finally:
                self._busy = False
            del pending
            if outcome is not None and self._on_result is not None:
                try:
                    handled = self._on_result(outcome)
                    if handled is not None:
                        await handled
                except Exception:
                    log.exception("handling the result of observer %s failed", self.name)
            if (
                self.checkpoint_interval is not None
                and not self._closing
                and time.monotonic() - self._last_checkpoint >= self.checkpoint_interval
            ):
                self._busy = True
                try:
                    await self._take_checkpoint(self.timeout)
                finally:
                    self._busy = False
            if self._pending is not None:
                self._wakeup.set()

    async def _call(
        self,
        data: TargetsData,
        cycle_time: float,
        target_times: Mapping[str, float],
        *,
        resend: bool = True,
    ) -> CallOutcome | None:
        if self._executor is None:
            await self._replace()
        executor = self._executor
        if executor is None:
            return None  # closing while a new worker was due
        loop = asyncio.get_running_loop()
        handed_off = time.time()
        outcome = CallOutcome(self.observer, data)
        encoded = await self._encode(data)
        try:
            call = loop.run_in_executor(
                executor, _in_worker.call, (encoded, cycle_time, target_times)
            )
        except BrokenProcessPool as exc:
            # The worker died between calls (the OOM killer, kill -9): this call goes to a new
            # one, it was never the worker's.
            self.stats.errors += 1
            log.error(
                "observer %s: its worker process ended while idle (%s); replacing it",
                self.name,
                exc,
            )
            await self._replace()
            if self._executor is None:
                return None
            executor = self._executor
            handed_off = time.time()
            encoded = await self._encode(data)
            call = loop.run_in_executor(
                executor, _in_worker.call, (encoded, cycle_time, target_times)
            )
        del encoded
        # Keys this payload replaced are freed once the call is under way, not before it.
        call.add_done_callback(lambda _: self._encoder.release())
        reply = await self._answer(call, executor, "new_data", self.timeout)
        if reply is None:
            return None
        status, value, started = reply
        if status == _in_worker.RESEND:
            if not resend:
                raise DeucalionError(
                    f"observer {self.name}: its worker lacks series keys that were just sent"
                )
            self._encoder.reset()  # send every key again
            return await self._call(data, cycle_time, target_times, resend=False)
        returned = status == _in_worker.RETURNED
        self._consecutive_failures = 0
        self.stats.calls += 1
        outcome.duration = time.time() - handed_off
        outcome.latency = max(0.0, started - handed_off)
        if returned:
            try:
                outcome.result = (
                    pickle.loads(value)
                    if len(value) <= UNPICKLE_INLINE_MAX_BYTES
                    else await asyncio.to_thread(pickle.loads, value)
                )
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # the result's own code ran here: nothing may escape
                value = (
                    None,
                    f"{type(exc).__name__}: {exc}",
                    "the result of new_data could not be unpickled in the application",
                    "unpickle",
                )
                returned = False
            else:
                if self._last_error is not None:
                    log.info(
                        "observer %s: new_data returned again, after %d error(s) in a row",
                        self.name,
                        self._last_error[1],
                    )
                    self._last_error = None
                return outcome
        self.stats.errors += 1
        outcome.error = _rebuild(value)
        self._log_error(value)
        return outcome

    async def _encode(self, data: TargetsData) -> bytes:
        """The payload for ``data``: on the loop when small (well under a millisecond), in the
        keeper thread when it has many series (milliseconds; a hop costs about 0.5 ms)."""
        series = sum(len(s) for samples in data.values() for s in samples.values())
        if series <= ENCODE_INLINE_MAX_SERIES:
            return self._encoder.encode(data)
        encoded: bytes = await self._in_keeper(self._encoder.encode, data)
        return encoded

    async def _answer(
        self,
        call: asyncio.Future[Any],
        executor: ProcessPoolExecutor,
        what: str,
        limit: float | None,
    ) -> Any:
        """The worker's reply to ``call``, or None when the call cost the worker (it died, or
        ran past ``timeout``): then the worker is replaced."""
        self._in_flight = call
        # asyncio.wait, not wait_for: a TimeoutError that new_data itself raises is answered
        # as data, and the observer_timeout must not be confused with anything else.
        try:
            done, _ = await asyncio.wait({call}, timeout=limit)
        except asyncio.CancelledError:
            # Closing: the call's answer, if it ever comes, has no reader.
            call.add_done_callback(_retrieve)
            raise
        if not done:
            call.add_done_callback(_retrieve)
            self.stats.timeouts += 1
            self.stats.errors += 1
            log.error(
                "observer %s: %s ran longer than %s (%gs); replacing its worker",
                self.name,
                what,
                "observer_timeout"
                if limit == self.timeout
                else "what was left of the grace period",
                limit,
            )
            self._kill_process(executor)
            await self._replace()
            return None
        try:
            return call.result()
        except BrokenProcessPool as exc:
            self.stats.errors += 1
            log.error(
                "observer %s: its worker process ended during %s (%s); replacing it",
                self.name,
                what,
                exc,
            )
            await self._replace()
            return None

    def _log_error(self, failure: _in_worker.Failure) -> None:
        """The first error in full, then one line per repeat until it changes."""
        _, summary, text, where = failure
        if self._last_error is not None and self._last_error[0] == where:
            count = self._last_error[1] + 1
            self._last_error = (where, count)
            log.error(
                "observer %s: new_data raised %s again (%d times in a row; traceback above)",
                self.name,
                summary,
                count,
            )
            return
        self._last_error = (where, 1)
        log.error(
            "observer %s: new_data raised %s\nthe worker's traceback:\n%s",
            self.name,
            summary,
            text.rstrip(),
        )

    async def _replace(self) -> None:
        """Reap the worker (in the keeper thread) and start a new one, waiting longer each
        time it keeps dying."""
        self.ready = False
        await self._reap()
        delay = (
            min(MAX_RESTART_BACKOFF, 0.5 * 2**self._consecutive_failures)
            if self._consecutive_failures
            else 0.0
        )
        self._consecutive_failures += 1
        while not self._closing:
            if delay:
                log.info("observer %s: starting a new worker in %.1fs", self.name, delay)
                await asyncio.sleep(delay)
            try:
                await self._spawn()
            except DeucalionError as exc:
                log.error("%s", exc)
                delay = min(MAX_RESTART_BACKOFF, max(0.5, delay * 2))
                continue
            self.stats.restarts += 1
            log.info(
                "observer %s: new worker pid %s%s",
                self.name,
                self.pid,
                ", installed from its newest checkpoint" if self._checkpoint else "",
            )
            return

    # --- checkpoints -------------------------------------------------------------------------

    async def _take_checkpoint(self, limit: float | None) -> None:
        """Have the worker pickle its observer; keep it, and write it when a file is set."""
        executor = self._executor
        if executor is None:
            return
        self._last_checkpoint = time.monotonic()
        call = asyncio.get_running_loop().run_in_executor(executor, _in_worker.checkpoint)
        reply = await self._answer(call, executor, "a checkpoint", limit)
        if reply is None:
            return
        ok, value = reply
        if not ok:
            self.stats.checkpoint_failures += 1
            log.error(
                "observer %s: its checkpoint failed (%s); keeping the previous one",
                self.name,
                value[1],
                exc_info=_rebuild(value),
            )
            return
        if self.checkpoint_file is not None:
            try:
                await self._in_keeper(self._write_checkpoint_file, value)
            except OSError as exc:
                self.stats.checkpoint_failures += 1
                log.error(
                    "observer %s: cannot write its checkpoint to %s: %s; keeping the previous one",
                    self.name,
                    self.checkpoint_file,
                    exc,
                )
                return
        self._checkpoint = value
        self.stats.checkpoints += 1
        log.debug("observer %s: checkpoint of %d bytes", self.name, len(value))

    def _write_checkpoint_file(self, blob: bytes) -> None:
        """Atomically: a reader (a restarting application) sees the old file or the new one."""
        assert self.checkpoint_file is not None
        self.checkpoint_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.checkpoint_file.with_name(self.checkpoint_file.name + ".partial")
        with open(partial, "wb") as out:
            out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, self.checkpoint_file)

    def _read_checkpoint_file(self) -> bytes | None:
        assert self.checkpoint_file is not None
        try:
            blob = self.checkpoint_file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error(
                "observer %s: cannot read its checkpoint %s: %s; starting from the "
                "observer as it was registered",
                self.name,
                self.checkpoint_file,
                exc,
            )
            return None
        log.info("observer %s: starting from its checkpoint %s", self.name, self.checkpoint_file)
        return blob


def _retrieve(future: asyncio.Future[Any] | Future[Any]) -> None:
    """Read an abandoned call's outcome, so that nobody warns it was never retrieved."""
    if not future.cancelled():
        future.exception()

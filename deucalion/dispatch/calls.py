"""The calls to one observer: data handed to its worker with ``loop.run_in_executor``, at most
one call in flight, the newest pending data winning, and a call past ``observer_timeout``
costing its worker.

``ObserverWorker`` owns one observer's worker process (``deucalion.dispatch.process``), the
data waiting for it, its checkpoints (``deucalion.dispatch.checkpoints``) and the thread, its
*keeper*, that starts, reaps and shuts down its executors, so that none of that runs on the
event loop. Every call is ``loop.run_in_executor(executor, in_worker.call, payload)`` and sends
only the cycle's data (encoded by ``deucalion.dispatch.payload``) and its scrape times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from deucalion._supervision import Supervised
from deucalion.dispatch import in_worker
from deucalion.dispatch.checkpoints import Checkpoints
from deucalion.dispatch.outcome import (
    CallOutcome,
    ObserverStats,
    ResultHandler,
    rebuild,
    unpickle_result,
)
from deucalion.dispatch.payload import PayloadEncoder
from deucalion.dispatch.process import MAIN_GUARD_FIX, WorkerProcess
from deucalion.errors import DeucalionError, InstallTimeout
from deucalion.observer import MetricsObserver, TargetsData, name_of

__all__ = ["ObserverWorker"]

log = logging.getLogger(__name__)

# Replacing a worker that keeps dying waits longer each time, up to this.
MAX_RESTART_BACKOFF = 30.0
# Payloads with more series than this are encoded in a thread, not on the event loop.
ENCODE_INLINE_MAX_SERIES = 2000
# start() waits this long for the first worker's install; then it goes on in the background.
START_WAIT = 10.0
# With observer_timeout, a worker's interpreter gets this long to start (import the
# application's script) before the observer's install is timed.
SPAWN_TIMEOUT = 60.0


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
        self.stats = ObserverStats()
        self.checkpoints = Checkpoints(
            observer, self.name, self.stats, checkpoint_interval, checkpoint_path
        )
        self._on_result = on_result
        self._process: WorkerProcess | None = None
        # A worker being installed (killed with the worker, by kill()), and the install that
        # start() left to go on in the background.
        self._installing: WorkerProcess | None = None
        self._installed: asyncio.Future[None] | None = None
        # One thread per observer starts, reaps and shuts down its executors, and pickles the
        # observer for them. The worker's parent-death signal fires when the thread that
        # started it ends, so this thread lives exactly as long as the observer's workers.
        self._keeper = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"deucalion-{self.name}"
        )
        # Series keys go only when they changed, values as one array (dispatch.payload):
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
        self._last_error: tuple[str, int] | None = None
        self.pid: int | None = None
        """The process id of the newest worker (kept after it ended)."""
        self.ready = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker process and wait, at most ``START_WAIT`` seconds, until the
        observer is installed in it; an install that takes longer goes on in the background
        (its data waits, newest wins), one that hangs past ``observer_timeout`` is replaced as
        a hung call is. An observer that cannot be installed at all raises."""
        await self._in_keeper(self.checkpoints.load)
        first = asyncio.ensure_future(self._spawn())
        done, _ = await asyncio.wait({first}, timeout=START_WAIT)
        if first in done:
            try:
                first.result()
            except InstallTimeout:
                self._installed = asyncio.ensure_future(self._replace())
        else:
            log.warning(
                "observer %s: still being installed in its worker after %gs; deucalion runs "
                "meanwhile, and the observer's data waits for it (the newest only)",
                self.name,
                START_WAIT,
            )
            self._installed = asyncio.ensure_future(self._finish_install(first))
        self._loop_task = Supervised(
            self._run,
            name=f"the call loop of observer {self.name}",
            task_name=f"deucalion-observer-{self.name}",
        )

    async def _finish_install(self, first: asyncio.Future[None]) -> None:
        try:
            await first
        except DeucalionError as exc:
            if not isinstance(exc, InstallTimeout):
                log.error("%s", exc)
            await self._replace()

    @property
    def call_loop(self) -> Supervised | None:
        """The supervised task that hands data to the worker, while started."""
        return self._loop_task

    async def _in_keeper(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._keeper, function, *args)

    async def _spawn(self) -> None:
        """Start a worker, install the observer's newest checkpoint in it or else the
        observer as registered, and make it the observer's worker."""
        process, failure = await self._install(self.checkpoints.newest)
        if failure is not None and self.checkpoints.newest is not None:
            # The checkpoint does not load (a changed class, say): the observer as it
            # was registered still does.
            await self._in_keeper(process.shut_down)
            log.error(
                "observer %s: its checkpoint cannot be loaded (%s); starting from the "
                "observer as it was registered",
                self.name,
                failure[1],
                exc_info=rebuild(failure),
            )
            self.checkpoints.newest = None
            process, failure = await self._install(None)
        if failure is not None:
            await self._in_keeper(process.shut_down)
            raise DeucalionError(
                f"the worker process of observer {self.name} cannot load it: {failure[1]}. Is "
                "the observer's class importable there, and are the libraries it uses "
                "installed?"
            ) from rebuild(failure)
        self._process = process
        self.pid = process.pid
        self._encoder.reset()  # a new worker knows no series keys yet
        self.ready = True
        log.debug("observer %s runs in worker pid %s", self.name, process.pid)

    async def _install(
        self, checkpoint: bytes | None
    ) -> tuple[WorkerProcess, in_worker.Failure | None]:
        """A new worker process with the observer (or ``checkpoint``) loaded in it, or why
        it did not load; bounded as a call is, by ``observer_timeout`` from the moment the
        worker reported itself (its interpreter's start gets ``SPAWN_TIMEOUT`` more)."""
        process = self._installing = WorkerProcess(self.name)
        job = asyncio.get_running_loop().run_in_executor(
            self._keeper, process.install, self.observer, checkpoint
        )
        launched = time.monotonic()
        try:
            in_time = await self._within_install_limit(process, job, launched)
        except asyncio.CancelledError:
            # Closing while installing: end it; the keeper reaps it once the install ends.
            process.kill()
            job.add_done_callback(_retrieve)
            with contextlib.suppress(RuntimeError):  # the keeper is shut down: so is all
                self._keeper.submit(process.shut_down)
            raise
        finally:
            self._installing = None
        if not in_time:
            process.kill()
            await asyncio.wait({job})
            job.add_done_callback(_retrieve)
            await self._in_keeper(process.shut_down)
            self.stats.timeouts += 1
            self.stats.errors += 1
            message = (
                f"observer {self.name}: installing it in its worker ran longer than "
                f"observer_timeout ({self.timeout:g}s)"
                if process.pid is not None
                else f"observer {self.name}: its worker process did not start within "
                f"{SPAWN_TIMEOUT + (self.timeout or 0):g}s"
            )
            log.error("%s; replacing its worker", message)
            raise InstallTimeout(message)
        try:
            return process, job.result()
        except BrokenProcessPool as exc:
            raise DeucalionError(
                f"the worker process of observer {self.name} ended while starting ({exc}; its "
                "output is above). Is the observer's class importable there, and are the "
                f"libraries it uses installed? If your script starts deucalion at its top "
                f"level, {MAIN_GUARD_FIX}"
            ) from exc

    async def _within_install_limit(
        self, process: WorkerProcess, job: asyncio.Future[Any], launched: float
    ) -> bool:
        """Wait for ``job``; False when it ran past its limit (it is still running then)."""
        if self.timeout is None:
            await asyncio.wait({job})
            return True
        while True:
            reported = process.reported_at
            deadline = (
                launched + SPAWN_TIMEOUT + self.timeout
                if reported is None
                else reported + self.timeout
            )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Until the worker reports itself, look again now and then: its limit changes.
            step = remaining if reported is not None else min(remaining, 0.05)
            done, _ = await asyncio.wait({job}, timeout=step)
            if done:
                return True

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
        installed, self._installed = self._installed, None
        if installed is not None and not installed.done():
            # Still installing: nothing to wait for, the worker has no call to finish.
            if self._installing is not None:
                self._installing.kill()
            installed.cancel()
            await asyncio.wait({installed})
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
            self._process is not None
            and not self._working
            and self.checkpoints.interval
            and deadline - loop.time() > 0
        ):
            await self._take_checkpoint(deadline - loop.time())
        self._end_worker(kill=self._working)
        await self._reap()
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
        if kill and self._process is not None:
            self._process.kill()
        if kill and self._installing is not None:
            self._installing.kill()

    async def _reap(self) -> None:
        """Shut the executor down and reap its process, in the keeper thread."""
        process, self._process = self._process, None
        self.ready = False
        if process is not None:
            await self._in_keeper(process.shut_down)

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
            if not self._closing and self.checkpoints.due():
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
        if self._installed is not None:
            await self._installed  # the first worker, still being installed after start()
            self._installed = None
        if self._process is None:
            await self._replace()
        if self._process is None:
            return None  # closing while a new worker was due
        executor = self._process.executor
        loop = asyncio.get_running_loop()
        handed_off = time.time()
        outcome = CallOutcome(self.observer, data)
        encoded = await self._encode(data)
        try:
            call = loop.run_in_executor(
                executor, in_worker.call, (encoded, cycle_time, target_times)
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
            if self._process is None:
                return None
            executor = self._process.executor
            handed_off = time.time()
            encoded = await self._encode(data)
            call = loop.run_in_executor(
                executor, in_worker.call, (encoded, cycle_time, target_times)
            )
        del encoded
        # Keys this payload replaced are freed once the call is under way, not before it.
        call.add_done_callback(lambda _: self._encoder.release())
        reply = await self._answer(call, "new_data", self.timeout)
        if reply is None:
            return None
        status, value, started = reply
        if status == in_worker.RESEND:
            if not resend:
                raise DeucalionError(
                    f"observer {self.name}: its worker lacks series keys that were just sent"
                )
            self._encoder.reset()  # send every key again
            return await self._call(data, cycle_time, target_times, resend=False)
        self._consecutive_failures = 0
        self.stats.calls += 1
        outcome.duration = time.time() - handed_off
        outcome.latency = max(0.0, started - handed_off)
        if status == in_worker.RETURNED:
            outcome.result, value = await unpickle_result(value)
            if value is None:
                if self._last_error is not None:
                    log.info(
                        "observer %s: new_data returned again, after %d error(s) in a row",
                        self.name,
                        self._last_error[1],
                    )
                    self._last_error = None
                return outcome
        self.stats.errors += 1
        outcome.error = rebuild(value)
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

    async def _answer(self, call: asyncio.Future[Any], what: str, limit: float | None) -> Any:
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
            self._end_worker(kill=True)
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
        except Exception:
            # The worker's functions answer every failure as data: this is a bug, and it
            # costs this call only, never the call loop.
            self.stats.errors += 1
            log.exception("observer %s: %s failed in deucalion", self.name, what)
            return None

    def _log_error(self, failure: in_worker.Failure) -> None:
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
                if not isinstance(exc, InstallTimeout):  # logged already
                    log.error("%s", exc)
                delay = min(MAX_RESTART_BACKOFF, max(0.5, delay * 2))
                continue
            self.stats.restarts += 1
            log.info(
                "observer %s: new worker pid %s%s",
                self.name,
                self.pid,
                ", installed from its newest checkpoint" if self.checkpoints.newest else "",
            )
            return

    # --- checkpoints -------------------------------------------------------------------------

    async def _take_checkpoint(self, limit: float | None) -> None:
        """Have the worker pickle its observer, within ``limit`` seconds, and keep that."""
        if self._process is None:
            return
        self.checkpoints.started()
        call = asyncio.get_running_loop().run_in_executor(
            self._process.executor, in_worker.checkpoint
        )
        reply = await self._answer(call, "a checkpoint", limit)
        if reply is not None:
            ok, value = reply
            if ok:
                await self.checkpoints.keep(value, self._in_keeper)
            else:
                self.checkpoints.failed(value)


def _retrieve(future: asyncio.Future[Any] | Future[Any]) -> None:
    """Read an abandoned call's outcome, so that nobody warns it was never retrieved."""
    if not future.cancelled():
        future.exception()

"""The calls to one observer: data handed to its worker with ``loop.run_in_executor``, at most
one call in flight, the newest pending data winning, and a call past ``observer_timeout``
costing its worker.

``ObserverWorker`` owns one observer's worker processes (kept by ``dispatch.keeper``, which
also starts, replaces and ends them off the event loop), the data waiting for them and its
checkpoints (``dispatch.checkpoints``). Every call is
``loop.run_in_executor(executor, in_worker.call, payload)`` and sends only the cycle's data
(encoded by ``dispatch.payload``) and its scrape times.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from deucalion._supervision import Supervised
from deucalion.dispatch import in_worker
from deucalion.dispatch.checkpoints import Checkpoints
from deucalion.dispatch.keeper import WorkerKeeper
from deucalion.dispatch.outcome import (
    CallOutcome,
    ObserverStats,
    ResultHandler,
    rebuild,
    retrieve,
    unpickle_result,
)
from deucalion.dispatch.payload import PayloadEncoder
from deucalion.errors import DeucalionError
from deucalion.observer import MetricsObserver, TargetsData, name_of

__all__ = ["ObserverWorker"]

log = logging.getLogger(__name__)

# Payloads with more series than this are encoded in a thread, not on the event loop.
ENCODE_INLINE_MAX_SERIES = 2000


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
        self._workers = WorkerKeeper(
            observer, self.name, self.stats, self.checkpoints, timeout, self._new_worker
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
        self._last_error: tuple[str, int] | None = None

    @property
    def pid(self) -> int | None:
        """The process id of the newest worker (kept after it ended)."""
        return self._workers.pid

    @property
    def ready(self) -> bool:
        """Whether a worker is installed and takes calls."""
        return self._workers.ready

    def _new_worker(self) -> None:
        self._encoder.reset()  # a new worker knows no series keys yet

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker process and wait, at most ``START_WAIT`` seconds, until the
        observer is installed in it; an install that takes longer goes on in the background
        (its data waits, newest wins), one that hangs past ``observer_timeout`` is replaced as
        a hung call is (see ``deucalion.dispatch.keeper``). An observer that cannot be
        installed at all raises."""
        await self._workers.start()
        self._loop_task = Supervised(
            self._run,
            name=f"the call loop of observer {self.name}",
            task_name=f"deucalion-observer-{self.name}",
        )

    @property
    def call_loop(self) -> Supervised | None:
        """The supervised task that hands data to the worker, while started."""
        return self._loop_task

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
        self._workers.closing = True
        await self._workers.stop_installing()
        task, self._loop_task = self._loop_task, None
        if task is not None:
            if self._busy and grace > 0 and not self._workers.installing:
                # The call loop ends by itself after this call and its result's handling.
                self._wakeup.set()
                done, _ = await asyncio.wait({task.task}, timeout=grace)
                if not done:
                    log.warning("observer %s still busy after %gs: stopping it", self.name, grace)
            await task.stop()
        if (
            self._workers.process is not None
            and not self._working
            and self.checkpoints.interval
            and deadline - loop.time() > 0
        ):
            await self._take_checkpoint(deadline - loop.time())
        if self._working:
            self._workers.kill()
        await self._workers.close()

    @property
    def _working(self) -> bool:
        """Whether the worker is running a call now (whoever waits for it)."""
        return self._in_flight is not None and not self._in_flight.done()

    def kill(self) -> None:
        """End the worker at once, whatever it is doing; the observer takes no more data.
        It only signals: ``close()`` reaps the process."""
        self._closing = self._workers.closing = True
        self._pending = None
        self._wakeup.set()
        self._workers.kill()

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
        process = await self._workers.current()
        if process is None:
            return None  # closing while a new worker was due
        executor = process.executor
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
            await self._workers.replace()
            if self._workers.process is None:
                return None
            executor = self._workers.process.executor
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
        self._workers.succeeded()
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
        encoded: bytes = await self._workers.run(self._encoder.encode, data)
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
            call.add_done_callback(retrieve)
            raise
        if not done:
            call.add_done_callback(retrieve)
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
            self._workers.kill()
            await self._workers.replace()
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
            await self._workers.replace()
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

    # --- checkpoints -------------------------------------------------------------------------

    async def _take_checkpoint(self, limit: float | None) -> None:
        """Have the worker pickle its observer, within ``limit`` seconds, and keep that."""
        process = self._workers.process
        if process is None:
            return
        self.checkpoints.started()
        call = asyncio.get_running_loop().run_in_executor(process.executor, in_worker.checkpoint)
        reply = await self._answer(call, "a checkpoint", limit)
        if reply is not None:
            ok, value = reply
            if ok:
                await self.checkpoints.keep(value, self._workers.run)
            else:
                self.checkpoints.failed(value)

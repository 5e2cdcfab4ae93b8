"""Handing data to observers, each in its own worker process.

Every observer gets a worker process of its own (``deucalion.worker``) that the observer is
sent to once (cloudpickled, so classes from ``__main__`` or a notebook work); each call then
sends only data, so the model's state persists and a large model is never sent again. At most
one call is in flight per observer; while it runs only the newest data waits, and older data
is dropped and counted. A worker that dies or hangs past ``observer_timeout`` is replaced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import cloudpickle

from deucalion._payload import LayoutError, PayloadEncoder
from deucalion.errors import ConfigError, DeucalionError
from deucalion.observer import MetricsObserver, TargetsData, name_of
from deucalion.worker import WorkerDied, WorkerProcess

__all__ = ["CallOutcome", "ObserverWorker"]

log = logging.getLogger(__name__)

# Replacing a worker that keeps dying waits longer each time, up to this.
MAX_RESTART_BACKOFF = 30.0


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


class ObserverWorker:
    """One observer, its worker process and the newest data waiting for it."""

    def __init__(
        self,
        observer: MetricsObserver,
        *,
        on_result: ResultHandler | None = None,
        timeout: float | None = None,
    ) -> None:
        self.observer = observer
        self.name = name_of(observer)
        self.timeout = timeout
        self.stats = ObserverStats()
        self._on_result = on_result
        try:
            self._payload = cloudpickle.dumps(observer)
        except Exception as exc:  # any pickling failure: the message names what is wrong
            raise ConfigError(
                f"observer {self.name} cannot be sent to its worker process: "
                f"{type(exc).__name__}: {exc}. Keep only picklable attributes (models, arrays, "
                "numbers); open files, sockets and locks in new_data instead"
            ) from None
        self._process: WorkerProcess | None = None
        self._encoder = PayloadEncoder()
        self._pending: TargetsData | None = None
        self._wakeup = asyncio.Event()
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._consecutive_failures = 0
        self.pid: int | None = None
        self.ready = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker process and wait until the observer is installed in it."""
        await self._spawn()
        self._task = asyncio.create_task(self._run(), name=f"deucalion-observer-{self.name}")

    async def _spawn(self) -> None:
        # A new worker knows no series keys yet.
        self._encoder.reset()
        process = self._process = WorkerProcess(self.name)
        try:
            await process.start(self._payload)
        except Exception as exc:
            self._kill_process()
            if isinstance(exc, WorkerDied):
                what = f"{exc} while starting (its output is above)"
            else:
                what = (f"the worker process of observer {self.name} failed to start: "
                        f"{type(exc).__name__}: {exc}")
            raise DeucalionError(
                f"{what}. Is the observer's class importable there, and are the libraries it "
                "uses installed?"
            ) from exc
        self.pid = process.pid
        self.ready = True
        log.debug("observer %s runs in worker pid %s", self.name, self.pid)

    def submit(self, data: TargetsData) -> None:
        """Queue data for the next call; older data still waiting is dropped and counted."""
        if self._closing:
            return
        if self._pending is not None:
            self.stats.dropped += 1
            log.debug("observer %s is busy: dropped older pending data", self.name)
        self._pending = data
        self._wakeup.set()

    @property
    def busy(self) -> bool:
        """Whether a ``new_data`` call is running now."""
        return self._busy

    async def close(self, grace: float = 0.0) -> None:
        """Stop taking data, give the call in flight ``grace`` seconds, then end the worker."""
        self._closing = True
        self._pending = None
        if self._task is not None:
            if self._busy and grace > 0:
                self._wakeup.set()
                done, _ = await asyncio.wait({self._task}, timeout=grace)
                if not done:
                    log.warning("observer %s still busy after %gs: stopping it", self.name, grace)
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:
                # A bug in the call loop must not keep the rest of the shutdown from running.
                log.exception("observer %s: its call loop failed", self.name)
            self._task = None
        self._kill_process()
        self.ready = False

    def kill(self) -> None:
        """End the worker at once, whatever it is doing; the observer takes no more data."""
        self._closing = True
        self._pending = None
        self._wakeup.set()
        self._kill_process()
        self.ready = False

    def _kill_process(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()

    # --- the call loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            await self._wakeup.wait()
            self._wakeup.clear()
            data, self._pending = self._pending, None
            if data is None or self._closing:
                continue
            self._busy = True
            try:
                outcome = await self._call(data)
            finally:
                self._busy = False
            if outcome is not None and self._on_result is not None:
                try:
                    handled = self._on_result(outcome)
                    if handled is not None:
                        await handled
                except Exception:
                    log.exception("handling the result of observer %s failed", self.name)
            if self._pending is not None:
                self._wakeup.set()

    async def _call(self, data: TargetsData, *, resend: bool = True) -> CallOutcome | None:
        if self._process is None:
            await self._restart()
        assert self._process is not None
        handed_off = time.time()
        outcome = CallOutcome(self.observer, data)
        try:
            # Series keys go only when they changed, values as one array (see
            # deucalion._payload).
            call = asyncio.ensure_future(self._process.call(self._encoder.encode(data)))
            # Keys this payload replaced are freed once the call is under way, not before it.
            call.add_done_callback(lambda _: self._encoder.release())
            # asyncio.wait, not wait_for: a TimeoutError that new_data itself raises is the
            # observer's error, not the observer_timeout.
            try:
                done, _ = await asyncio.wait({call}, timeout=self.timeout)
            except asyncio.CancelledError:
                # Closing: the request dies with the worker, and nobody is left to read it.
                call.cancel()
                raise
            if not done:
                call.cancel()
                self.stats.timeouts += 1
                self.stats.errors += 1
                log.error("observer %s: new_data ran longer than observer_timeout (%gs); "
                          "replacing its worker", self.name, self.timeout)
                await self._restart()
                return None
            result, started = call.result()
        except LayoutError:
            if not resend:
                raise
            # The worker lacks keys it should have been sent: send them all again.
            self._encoder.reset()
            return await self._call(data, resend=False)
        except WorkerDied as exc:
            self.stats.errors += 1
            log.error("observer %s: %s; replacing it", self.name, exc)
            await self._restart()
            return None
        except Exception as exc:
            self.stats.calls += 1
            self.stats.errors += 1
            self._consecutive_failures = 0
            # The worker's traceback travels as the exception's __cause__.
            log.error("observer %s: new_data raised %s: %s", self.name, type(exc).__name__, exc,
                      exc_info=exc)
            outcome.error = exc
            outcome.duration = time.time() - handed_off
            return outcome
        self.stats.calls += 1
        self._consecutive_failures = 0
        outcome.result = result
        outcome.duration = time.time() - handed_off
        outcome.latency = max(0.0, started - handed_off)
        return outcome

    async def _restart(self) -> None:
        """Replace the worker, waiting longer each time it keeps dying."""
        self._kill_process()
        self.ready = False
        delay = min(MAX_RESTART_BACKOFF, 0.5 * 2**self._consecutive_failures) \
            if self._consecutive_failures else 0.0
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
            log.info("observer %s: new worker pid %s", self.name, self.pid)
            return

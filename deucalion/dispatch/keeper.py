"""The keeper of one observer's worker processes: the current one, a new one installed within
bounds, a replacement (with backoff while they keep dying), and their end.

Each observer has a thread of its own, its *keeper*, that starts, reaps and shuts down its
executors and pickles the observer for them, so that none of that runs on the event loop. A
worker ends with the application's process, not with this thread (see
``deucalion.dispatch.in_worker``); the thread lives as long as the observer's workers all the
same, so that their starts and ends stay in order.

Installing the observer in a new worker is bounded as a call is: past ``observer_timeout``
(counted from the moment the worker reported itself; its interpreter's start gets
``SPAWN_TIMEOUT`` more) the worker is killed, the timeout counted and logged, and another is
tried with backoff. ``start()`` waits ``START_WAIT`` seconds at most for the first worker; an
install still under way then goes on in the background, so that the other observers, the
cycle and deucalion's own endpoints never wait for one observer's unpickling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from deucalion.dispatch import in_worker
from deucalion.dispatch.checkpoints import Checkpoints
from deucalion.dispatch.outcome import ObserverStats, rebuild, retrieve
from deucalion.dispatch.process import MAIN_GUARD_FIX, WorkerProcess
from deucalion.errors import DeucalionError, InstallTimeout
from deucalion.observer import MetricsObserver

__all__ = ["InstallTimeout", "WorkerKeeper"]

log = logging.getLogger(__name__)

# Replacing a worker that keeps dying waits longer each time, up to this.
MAX_RESTART_BACKOFF = 30.0
# start() waits this long for the first worker's install; then it goes on in the background.
START_WAIT = 10.0
# With observer_timeout, a worker's interpreter gets this long to start (import the
# application's script) before the observer's install is timed.
SPAWN_TIMEOUT = 60.0


class WorkerKeeper:
    """One observer's worker processes, one at a time, and the thread that keeps them."""

    def __init__(
        self,
        observer: MetricsObserver,
        name: str,
        stats: ObserverStats,
        checkpoints: Checkpoints,
        timeout: float | None,
        on_new_worker: Callable[[], None],
    ) -> None:
        self.observer = observer
        self.name = name
        self.stats = stats
        self.checkpoints = checkpoints
        self.timeout = timeout
        self.process: WorkerProcess | None = None
        """The worker calls go to, when there is one."""
        self.pid: int | None = None
        """The process id of the newest worker (kept after it ended)."""
        self.ready = False
        self.closing = False
        self._on_new_worker = on_new_worker
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"deucalion-{name}")
        # A worker being installed (killed with the worker, by kill()), and the install that
        # start() left to go on in the background.
        self._installing: WorkerProcess | None = None
        self._background: asyncio.Future[None] | None = None
        self._failures = 0

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` in the keeper thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    async def start(self) -> None:
        """Load the checkpoint file, start the first worker and wait, at most ``START_WAIT``
        seconds, until the observer is installed in it. An observer that cannot be installed
        at all (it does not pickle, its class does not import there) raises."""
        await self.run(self.checkpoints.load)
        first = asyncio.ensure_future(self._spawn())
        done, _ = await asyncio.wait({first}, timeout=START_WAIT)
        if first not in done:
            log.warning(
                "observer %s: still being installed in its worker after %gs; deucalion runs "
                "meanwhile, and the observer's data waits for it (the newest only)",
                self.name,
                START_WAIT,
            )
            self._background = asyncio.ensure_future(self._finish(first))
            return
        try:
            first.result()
        except InstallTimeout:  # a hung call, not a broken observer: tried again, with backoff
            self._background = asyncio.ensure_future(self.replace())

    async def _finish(self, first: asyncio.Future[None]) -> None:
        try:
            await first
        except DeucalionError as exc:
            if not isinstance(exc, InstallTimeout):  # logged already
                log.error("%s", exc)
            await self.replace()

    async def current(self) -> WorkerProcess | None:
        """The worker to call: the one installed, or a new one (None when closing)."""
        background, self._background = self._background, None
        if background is not None:
            await background
        if self.process is None:
            await self.replace()
        return self.process

    def succeeded(self) -> None:
        """The worker answered a call: a later replacement starts without delay."""
        self._failures = 0

    async def _spawn(self) -> None:
        """Start a worker, install the observer's newest checkpoint in it or else the
        observer as registered, and make it the worker calls go to."""
        process, failure = await self._install(self.checkpoints.newest)
        if failure is not None and self.checkpoints.newest is not None:
            # The checkpoint does not load (a changed class, say): the observer as it
            # was registered still does.
            await self.run(process.shut_down)
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
            await self.run(process.shut_down)
            raise DeucalionError(
                f"the worker process of observer {self.name} cannot load it: {failure[1]}. Is "
                "the observer's class importable there, and are the libraries it uses "
                "installed?"
            ) from rebuild(failure)
        self.process = process
        self.pid = process.pid
        self._on_new_worker()
        self.ready = True
        log.debug("observer %s runs in worker pid %s", self.name, process.pid)

    async def _install(
        self, checkpoint: bytes | None
    ) -> tuple[WorkerProcess, in_worker.Failure | None]:
        """A new worker process with the observer (or ``checkpoint``) loaded in it, or why
        it did not load; within the install's limit (see the module's docstring)."""
        process = self._installing = WorkerProcess(self.name)
        job = asyncio.get_running_loop().run_in_executor(
            self._thread, process.install, self.observer, checkpoint
        )
        launched = time.monotonic()
        try:
            in_time = await self._within_limit(process, job, launched)
        except asyncio.CancelledError:
            # Closing while installing: end it; the keeper reaps it once the install ends.
            process.kill()
            job.add_done_callback(retrieve)
            with contextlib.suppress(RuntimeError):  # the thread is shut down: so is all
                self._thread.submit(process.shut_down)
            raise
        finally:
            self._installing = None
        if not in_time:
            process.kill()
            await asyncio.wait({job})
            job.add_done_callback(retrieve)
            await self.run(process.shut_down)
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

    async def _within_limit(
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

    async def replace(self) -> None:
        """Reap the worker (in the keeper thread) and start a new one, waiting longer each
        time it keeps dying."""
        self.ready = False
        await self.reap()
        delay = min(MAX_RESTART_BACKOFF, 0.5 * 2**self._failures) if self._failures else 0.0
        self._failures += 1
        while not self.closing:
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

    def kill(self) -> None:
        """SIGKILL the worker, and one being installed, now. Never waits: ``reap`` reaps."""
        self.ready = False
        if self.process is not None:
            self.process.kill()
        if self._installing is not None:
            self._installing.kill()

    async def reap(self) -> None:
        """Shut the executor down and reap its process, in the keeper thread."""
        process, self.process = self.process, None
        self.ready = False
        if process is not None:
            await self.run(process.shut_down)

    async def stop_installing(self) -> None:
        """End an install still under way since ``start()`` (closing: no call waits for it)."""
        background, self._background = self._background, None
        if background is not None and not background.done():
            if self._installing is not None:
                self._installing.kill()
            background.cancel()
            await asyncio.wait({background})

    @property
    def installing(self) -> bool:
        """Whether a new worker is being installed now."""
        return self._installing is not None

    async def close(self) -> None:
        """Reap the worker and wait for the keeper thread's last job (the reaping of a worker
        killed while being installed, say); then let the thread end."""
        await self.reap()
        await self.run(_nothing)
        self._thread.shutdown(wait=False)


def _nothing() -> None:
    """A job for the keeper thread that ends once every job before it has."""

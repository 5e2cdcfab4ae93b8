"""Supervision of deucalion's long-lived tasks: each observer's call loop, each Alertmanager
sender, the alert re-send timer.

A supervised task that dies of a bug (an exception) is logged with its traceback and started
again after a backoff that grows while it keeps dying. While it waits to be restarted the
application is not ready (``/readyz`` fails); once it has died ``CRASH_LOOP`` times in a row it
is not healthy either (``/healthz`` fails), so that a supervisor (Kubernetes, systemd) restarts
the whole sidecar.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["CRASH_LOOP", "Supervised"]

log = logging.getLogger(__name__)

#: Deaths in a row after which a task is reported unhealthy.
CRASH_LOOP = 5
# A task that ran this long before dying is not in a crash loop: its count starts again.
STEADY_AFTER = 60.0
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0


class Supervised:
    """Runs ``factory()`` in a task of its own, again and again if it dies of a bug. A
    coroutine that returns has finished its work: it is not started again.

    ``task`` is the supervising task: cancelling it (or ``await stop()``) ends the supervised
    coroutine too, and nothing restarts it.
    """

    def __init__(
        self,
        factory: Callable[[], Coroutine[Any, Any, None]],
        *,
        name: str,
        task_name: str | None = None,
    ) -> None:
        self.name = name
        """What the logs call it."""
        self.deaths = 0
        """Deaths in a row (reset once a run lasts ``STEADY_AFTER`` seconds)."""
        self.restarting = False
        """Whether it is dead now, waiting for its restart."""
        self._factory = factory
        self.task: asyncio.Task[None] = asyncio.create_task(
            self._supervise(), name=task_name or name
        )

    @property
    def healthy(self) -> bool:
        """Whether it is not in a crash loop."""
        return self.deaths < CRASH_LOOP and not self.task.done()

    @property
    def running(self) -> bool:
        """Whether the supervised coroutine is running now."""
        return not self.restarting and not self.task.done()

    async def stop(self) -> None:
        """Cancel it and wait until it has ended. Twice is harmless."""
        self.task.cancel()
        # asyncio.wait, not a suppressed await: a cancellation of the caller propagates.
        await asyncio.wait({self.task})

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self._factory()
            except asyncio.CancelledError:
                raise
            except (KeyboardInterrupt, SystemExit):
                raise  # the host's to handle, as asyncio itself lets them through
            except BaseException as exc:
                if loop.time() - started >= STEADY_AFTER:
                    self.deaths = 0
                self.deaths += 1
                delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (self.deaths - 1))
                log.error(
                    "%s failed (a bug in deucalion; %d time(s) in a row); restarting it in %.1fs",
                    self.name,
                    self.deaths,
                    delay,
                    exc_info=exc,
                )
                del exc
            else:
                return  # it finished its work (it was told to stop)
            self.restarting = True
            try:
                await asyncio.sleep(delay)
            finally:
                self.restarting = False

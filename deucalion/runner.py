"""Running deucalion as a program: uvloop, default logging, and stopping on SIGINT/SIGTERM.

Library code never calls these: ``async with provisioner:`` inside an application installs no
signal handler and starts no loop. They serve the blocking ``provisioner.run()`` and the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["run_main", "stopping_on_signals"]

log = logging.getLogger(__name__)

T = TypeVar("T")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: The levels DEUCALION_LOG_LEVEL may name.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# A signal sent to a process group reaches the process twice at once; only one that comes later
# than this is the user insisting.
INSIST_AFTER = 1.0


def run_main(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a new event loop (uvloop when installed) until it returns."""
    if not logging.getLogger().handlers:
        # A script that configured no logging still gets to see targets going down and
        # observers failing; an application that configured logging keeps its own.
        # DEUCALION_LOG_LEVEL (the injector's extra_env example) chooses the level there.
        level = os.environ.get("DEUCALION_LOG_LEVEL", "").strip().upper()
        logging.basicConfig(
            level=level if level in LOG_LEVELS else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # uvloop does not exist on every platform
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main)


@contextlib.contextmanager
def stopping_on_signals(
    on_stop: Callable[[], None], on_insist: Callable[[], None] | None = None
) -> Iterator[None]:
    """Call ``on_stop`` on the first SIGINT or SIGTERM, ``on_insist`` on a later one.

    Installed on the running loop for the duration of the ``with`` block.
    """
    loop = asyncio.get_running_loop()
    first_at: list[float] = []

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        now = loop.time()
        if not first_at:
            first_at.append(now)
            log.info(
                "received %s: stopping%s",
                name,
                " (send it again to stop at once)" if on_insist else "",
            )
            on_stop()
        elif on_insist is not None and now - first_at[0] > INSIST_AFTER:
            log.warning("received %s again: stopping without waiting", name)
            on_insist()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)

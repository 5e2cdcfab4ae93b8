"""What one call gives back: ``CallOutcome``, the counters per observer, and the worker's
answer decoded (a result unpickled, an exception rebuilt with the worker's traceback)."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from deucalion.dispatch.in_worker import Failure, describe
from deucalion.errors import ObserverError
from deucalion.observer import MetricsObserver, TargetsData

__all__ = [
    "CallOutcome",
    "ObserverError",
    "ObserverStats",
    "RemoteTraceback",
    "ResultHandler",
    "rebuild",
    "retrieve",
    "unpickle_result",
]

# Results larger than this (pickled) are unpickled in a thread, not on the event loop.
UNPICKLE_INLINE_MAX_BYTES = 1 << 20


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


def rebuild(failure: Failure) -> BaseException:
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


async def unpickle_result(value: bytes) -> tuple[Any, Failure | None]:
    """What ``new_data`` returned, from its pickle; or, when that pickle does not load here,
    the failure to report instead (the result's own code ran: nothing may escape)."""
    try:
        result = (
            pickle.loads(value)
            if len(value) <= UNPICKLE_INLINE_MAX_BYTES
            else await asyncio.to_thread(pickle.loads, value)
        )
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        return None, (
            None,
            describe(exc),
            "the result of new_data could not be unpickled in the application",
            "unpickle",
        )
    return result, None


def retrieve(future: asyncio.Future[Any] | Future[Any]) -> None:
    """Read an abandoned call's outcome, so that nobody warns it was never retrieved."""
    if not future.cancelled():
        future.exception()

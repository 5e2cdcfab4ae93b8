"""What runs inside an observer's worker process: the executor's initializer and the functions
each call runs there.

``deucalion.dispatch`` gives every observer a ``ProcessPoolExecutor(max_workers=1)``; this module
is what its worker process imports, so it imports the standard library only (cloudpickle only
when a checkpoint or a result needs it; the package's ``__init__`` imports nothing eagerly).
``install`` is the executor's ``initializer``: it unpickles the observer once, and the observer
lives in this module until the process ends. Every other function here is a module-level
function that ``loop.run_in_executor`` calls with one payload. None of them raises: what
``new_data`` raises, and a result or an exception that cannot travel back, are answered as data,
so that the executor's result queue never carries something the application cannot unpickle
(that would break the pool, not the call).
"""

from __future__ import annotations

import os
import pickle
import signal
import time
from collections.abc import Iterator, KeysView, Mapping, ValuesView
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = [
    "RAISED",
    "RESEND",
    "RETURNED",
    "CheckpointReply",
    "Failure",
    "Reply",
    "call",
    "checkpoint",
    "describe",
    "hello",
    "install",
]

#: What went wrong in the worker: the exception pickled (None when it cannot be), its
#: ``"Type: message"``, the worker's traceback as text, and where it was raised (a key that
#: tells one error from another without the message, which often carries changing values).
Failure = tuple[bytes | None, str, str, str]
#: The answer to ``call``: ``(RETURNED, pickled result, when new_data started)``,
#: ``(RAISED, Failure, when new_data started)``, or ``(RESEND, None, 0.0)`` when this worker
#: lacks series keys the payload assumes it has (see ``deucalion.dispatch.payload``).
Reply = tuple[str, Any, float]
RETURNED, RAISED, RESEND = "returned", "raised", "resend"
#: The answer to ``checkpoint``: ``(True, pickled observer)`` or ``(False, Failure)``.
CheckpointReply = tuple[bool, Any]

# How often the watch (see ``_die_with``) also checks that its parent is still the
# application, should the lifeline's other end have leaked into a process that outlives it.
PARENT_CHECK_SECONDS = 1.0

_observer: Any = None
_install_failure: Failure | None = None


def install(
    observer: Connection,
    started: Connection,
    parent: int,
    lifeline: Connection,
    logging_setup: tuple[int, str] | None = None,
) -> None:
    """The executor's initializer: lead a process group of its own and end it when ``parent``
    ends (``lifeline`` is a pipe only it writes to), log as the application does
    (``logging_setup``: its root level and format), report its pid on ``started``, then
    unpickle the observer once, as the application streams it into the pipe ``observer``. A
    failure is kept for ``hello`` to report, as the executor itself would only log it here and
    call the pool broken."""
    global _observer, _install_failure
    if logging_setup is not None:
        # A spawned process starts with no logging configured: an observer's log.info would
        # be lost and its warnings printed bare, without the time and level the application's
        # lines have.
        import logging  # loaded already by concurrent.futures: costs nothing here

        level, fmt = logging_setup
        logging.basicConfig(level=level, format=fmt)
    # A session (and process group) of its own: whatever new_data starts (a subprocess, a
    # pool) is in it, and ends with it when the application kills the group.
    try:
        os.setsid()
    except OSError:  # a group leader already: the application then kills the process alone
        pass
    _die_with(parent, lifeline)
    # SIGTERM reaches the workers too (and Ctrl-C, when run without a session of their own);
    # the application decides when they stop, after the grace period for the call in flight.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        # Before the observer loads: a load that hangs can then be killed by this pid.
        started.send(os.getpid())
    except OSError:
        pass  # the application gave up on this worker: the load below fails the same way
    finally:
        started.close()
    try:
        # cloudpickle's output is plain pickle: cloudpickle itself is imported only if the
        # observer's class was sent by value (defined in __main__ or a notebook).
        with open(observer.fileno(), "rb", closefd=False) as stream:
            loaded = pickle.load(stream)
        if not callable(getattr(loaded, "new_data", None)):
            raise TypeError(f"what was sent is a {type(loaded).__name__}, not an observer")
        _observer = loaded
    except BaseException as exc:
        _install_failure = _failure(exc)
    finally:
        observer.close()


def _die_with(parent: int, lifeline: Connection) -> None:
    """End this worker's process group, this process and what ``new_data`` started, when the
    application ends, however it ends (``kill -9`` included), busy in ``new_data`` or not.

    A daemon thread waits for the end of file of ``lifeline``, a pipe whose writing end only
    the application holds and never writes to: the kernel closes it when the application's
    process ends, whichever of its threads started this one. (Linux's ``PR_SET_PDEATHSIG``
    would fire when that *thread* ends, and its ``SIGKILL`` would end this process before it
    could end its children.) The thread also checks every ``PARENT_CHECK_SECONDS`` that it
    still has ``parent`` as its parent.
    """
    import threading  # loaded already by concurrent.futures: costs nothing here

    watch = threading.Thread(
        target=_end_with_application,
        args=(parent, lifeline),
        name="deucalion-application-watch",
        daemon=True,
    )
    watch.start()


def _end_with_application(parent: int, lifeline: Connection) -> None:
    try:
        while not lifeline.poll(PARENT_CHECK_SECONDS) and os.getppid() == parent:
            pass
    except (OSError, ValueError):
        pass  # the pipe broke: the application is gone just the same
    # The group only when this process leads it (os.setsid above): else it is the
    # application's, which may hold other processes of the user's.
    if os.getpgid(0) == os.getpid():
        os.killpg(0, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def hello() -> tuple[int, Failure | None]:
    """This process's id (the application kills a hung worker by it) and why the observer
    could not be installed, if it could not."""
    return os.getpid(), _install_failure


def call(payload: tuple[bytes, float, Mapping[str, float]]) -> Reply:
    """Run ``new_data`` on one cycle's data (encoded by ``deucalion.dispatch.payload``), inside
    ``handing_data`` so that ``deucalion.data_time()`` answers the cycle's scrape times."""
    # Both standard library only; the observer's unpickling loaded deucalion.observer already.
    from deucalion.dispatch import payload as _payload
    from deucalion.observer import handing_data

    encoded, cycle_time, target_times = payload
    del payload
    try:
        data = _payload.decode(encoded)
    except _payload.LayoutError:
        return RESEND, None, 0.0
    del encoded
    started = time.time()
    try:
        with handing_data(cycle_time, target_times):
            result = _observer.new_data(data)
            if isinstance(result, Iterator | KeysView | ValuesView):
                # "An iterable of alerts" may be a generator, which does not pickle: it runs
                # here, as part of new_data (what it raises is new_data's error).
                result = list(result)
    except BaseException as exc:
        # Everything new_data raises, SystemExit, KeyboardInterrupt and MemoryError included,
        # is this call's error; the worker carries on.
        return RAISED, _failure(exc), started
    finally:
        _payload.release()
    del data
    try:
        return RETURNED, _dumps(result), started
    except BaseException as exc:
        return (
            RAISED,
            _failure(
                TypeError(
                    f"new_data returned what cannot be sent back to the application "
                    f"({type(result).__name__}): {describe(exc)}"
                )
            ),
            started,
        )


def checkpoint(_: object = None) -> CheckpointReply:
    """The observer as it is now, pickled here rather than in the application."""
    try:
        import cloudpickle  # by value: a class from __main__ must load in a new process too

        return True, bytes(cloudpickle.dumps(_observer, protocol=pickle.HIGHEST_PROTOCOL))
    except BaseException as exc:
        return False, _failure(exc)


def _dumps(value: Any) -> bytes:
    """Pickle ``value``; with cloudpickle when it holds classes that exist only by value here."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        import cloudpickle  # only now: a worker that never needs it keeps its memory

        return bytes(cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def describe(exc: BaseException) -> str:
    """``"Type: message"`` of ``exc``, even when its ``__str__`` raises (or returns no str)."""
    try:
        message = str(exc)
    except BaseException as broken:
        message = f"<str() of the exception raised {type(broken).__qualname__}>"
    if not isinstance(message, str):  # a C extension may return anything
        message = "<str() of the exception returned no string>"
    return f"{type(exc).__qualname__}: {message}"


def _failure(exc: BaseException) -> Failure:
    """``exc`` as data that always travels: itself when it survives a pickle round trip here
    (an exception class with a required ``__init__`` argument does not) and can be printed,
    and always its text. Never raises, whatever the exception's own methods do."""
    import traceback  # only on an error: a worker that never fails keeps the memory

    summary = describe(exc)
    try:
        text = "".join(traceback.format_exception(exc))
        frames = traceback.extract_tb(exc.__traceback__)
        where = "|".join([type(exc).__qualname__, *(f"{f.filename}:{f.lineno}" for f in frames)])
    except BaseException:
        text, where = summary + "\n", type(exc).__qualname__
    exc.__traceback__ = None  # its frames hold the observer's locals
    blob: bytes | None
    try:
        blob = _dumps(exc)
        # It must load again, and print: the application logs and passes it on.
        str(pickle.loads(blob))
    except BaseException:
        blob = None
    return blob, summary, text, where

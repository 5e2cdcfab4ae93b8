"""What runs inside an observer's worker process, and the frames it exchanges with the application.

The worker is a bare interpreter started by ``deucalion.worker``: it imports this module and the
standard library, then whatever unpickling the observer needs (cloudpickle only for classes that
were sent by value, the user's model libraries). It talks to the application over one socket,
in frames of a kind byte and a length, and answers each request before it reads the next:

- ``INSTALL`` carries the application's ``sys.argv`` (marshalled, after its length) and the
  pickled observer; the answer is ``OK`` or ``ERROR``.
- ``CALL`` carries a data payload (see ``deucalion._payload``); the answer is ``OK`` with the
  pickled ``(result, time new_data started)``, or ``ERROR``.

An ``ERROR`` carries the pickled ``(exception or None, "Type: message", traceback text)``. When
the socket closes (the application ended or killed it), the worker exits.
"""

from __future__ import annotations

import marshal
import os
import pickle
import signal
import struct
import sys
import time
from typing import Any, BinaryIO

from deucalion import _payload

__all__ = ["CALL", "ERROR", "HEADER", "INSTALL", "OK", "SIZE", "main"]

#: A frame's header: its kind, then the length of its body.
HEADER = struct.Struct("!BQ")
#: The length of the argv part of an ``INSTALL`` body.
SIZE = struct.Struct("!I")
INSTALL, CALL, OK, ERROR = 1, 2, 3, 4


def main(fd: int) -> None:
    """Serve the application on socket ``fd`` until it closes."""
    # Ctrl-C (and a signal sent to the process group) reaches the workers too; the application
    # decides when they stop, after the grace period for the call in flight.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(fd, "rb", buffering=1 << 16, closefd=False) as requests:
        observer: Any = None
        while True:
            frame = _read_frame(requests)
            if frame is None:
                return
            kind, body = frame
            if kind == INSTALL:
                try:
                    view = memoryview(body)
                    (size,) = SIZE.unpack_from(view)
                    sys.argv = marshal.loads(view[SIZE.size:SIZE.size + size])
                    # cloudpickle's output is plain pickle: cloudpickle itself is imported only
                    # if the observer's class was sent by value (defined in __main__, say).
                    observer = pickle.loads(view[SIZE.size + size:])
                except BaseException as exc:
                    _send(fd, ERROR, _error(exc))
                else:
                    _send(fd, OK, b"")
                del view, body
            elif kind == CALL:
                _send(fd, *_call(observer, body))


def _call(observer: Any, payload: bytes) -> tuple[int, bytes]:
    """Run ``new_data`` on the data in ``payload``; the frame that answers it."""
    try:
        data = _payload.decode(payload)
        del payload
        started = time.time()
        try:
            result = observer.new_data(data)
        finally:
            _payload.release()
        del data
    except BaseException as exc:
        # Everything new_data raises, MemoryError and SystemExit included, is the call's error;
        # the worker itself carries on.
        return ERROR, _error(exc)
    try:
        return OK, _dumps((result, started))
    except Exception as exc:
        return ERROR, _error(TypeError(
            f"new_data returned what cannot be sent back to the application "
            f"({type(result).__name__}): {type(exc).__name__}: {exc}"))


def _dumps(value: Any) -> bytes:
    """Pickle ``value``; with cloudpickle when it holds classes that exist only by value here."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        import cloudpickle  # only now: a worker that never needs it keeps its memory

        return bytes(cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def _error(exc: BaseException) -> bytes:
    """The body of an ``ERROR`` frame for ``exc``."""
    import traceback  # only on an error: a worker that never fails keeps 0.7 MB

    text = "".join(traceback.format_exception(exc))
    summary = f"{type(exc).__name__}: {exc}"
    try:
        return _dumps((exc, summary, text))
    except Exception:
        # An exception that cannot be pickled still reaches the application as text.
        return pickle.dumps((None, summary, text))


def _read_frame(stream: BinaryIO) -> tuple[int, bytes] | None:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    kind, size = HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    return kind, body


def _send(fd: int, kind: int, body: bytes) -> None:
    # Header and body in one write: two writes would wake the application twice.
    pending: list[bytes | memoryview] = [HEADER.pack(kind, len(body)), body]
    try:
        while pending:
            written = os.writev(fd, pending)
            while pending and written >= len(pending[0]):
                written -= len(pending.pop(0))
            if written:
                pending[0] = memoryview(pending[0])[written:]
    except BrokenPipeError:
        # The application is gone: nobody waits for this answer.
        sys.exit(0)

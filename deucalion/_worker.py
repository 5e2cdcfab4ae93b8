"""What runs inside an observer's worker process.

Imported by the worker, so it imports the standard library and cloudpickle only: a worker's
memory stays close to a bare interpreter plus the user's model.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import cloudpickle

from deucalion import _payload

_observer: Any = None


def install(payload: bytes) -> None:
    """Unpickle the observer once; it stays in this process for every later call."""
    global _observer
    # Ctrl-C (and a signal sent to the process group) reaches the workers too; the application
    # decides when they stop, after the grace period for the call in flight.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _observer = cloudpickle.loads(payload)


def ping() -> int:
    """The worker's pid, once it has installed the observer."""
    return os.getpid()


def call(payload: bytes) -> tuple[Any, float]:
    """Run ``new_data`` on the data in ``payload`` (see ``deucalion._payload``); returns the
    result and when ``new_data`` started."""
    data = _payload.decode(payload)
    started = time.time()
    try:
        return _observer.new_data(data), started
    finally:
        _payload.release()

"""Handing data to observers: a ``ProcessPoolExecutor(max_workers=1)`` per observer, called
with ``loop.run_in_executor``.

Each registered observer gets an executor of its own whose ``initializer``
(``in_worker.install``) unpickles the observer once in the worker process; every call is
``loop.run_in_executor(executor, in_worker.call, payload)`` and sends only the cycle's data and
its scrape times, so the observer's state (a model, a window of past values) lives on in the
worker between calls and a large model is never sent again. At most one call is in flight per
observer; while it runs only the newest data waits, and older data is dropped and counted.

Faults stay with their observer: what ``new_data`` raises is that call's error; a worker that
dies gives ``BrokenProcessPool`` and a new executor, with backoff while it keeps dying; a call
past ``observer_timeout`` costs its worker, killed and replaced. With ``checkpoint_interval``
the worker pickles its observer between calls and the newest checkpoint is what a new worker
(and, with ``checkpoint_path``, a restarted application) starts from.

One concept a module:

- ``process``: the worker process, its executor started with the observer installed, killed
  and reaped (the spawn start method and why);
- ``keeper``: one observer's worker processes over time: the first installed within bounds,
  each replaced with backoff, all ended, in a thread of the observer's own;
- ``calls``: ``ObserverWorker``, the calls to one observer: hand-off, newest data wins,
  timeouts;
- ``outcome``: what a call gives back, its result or the worker's exception rebuilt;
- ``checkpoints``: the observer's state kept between workers and written to a file;
- ``payload``: how a cycle's data is encoded for the worker (series keys once, values always);
- ``in_worker``: the code that runs inside the worker process (standard library only).

Names are imported on first use: a worker process imports ``in_worker`` and ``payload`` from
this package and must not pay for asyncio's side of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deucalion._lazy import lazy_attributes

if TYPE_CHECKING:
    from deucalion.dispatch.calls import ObserverWorker
    from deucalion.dispatch.outcome import (
        CallOutcome,
        ObserverError,
        ObserverStats,
        RemoteTraceback,
    )
    from deucalion.dispatch.process import refuse_in_worker_bootstrap

__all__ = [
    "CallOutcome",
    "ObserverError",
    "ObserverStats",
    "ObserverWorker",
    "RemoteTraceback",
    "refuse_in_worker_bootstrap",
]

_LAZY = {
    "CallOutcome": "deucalion.dispatch.outcome",
    "ObserverError": "deucalion.dispatch.outcome",
    "ObserverStats": "deucalion.dispatch.outcome",
    "ObserverWorker": "deucalion.dispatch.calls",
    "RemoteTraceback": "deucalion.dispatch.outcome",
    "refuse_in_worker_bootstrap": "deucalion.dispatch.process",
}

__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)

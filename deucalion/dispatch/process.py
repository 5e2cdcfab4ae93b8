"""An observer's worker process: its ``ProcessPoolExecutor(max_workers=1)`` started with the
observer installed, killed, and reaped.

The start method is **spawn**, never fork: the application runs an event loop and threads (the
executors' own manager threads among them) that a forked child would inherit in an undefined
state. spawn rather than forkserver because a sidecar runs one or two observers: forkserver's
saving, workers sharing the modules its server preloaded, would not pay for the server process
itself, and that server is process-wide state shared with whatever else the host application
runs. spawn also behaves the same on every platform. Its one trap: spawn imports the
application's ``__main__`` again in each worker, so a script must start deucalion under
``if __name__ == "__main__":`` (a script that does not gets an error naming the fix).

Everything here but ``kill`` blocks: it runs in the observer's keeper thread (see
``deucalion.dispatch.calls``), never on the event loop.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection

import cloudpickle

from deucalion.dispatch import in_worker
from deucalion.errors import ConfigError, DeucalionError
from deucalion.observer import MetricsObserver

__all__ = ["MAIN_GUARD_FIX", "START_METHOD", "WorkerProcess", "refuse_in_worker_bootstrap"]

#: Never fork (see the module's docstring).
START_METHOD = "spawn"

MAIN_GUARD_FIX = (
    'put the code that builds and runs the provisioner under `if __name__ == "__main__":` '
    "(observers run in processes started with multiprocessing's spawn method, which imports "
    "your script again in each of them)"
)


def refuse_in_worker_bootstrap() -> None:
    """Raise when called while a spawned worker process imports the application's script.

    spawn runs the script's top level again, as ``__mp_main__``, in every worker; a script
    without a ``__main__`` guard would start a second provisioner there.
    """
    main = sys.modules.get("__main__")
    if (
        getattr(main, "__name__", None) == "__mp_main__"
        and multiprocessing.parent_process() is not None
        # Set by multiprocessing only while a new process is being prepared, that is
        # while it imports __main__ again: a provisioner run later, from the process's
        # own target, is legitimate.
        and getattr(multiprocessing.current_process(), "_inheriting", False)
    ):
        raise DeucalionError(
            f"deucalion was started while an observer's worker process "
            f"imported your script: {MAIN_GUARD_FIX}"
        )


class WorkerProcess:
    """One executor and its one worker process, with an observer installed in it.

    The worker leads a process group of its own: ``kill`` and ``shut_down`` end the group, so
    that what ``new_data`` started (a subprocess, a pool) never outlives the worker; and the
    worker ends that group itself when the application ends without doing so (``kill -9``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.executor: ProcessPoolExecutor | None = None
        self.pid: int | None = None
        """The worker's pid, once it reported it (before the observer loads)."""
        self.reported_at: float | None = None
        """When (``time.monotonic()``) it did."""
        self._pidfd: int | None = None
        self._lifeline: Connection | None = None
        self._reaped = False

    def install(
        self, observer: MetricsObserver, checkpoint: bytes | None
    ) -> in_worker.Failure | None:
        """Start the executor's worker process and stream the observer (or a checkpoint of
        it) to its initializer; then why the observer could not be installed, if it could
        not (the caller shuts the process down). Raises ``BrokenProcessPool`` when the worker
        ended (``kill`` included) and ``ConfigError`` when the observer does not pickle.

        The observer is pickled straight into a pipe the initializer reads from, rather than
        into bytes passed as ``initargs``: the application then never holds a pickled copy of
        a large model (``initargs`` live as long as the executor, and spawn copies them once
        more on the way), and the pickler writes a large buffer with the GIL released, so the
        event loop keeps running meanwhile.
        """
        reader, writer = multiprocessing.Pipe(duplex=False)
        report, started = multiprocessing.Pipe(duplex=False)
        # Held open, never written to, until the worker is shut down: its end of file tells
        # the worker that the application ended (see in_worker._die_with).
        lifeline, self._lifeline = multiprocessing.Pipe(duplex=False)
        executor = self.executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context(START_METHOD),
            initializer=in_worker.install,
            initargs=(reader, started, os.getpid(), lifeline, _logging_of_the_application()),
        )
        unpicklable: Exception | None = None
        try:
            try:
                # The first submit starts the process, from this thread (the keeper); the
                # pipes' worker ends go to it, so ours are closed: a worker that dies then
                # breaks them instead of leaving the reads and writes below blocked.
                hello = executor.submit(in_worker.hello)
            finally:
                reader.close()
                started.close()
                lifeline.close()
            try:
                self._reported(report.recv())
            except (EOFError, OSError):
                pass  # it ended before its initializer ran: hello() raises below
            finally:
                report.close()
            try:
                with open(writer.fileno(), "wb", closefd=False) as stream:
                    if checkpoint is None:
                        cloudpickle.dump(observer, stream, protocol=pickle.HIGHEST_PROTOCOL)
                    else:
                        stream.write(checkpoint)
            except BrokenPipeError:
                pass  # the worker ended while loading: hello() says how
            except Exception as exc:  # any pickling failure: the message names what is wrong
                unpicklable = exc
            finally:
                writer.close()  # the end of the pickle, for the worker
            _, failure = hello.result()
        except BaseException:
            self.shut_down()
            if unpicklable is None:
                raise
            failure = None
        finally:
            for end in (reader, started, lifeline, report, writer):
                end.close()  # those still open when submit() itself failed
        if unpicklable is not None:
            self.shut_down()
            raise ConfigError(
                f"observer {self.name} cannot be sent to its worker process: "
                f"{type(unpicklable).__name__}: {unpicklable}. Keep only picklable attributes "
                "(models, arrays, numbers); open files, sockets and locks in new_data instead"
            ) from None
        return failure

    def _reported(self, pid: int) -> None:
        if hasattr(os, "pidfd_open"):
            # A pidfd names this process for good: a kill through it cannot hit a process
            # that reused the pid after this one was reaped.
            try:
                self._pidfd = os.pidfd_open(pid)
            except OSError:
                self._pidfd = None
        self.pid = pid
        self.reported_at = time.monotonic()

    def kill(self) -> None:
        """SIGKILL the worker and its process group now, whatever it is doing. Never waits:
        ``shut_down`` reaps. Safe from any thread."""
        if self._reaped:
            return  # its pid may belong to another process by now
        executor = self.executor
        kill_workers = getattr(executor, "kill_workers", None)
        if kill_workers is not None:  # Python 3.14+
            kill_workers()
        if self.pid is None:
            # Still starting (importing the application's script, say): the executor knows
            # the process before it reported itself.
            processes = getattr(executor, "_processes", None) or {}
            try:
                pids = list(processes)
            except RuntimeError:  # changed while read: it is being started or reaped
                pids = []
            for pid in pids:
                _signal_quietly(os.kill, pid)
            return
        # The group first, while the worker is not reaped: its pid, the group's id, cannot
        # have been reused by then.
        _signal_quietly(os.killpg, self.pid)
        if self._pidfd is not None:
            _signal_quietly(signal.pidfd_send_signal, self._pidfd)
        else:
            _signal_quietly(os.kill, self.pid)

    def shut_down(self) -> None:
        """End the executor, reap its process and kill what is left of its process group
        (blocks: in the keeper thread)."""
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        if self.pid is not None and not self._reaped:
            # What new_data started and left running (a subprocess ignoring SIGTERM) still
            # holds the group, so its id names nothing else yet.
            _signal_quietly(os.killpg, self.pid)
        self._reaped = True
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            os.close(fd)
        lifeline, self._lifeline = self._lifeline, None
        if lifeline is not None:
            lifeline.close()


def _logging_of_the_application() -> tuple[int, str] | None:
    """The root logger's level and its first handler's format, for the worker to log as the
    application does; None when the application configured no logging."""
    root = logging.getLogger()
    if not root.handlers:
        return None
    formatter = root.handlers[0].formatter
    fmt = getattr(formatter, "_fmt", None) if formatter is not None else None
    return root.level, fmt if isinstance(fmt, str) else logging.BASIC_FORMAT


def _signal_quietly(send: Callable[[int, int], None], target: int) -> None:
    """SIGKILL ``target``; that it has ended already is no error."""
    try:
        send(target, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass

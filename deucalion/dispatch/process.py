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

import multiprocessing
import os
import pickle
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

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
    """One executor and its one worker process, with an observer installed in it."""

    def __init__(self, executor: ProcessPoolExecutor, pid: int) -> None:
        self.executor = executor
        self.pid = pid
        self._pidfd: int | None = None
        self._reaped = False
        if hasattr(os, "pidfd_open"):
            # A pidfd names this process for good: a kill through it cannot hit a process
            # that reused the pid after this one was reaped.
            try:
                self._pidfd = os.pidfd_open(pid)
            except OSError:
                self._pidfd = None

    @classmethod
    def start(
        cls, name: str, observer: MetricsObserver, checkpoint: bytes | None
    ) -> tuple[WorkerProcess, in_worker.Failure | None]:
        """Start an executor's worker process, stream the observer (or a checkpoint of it)
        to its initializer and ask the worker for its pid; with why the observer could not
        be installed, if it could not (then the caller shuts the process down).

        The observer is pickled straight into a pipe the initializer reads from, rather than
        into bytes passed as ``initargs``: the application then never holds a pickled copy of
        a large model (``initargs`` live as long as the executor, and spawn copies them once
        more on the way), and the pickler writes a large buffer with the GIL released, so the
        event loop keeps running meanwhile.
        """
        reader, writer = multiprocessing.Pipe(duplex=False)
        executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context(START_METHOD),
            initializer=in_worker.install,
            initargs=(reader, os.getpid()),
        )
        unpicklable: Exception | None = None
        try:
            try:
                # The first submit starts the process, from this thread (the keeper); the
                # pipe's reading end goes to it, so ours is closed: a worker that dies then
                # breaks the pipe instead of leaving the writes below blocked.
                hello = executor.submit(in_worker.hello)
            finally:
                reader.close()
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
            pid, failure = hello.result()
        except BaseException:
            executor.shutdown(wait=True, cancel_futures=True)
            if unpicklable is None:
                raise
            failure = None
        if unpicklable is not None:
            executor.shutdown(wait=True, cancel_futures=True)
            raise ConfigError(
                f"observer {name} cannot be sent to its worker process: "
                f"{type(unpicklable).__name__}: {unpicklable}. Keep only picklable attributes "
                "(models, arrays, numbers); open files, sockets and locks in new_data instead"
            ) from None
        return cls(executor, pid), failure

    def kill(self) -> None:
        """SIGKILL the worker now, whatever it is doing. Never waits: ``shut_down`` reaps."""
        if self._reaped:
            return  # its pid may belong to another process by now
        kill_workers = getattr(self.executor, "kill_workers", None)
        if kill_workers is not None:  # Python 3.14+
            kill_workers()
            return
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it has ended already

    def shut_down(self) -> None:
        """End the executor and reap its process (blocks: in the keeper thread)."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        self._reaped = True
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            os.close(fd)

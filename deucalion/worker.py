"""An observer's worker process, as the application sees it: start it, call it, end it.

The worker is a fresh interpreter (never a fork: the application runs an event loop and threads
that a forked child would inherit in an undefined state) connected to the application by one
Unix socket pair. The application reads that socket on its event loop, so a call costs two
socket writes and no thread: ``ProcessPoolExecutor`` measured 0.6 ms of CPU per call more here,
in its manager and feeder threads and their wake-ups, plus a resource-tracker process of 12 MB.

The worker imports the application's ``sys.path`` and nothing of the application's script, so a
script needs no ``if __name__ == "__main__":`` guard for it (classes defined in ``__main__``
travel by value, with cloudpickle). See ``deucalion._worker`` for the frames on the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import marshal
import pickle
import socket
import subprocess
import sys
from typing import Any

from deucalion._worker import CALL, ERROR, HEADER, INSTALL, OK, SIZE

__all__ = ["RemoteTraceback", "WorkerDied", "WorkerProcess"]

# What the interpreter runs: the application's sys.path first (it follows on the command line),
# so the worker finds deucalion and the observer's modules wherever the application found them.
BOOTSTRAP = ("import sys; sys.path[:] = sys.argv[3:]; del sys.argv[3:]; "
             "from deucalion._worker import main; main(int(sys.argv[1]))")


class WorkerDied(Exception):
    """The worker process ended (killed, crashed, ``os._exit``) before it answered."""


class RemoteTraceback(Exception):
    """The worker's traceback of an exception, attached to it as ``__cause__``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


class WorkerProcess:
    """One worker process and the socket to it. Requests are answered in order, one at a time:
    the caller must not send the next before the last one's answer (``ObserverWorker`` keeps
    at most one call in flight)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def pid(self) -> int | None:
        """The worker's process id, once started."""
        return None if self.process is None else self.process.pid

    async def start(self, observer: bytes) -> None:
        """Start the interpreter and install the pickled ``observer`` in it.

        Raises ``WorkerDied`` if the process ends first, and the worker's exception (with its
        traceback as ``__cause__``) if the observer cannot be unpickled there.
        """
        ours, theirs = socket.socketpair()
        try:
            # Popen, not asyncio's subprocesses: kill() must work without awaiting (on a signal,
            # at shutdown), and vfork plus exec blocks the loop for about a millisecond.
            self.process = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-c", BOOTSTRAP, str(theirs.fileno()), self.name, *sys.path],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        except BaseException:
            ours.close()
            raise
        # The application's sys.argv goes first, as a spawned process's would: the observer's
        # code may read it.
        argv = marshal.dumps(sys.argv)
        await self.request(INSTALL, SIZE.pack(len(argv)), argv, observer)

    async def call(self, payload: bytes) -> tuple[Any, float]:
        """Run ``new_data`` on ``payload``; its result and when it started in the worker.

        Raises what ``new_data`` raised, or ``WorkerDied``.
        """
        result: tuple[Any, float] = await self.request(CALL, payload)
        return result

    async def request(self, kind: int, *body: bytes) -> Any:
        """Send one frame, its body in parts, and wait for its answer."""
        if self._reader is None or self._writer is None:
            raise WorkerDied(f"the worker of observer {self.name} is not running")
        try:
            self._writer.writelines((HEADER.pack(kind, sum(map(len, body))), *body))
            await self._writer.drain()
            answer, size = HEADER.unpack(await self._reader.readexactly(HEADER.size))
            reply = await self._reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise WorkerDied(self._death()) from exc
        if answer == OK:
            return pickle.loads(reply) if reply else None
        if answer != ERROR:
            raise WorkerDied(f"the worker of observer {self.name} answered frame kind {answer}")
        raised, summary, text = pickle.loads(reply)
        if not isinstance(raised, BaseException):
            # The worker could not pickle the exception; its text still tells what happened.
            raised = RuntimeError(summary)
        raised.__cause__ = RemoteTraceback(text)
        raise raised

    def _death(self) -> str:
        code = None
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                # The socket closed because the process is ending: its status follows at once.
                code = self.process.wait(timeout=1.0)
        if code is None:
            return f"the worker process of observer {self.name} closed its socket"
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return f"the worker process of observer {self.name} ended ({how})"

    def kill(self) -> None:
        """End the process at once, whatever it is doing, and close the socket."""
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)

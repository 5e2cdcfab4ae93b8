"""Checkpoints: an observer's state, pickled in its worker between calls, kept in the
application and, with ``checkpoint_path``, in a file that a restarted application reads back.

A checkpoint is a pickle, and loading a pickle runs code: so the file is written owner-only
(0600, never through a link) in a directory deucalion creates 0700, a directory that others can
write is refused, and a file that another user owns or others can write is never loaded.

A file checkpoint also records how the observer was registered when it was taken: its class
and a digest of each attribute it was constructed with. A restarted application resumes from
the file only when the observer registered now is the same; otherwise (a changed constructor
argument, another class registered under the same name) the file would bring back the old
observer's settings or code, so it is refused with a warning naming the difference, and the
observer starts as registered.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from deucalion.dispatch.in_worker import Failure
from deucalion.dispatch.outcome import ObserverStats, rebuild
from deucalion.errors import ConfigError
from deucalion.observer import MetricsObserver

__all__ = ["CheckpointFile", "Checkpoints", "registration"]

log = logging.getLogger(__name__)

#: The first line of a checkpoint file; the second is its registration, as JSON.
MAGIC = b"deucalion-checkpoint 1\n"
_UNSAFE_MODE = stat.S_IWGRP | stat.S_IWOTH
# Attributes are digested this deep into plain objects before their pickle stands for them.
_DEPTH = 4


def _safe_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "observer"


class _Digest:
    """A file-like sink that hashes what a pickler writes, without keeping it."""

    def __init__(self, sha: Any) -> None:
        self.sha = sha

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return len(data)


def _feed(sha: Any, value: Any, depth: int) -> None:
    """Hash ``value`` the same way in every process: sets and dicts in a canonical order
    (a set of strings pickles in an order that changes from one interpreter to the next)."""
    kind = type(value)
    sha.update(f"{kind.__module__}.{kind.__qualname__}:".encode())
    if value is None or kind in (bool, int, float, complex, str, bytes):
        sha.update(repr(value).encode())
    elif kind in (list, tuple):
        sha.update(str(len(value)).encode())
        for item in value:
            _feed(sha, item, depth)
    elif kind in (set, frozenset):
        for part in sorted(_digest(item, depth) for item in value):
            sha.update(part.encode())
    elif kind is dict:
        for key, item in sorted((_digest(k, depth), _digest(v, depth)) for k, v in value.items()):
            sha.update(f"{key}={item};".encode())
    elif (
        depth > 0
        and isinstance(getattr(value, "__dict__", None), dict)
        and all(
            getattr(kind, method, None) is getattr(object, method)
            for method in ("__reduce_ex__", "__reduce__", "__getstate__")
        )
    ):
        _feed(sha, vars(value), depth - 1)
    else:
        try:
            pickle.dump(value, _Digest(sha), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            import cloudpickle

            try:
                cloudpickle.dump(value, _Digest(sha), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # nothing to compare it by: its type alone stands for it
                pass


def _digest(value: Any, depth: int = _DEPTH) -> str:
    sha = hashlib.sha256()
    try:
        _feed(sha, value, depth)
    except Exception:  # an attribute that will not be looked at: its type stands for it
        return f"{type(value).__qualname__}?"
    return sha.hexdigest()[:16]


def registration(observer: MetricsObserver) -> dict[str, Any]:
    """How ``observer`` was registered: its class and a digest of each of its attributes."""
    kind = type(observer)
    attributes = vars(observer) if isinstance(getattr(observer, "__dict__", None), dict) else {}
    return {
        "class": f"{kind.__module__}.{kind.__qualname__}",
        "attributes": {name: _digest(value) for name, value in sorted(attributes.items())},
    }


def _mismatch(recorded: dict[str, Any], now: dict[str, Any]) -> str | None:
    """What differs between the observer a checkpoint was taken from and the one registered
    now, in words; None when they are the same."""
    if recorded.get("class") != now["class"]:
        return (
            f"it was taken from an observer of class {recorded.get('class')}, and one of class "
            f"{now['class']} is registered now"
        )
    before, after = recorded.get("attributes", {}), now["attributes"]
    changed = sorted(n for n in before.keys() & after.keys() if before[n] != after[n])
    added, removed = sorted(after.keys() - before.keys()), sorted(before.keys() - after.keys())
    if not (changed or added or removed):
        return None
    parts = [
        f"{label} {', '.join(names)}"
        for label, names in (("changed:", changed), ("new:", added), ("gone:", removed))
        if names
    ]
    return (
        "the observer registered now was constructed differently from the one it was taken "
        f"from (attributes {'; '.join(parts)})"
    )


class CheckpointFile:
    """Where one observer's newest checkpoint is written, ``<directory>/<name>.pickle``.

    Every method blocks: they run in the observer's keeper thread.
    """

    def __init__(self, directory: str | os.PathLike[str], name: str) -> None:
        self.name = name
        self.directory = Path(directory)
        self.path = self.directory / f"{_safe_file_name(name)}.pickle"

    def __str__(self) -> str:
        return str(self.path)

    def prepare(self) -> None:
        """Create the directory 0700 when missing; refuse one that others can write."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.directory.stat()
        except OSError as exc:
            failure = (
                "it is not a directory"
                if self.directory.exists() and not self.directory.is_dir()
                else f"cannot create it: {exc}"
            )
            raise ConfigError(
                f"checkpoint_path {self.directory}: {failure}; give a directory deucalion may "
                "create or write"
            ) from None
        problem = self._untrusted(info, "directory")
        if problem is not None:
            raise ConfigError(
                f"checkpoint_path {self.directory}: refused, {problem}. Checkpoints are "
                "pickles, which run code when loaded: give a directory only you can write "
                f"(chmod 700 {self.directory}), or a new one for deucalion to create"
            )

    @staticmethod
    def _untrusted(info: os.stat_result, what: str) -> str | None:
        if info.st_uid != os.geteuid():
            return f"the {what} is owned by uid {info.st_uid}, not by this user ({os.geteuid()})"
        if info.st_mode & _UNSAFE_MODE:
            return f"the {what} is writable by others (mode {stat.filemode(info.st_mode)})"
        return None

    def write(self, blob: bytes, registered: dict[str, Any]) -> None:
        """Atomically, owner-only and never through a link: a reader (a restarting
        application) sees the old file or the new one."""
        directory = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            problem = self._untrusted(os.fstat(directory), "directory")
            if problem is not None:
                raise PermissionError(f"refused to write in {self.directory}: {problem}")
            final, partial = self.path.name, self.path.name + ".partial"
            try:  # a partial file left by a crash, or a link planted in its place
                os.unlink(partial, dir_fd=directory)
            except FileNotFoundError:
                pass
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(partial, flags, 0o600, dir_fd=directory)
            try:
                with open(fd, "wb") as out:
                    out.write(MAGIC)
                    out.write(json.dumps(registered, sort_keys=True).encode() + b"\n")
                    out.write(blob)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(partial, final, src_dir_fd=directory, dst_dir_fd=directory)
            except BaseException:
                try:  # never leave a partial file behind (a full disk would keep it full)
                    os.unlink(partial, dir_fd=directory)
                except OSError:
                    pass
                raise
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)

    def read(self, registered: dict[str, Any]) -> bytes | None:
        """The pickle of the checkpoint written last; None when there is none, or when it must
        not or cannot be loaded (which is logged)."""
        try:
            # O_NONBLOCK: a FIFO planted there must not hang the start.
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._skip(f"cannot read it: {exc}", logging.ERROR)
            return None
        try:
            info = os.fstat(fd)
            problem = self._untrusted(info, "file")
            if not stat.S_ISREG(info.st_mode):
                problem = "it is not a regular file"
            if problem is not None:
                self._skip(
                    f"refused to load it: {problem}. A checkpoint is a pickle, which runs code "
                    "when loaded: only a file this user wrote, that nobody else can change, is "
                    "loaded",
                    logging.ERROR,
                )
                return None
            with open(fd, "rb", closefd=False) as source:
                blob = source.read()
        except OSError as exc:
            self._skip(f"cannot read it: {exc}", logging.ERROR)
            return None
        finally:
            os.close(fd)
        if blob.startswith(MAGIC):
            header, _, blob = blob[len(MAGIC) :].partition(b"\n")
            try:
                recorded = json.loads(header)
            except ValueError:
                self._skip("its header is damaged", logging.ERROR)
                return None
            mismatch = _mismatch(recorded, registered)
            if mismatch is not None:
                self._skip(
                    f"{mismatch}. Register the observer as it was to resume from the file, or "
                    "delete it",
                    logging.WARNING,
                )
                return None
        else:
            log.warning(
                "observer %s: its checkpoint %s records no registration (written by an older "
                "deucalion): loading it without checking that the observer registered now is "
                "the same",
                self.name,
                self.path,
            )
        log.info("observer %s: starting from its checkpoint %s", self.name, self.path)
        return blob

    def _skip(self, why: str, level: int) -> None:
        """Log why the file is not resumed from."""
        log.log(
            level,
            "observer %s: not resuming from its checkpoint %s: %s; starting from the observer "
            "as it was registered",
            self.name,
            self.path,
            why,
        )


class Checkpoints:
    """One observer's newest checkpoint, kept in the application (and in a file with
    ``checkpoint_path``): what a new worker is installed from instead of the observer as
    registered."""

    def __init__(
        self,
        observer: MetricsObserver,
        name: str,
        stats: ObserverStats,
        interval: float | None,
        directory: str | os.PathLike[str] | None,
    ) -> None:
        self.interval = interval
        self.file = (
            CheckpointFile(directory, name)
            if directory is not None and interval is not None
            else None
        )
        self.newest: bytes | None = None
        self._observer = observer
        self._name = name
        self._stats = stats
        self._registered: dict[str, Any] | None = None
        self._last = 0.0
        self._write_failure: tuple[str, int] | None = None

    def _registration(self) -> dict[str, Any]:
        # The registered instance never changes here (new_data runs in the worker): once.
        if self._registered is None:
            self._registered = registration(self._observer)
        return self._registered

    def load(self) -> None:
        """At start, in the keeper thread: the file's checkpoint, when there is one to trust."""
        self._last = time.monotonic()
        if self.file is not None:
            self.file.prepare()
            self.newest = self.file.read(self._registration())

    def due(self) -> bool:
        """Whether a checkpoint is due now."""
        return self.interval is not None and time.monotonic() - self._last >= self.interval

    def started(self) -> None:
        """A checkpoint is being taken now: the next is due an interval later."""
        self._last = time.monotonic()

    def failed(self, failure: Failure) -> None:
        """The worker could not pickle its observer."""
        self._stats.checkpoint_failures += 1
        log.error(
            "observer %s: its checkpoint failed (%s); keeping the previous one",
            self._name,
            failure[1],
            exc_info=rebuild(failure),
        )

    async def keep(self, blob: bytes, in_keeper: Callable[..., Awaitable[Any]]) -> None:
        """The newest checkpoint: kept here at once, then written to the file (in the keeper
        thread). A file that cannot be written costs the file only; the first failure is
        logged, repeats of it are counted until it works again."""
        self.newest = blob
        self._stats.checkpoints += 1
        log.debug("observer %s: checkpoint of %d bytes", self._name, len(blob))
        if self.file is None:
            return
        try:
            await in_keeper(self.file.write, blob, self._registration())
        except OSError as exc:
            self._stats.checkpoint_failures += 1
            message = f"{type(exc).__name__}: {exc}"
            if self._write_failure is not None and self._write_failure[0] == message:
                self._write_failure = (message, self._write_failure[1] + 1)
                log.debug("observer %s: checkpoint file still failing: %s", self._name, message)
                return
            self._write_failure = (message, 1)
            log.error(
                "observer %s: cannot write its checkpoint to %s: %s; the newest checkpoint is "
                "kept in memory (a replaced worker still starts from it), the file keeps the "
                "previous one. Repeats of this error are counted, not logged",
                self._name,
                self.file,
                message,
            )
            return
        if self._write_failure is not None:
            log.info(
                "observer %s: its checkpoint is written to %s again, after %d failure(s)",
                self._name,
                self.file,
                self._write_failure[1],
            )
            self._write_failure = None

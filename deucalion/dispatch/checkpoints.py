"""Checkpoints: an observer's state, pickled in its worker between calls, kept in the
application and, with ``checkpoint_path``, in a file that a restarted application reads back.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

__all__ = ["CheckpointFile"]

log = logging.getLogger(__name__)


def _safe_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "observer"


class CheckpointFile:
    """Where one observer's newest checkpoint is written, ``<directory>/<name>.pickle``.

    Both methods block: they run in the observer's keeper thread.
    """

    def __init__(self, directory: str | os.PathLike[str], name: str) -> None:
        self.name = name
        self.path = Path(directory) / f"{_safe_file_name(name)}.pickle"

    def __str__(self) -> str:
        return str(self.path)

    def write(self, blob: bytes) -> None:
        """Atomically: a reader (a restarting application) sees the old file or the new one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        with open(partial, "wb") as out:
            out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, self.path)

    def read(self) -> bytes | None:
        """The checkpoint written last, or None when there is none (or it cannot be read)."""
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error(
                "observer %s: cannot read its checkpoint %s: %s; starting from the "
                "observer as it was registered",
                self.name,
                self.path,
                exc,
            )
            return None
        log.info("observer %s: starting from its checkpoint %s", self.name, self.path)
        return blob

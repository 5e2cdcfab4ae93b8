"""The files replay writes (recordings, backtest outputs, plots): owner-only, never through a link.

A recording holds what the targets served and an output what the observer made of it: neither
is for other users of the machine, and a link planted where one is written must not redirect it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO

__all__ = ["create_private", "why_not_written"]


def create_private(path: str | Path, *, exclusive: bool = False) -> BinaryIO:
    """``path`` opened for writing from scratch, mode 0600; a symbolic link there is refused
    (``OSError``, as ``open`` raises it), and so is any file there when ``exclusive``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    flags |= os.O_EXCL if exclusive else os.O_TRUNC
    fd = os.open(path, flags, 0o600)
    try:
        # A file that was there keeps its mode through O_TRUNC: made the owner's only.
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def why_not_written(exc: OSError) -> str:
    """Why ``create_private`` failed and what to do, as a user reads it."""
    reason = "it is a link" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
    return f"{reason}; give the path of a regular file in a directory you can write"

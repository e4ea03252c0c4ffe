"""Files codexbro keeps in its home for itself (caches, indexes): read only when they are regular
files of ours — never through a symlink planted in their place, never waiting on a FIFO."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def read_own_file(path: Path, limit: int) -> bytes | None:
    """A regular file of ours (no symlink followed, a FIFO or device never waited on), at most
    ``limit`` bytes; None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit)
    except OSError:
        return None
    finally:
        os.close(fd)

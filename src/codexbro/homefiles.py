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


def write_own_file(path: Path, data: bytes) -> bool:
    """Replace ``path`` atomically with ``data``, 0600: a fresh temporary file beside it (never
    through a planted link), renamed over it. False (and nothing left behind) when it cannot."""
    import secrets

    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return True
    except OSError:
        tmp.unlink(missing_ok=True)
        return False

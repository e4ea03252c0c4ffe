"""Writing an approved path exactly: no symbolic link is followed anywhere along it.

When the user approves a patch that writes outside the sandbox's writable roots, the agent writes it
itself — to the *resolved* paths the user was shown. Each directory is opened relative to its parent
with ``O_NOFOLLOW``, so a link swapped into the path after the approval makes the write fail instead
of carrying it somewhere else; the file is written beside its final name and renamed into place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_parent(path: Path, *, create: bool) -> int:
    """A descriptor of ``path``'s directory, reached component by component without following a link."""
    fd = os.open("/", DIR_FLAGS)
    try:
        for name in path.parent.parts[1:]:
            try:
                nxt = os.open(name, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(name, 0o777, dir_fd=fd)
                nxt = os.open(name, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_file(path: Path, text: str, new_mode: int) -> None:
    """Replace (or create) ``path`` with ``text``; an existing file keeps its mode."""
    parent = _open_parent(path, create=True)
    try:
        try:
            st = os.stat(path.name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            mode = new_mode
        else:
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
            # a link put there after the approval is replaced, never followed; it has no mode to keep
            mode = new_mode if stat.S_ISLNK(st.st_mode) else st.st_mode & 0o7777
        tmp = f".{path.name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
                os.fchmod(fh.fileno(), mode)
            os.replace(tmp, path.name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=parent)
            raise
    finally:
        os.close(parent)


def unlink(path: Path) -> None:
    parent = _open_parent(path, create=False)
    try:
        os.unlink(path.name, dir_fd=parent)  # a directory: EISDIR, never removed
    finally:
        os.close(parent)

"""Protected names that do not exist yet (``.git``, ``.codex``, ``.codexbro``, ``.agents`` at the top of
a writable root) must not be creatable by a sandboxed command. A mount needs something to mount on,
so the agent creates an empty **placeholder** directory, the sandbox binds it read-only, and the
agent removes it again when the session ends — the workspace is left as it was (upstream 0.169
leaves such directories behind for good).

Placeholders live for the session, not for one command: creating and removing four directories per
root per command costs milliseconds on a journaling filesystem. They are ordinary writable
directories on the host (mode 1755 — the sticky bit marks them as codexbro's), so the user's own
``git init`` still works meanwhile; inside the sandbox they are read-only mounts.

The agent holds a shared ``flock`` on each protected directory it relies on. ``sweep`` removes a
placeholder only when it can take the lock exclusively — no other agent relies on it — and it is
still an empty directory with the marker mode. A placeholder left by an agent that was killed is
recognised and adopted by the next one.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import stat

PLACEHOLDER_MODE = 0o1755
_held: dict[str, int] = {}  # path → descriptor holding a shared lock
_ours: set[str] = set()  # placeholders this process made or adopted
_live = 0  # sandboxed processes of this agent that are running (their mounts rely on the locks)


def started() -> None:
    global _live
    _live += 1


def ended() -> None:
    global _live
    _live = max(0, _live - 1)


def hold(path: str) -> bool:
    """Make sure the directory ``path`` exists (creating a placeholder if needed) and hold a shared
    lock on it for the rest of the session. False when it cannot be created (then a sandboxed
    process of the same user cannot create it either) or ``path`` is not a directory."""
    fd = _held.get(path)
    if fd is not None:
        try:
            if os.fstat(fd).st_nlink > 0 and os.stat(path).st_ino == os.fstat(fd).st_ino:
                return True
        except OSError:
            pass
        _drop(path)
    for _attempt in range(5):
        created = False
        try:
            os.mkdir(path)
            created = True
        except FileExistsError:
            pass
        except OSError:
            return False
        try:  # never through a link: a sandboxed command could have swapped one in meanwhile
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return False  # a file (the `.git` file of a worktree), or a link
        if created:
            os.fchmod(fd, PLACEHOLDER_MODE)
        fcntl.flock(fd, fcntl.LOCK_SH)
        if os.fstat(fd).st_nlink > 0:
            _held[path] = fd
            if created or _is_placeholder(fd):
                _ours.add(path)
            return True
        os.close(fd)  # removed by another agent's sweep between our mkdir and our lock: again
    return False


def release_under(root: str) -> None:
    """Let go of the directories beneath ``root`` (a temporary tree about to be deleted)."""
    prefix = root.rstrip("/") + "/"
    for path in [p for p in _held if p.startswith(prefix)]:
        _drop(path)
        _ours.discard(path)


def _drop(path: str) -> None:
    fd = _held.pop(path, None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _is_placeholder(fd: int) -> bool:
    st = os.fstat(fd)
    return stat.S_IMODE(st.st_mode) == PLACEHOLDER_MODE and st.st_nlink == 2 and not os.listdir(fd)


def sweep() -> None:
    """End of session: let go of every lock, and remove the placeholders nobody else relies on.
    Does nothing while a sandboxed process of this agent still runs."""
    if _live:
        return
    for path in list(_held):
        _drop(path)
    for path in list(_ours):
        _ours.discard(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _is_placeholder(fd) and os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                os.rmdir(path)
        except OSError:
            pass  # in use by another agent, or no longer ours to remove
        finally:
            os.close(fd)


atexit.register(sweep)

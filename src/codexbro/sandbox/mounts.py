"""Read-only bind mounts over protected paths (``.git``, ``.codex``, ``.codexbro``, ``.agents``) inside
writable roots, in a private mount namespace. Landlock rules only add rights, so a writable root's
subtree cannot be carved out with Landlock alone; a read-only mount can.

Runs in the child between fork and exec, before Landlock (which forbids mount changes afterwards).
As root it only needs a new mount namespace; otherwise it enters a user namespace first, mapping
the caller's own uid and gid so files keep their owners.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _write(path: str, data: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def enter_namespace() -> None:
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    else:
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")


def protect(paths: tuple[str, ...]) -> None:
    """Child side: bind every path onto itself read-only."""
    if not paths:
        return
    enter_namespace()
    for path in paths:
        raw = path.encode()
        _check(_libc.mount(raw, raw, None, MS_BIND | MS_REC, None), f"bind {path}")
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        if _libc.mount(None, raw, None, flags, None) != 0:
            # Unprivileged remounts must keep the locked flags of the original mount.
            _check(
                _libc.mount(None, raw, None, flags | MS_NOSUID | MS_NODEV, None), f"remount {path} read-only"
            )

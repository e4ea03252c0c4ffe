"""Files the agent reads *in its own process* on the model's behalf — ``read_file``, ``list_dir``,
``view_image``, ``edit_file`` and apply_patch's verification — are opened here, so that what the
sandbox hides from commands is not handed over by the agent instead.

Each path is opened first (no following of "magic" links such as ``/proc/PID/root`` or
``/proc/self/fd/N``, where ``openat2`` exists; non-blocking, so a FIFO cannot freeze the agent) and
judged afterwards by what was really opened — the kernel's own name for the open descriptor —
so a symlink swapped between a check and the read changes nothing. Refused:

- the agent's credential files (every mode), and in restricted modes its whole home
  (``$CODEXBRO_HOME``: sessions, logs, config) — hidden from sandboxed commands too;
- in restricted modes, everything under ``/proc`` (process information — the agent's environment
  and memory —, and files such as ``/proc/kmsg`` whose reads block or consume) and the host's
  ``/dev/shm`` (other programs' shared memory; commands see a private one);
- anything that is not a regular file or a directory (FIFOs, devices, sockets).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import stat
from pathlib import Path

SYS_OPENAT2 = 437  # the same number on every architecture
RESOLVE_NO_MAGICLINKS = 0x02
_PROC_PID = re.compile(r"^/proc/(\d+|self|thread-self)(/|$)")


class ReadRefused(OSError):
    """The model may not read this through the agent; the message says why."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_have_openat2 = True


def _open(path: Path, flags: int) -> int:
    global _have_openat2
    if _have_openat2:
        how = _OpenHow(flags, 0, RESOLVE_NO_MAGICLINKS)
        fd = int(_libc.syscall(SYS_OPENAT2, ctypes.c_int(-100), os.fsencode(path), ctypes.byref(how),
                               ctypes.c_size_t(ctypes.sizeof(how))))  # fmt: skip
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EPERM):  # EPERM: a seccomp filter that refuses openat2
            raise OSError(err, os.strerror(err), str(path))
        _have_openat2 = False
    return os.open(path, flags)


def _within(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _judge(fd: int, path: Path, home: Path | None, restricted: bool) -> None:
    real = os.readlink(f"/proc/self/fd/{fd}")
    name = str(path)
    if restricted and (_PROC_PID.match(real) or _within(real, "/proc")):
        raise ReadRefused(errno.EACCES, "/proc is off limits to the agent's tools in the sandbox", name)
    if restricted and _within(real, "/dev/shm"):
        raise ReadRefused(errno.EACCES, "the host's shared memory is off limits in the sandbox", name)
    from codexbro.sandbox.policy import CREDENTIAL_FILES, physical

    homes = [str(physical(home))] if home is not None else []
    codex_home = str(physical(Path.home() / ".codex"))
    for top in (*homes, codex_home):
        if any(real == f"{top}/{cred}" for cred in CREDENTIAL_FILES):
            raise ReadRefused(errno.EACCES, "it holds the agent's credentials and is off limits", name)
    if restricted and any(_within(real, top) for top in homes):
        raise ReadRefused(errno.EACCES, "the agent's own home is off limits in the sandbox", name)
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ReadRefused(errno.EACCES, "not a regular file or directory", name)


def open_checked(path: Path, *, home: Path | None, restricted: bool, directory: bool = False) -> int:
    """An open descriptor of ``path`` (close it), or ``OSError`` — ``ReadRefused`` when refused."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY | (os.O_DIRECTORY if directory else 0)
    fd = _open(path, flags)
    try:
        _judge(fd, path, home, restricted)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: Path, *, home: Path | None, restricted: bool) -> bytes:
    """The whole file. The descriptor stays non-blocking: a file that would block is refused."""
    fd = open_checked(path, home=home, restricted=restricted)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                raise ReadRefused(errno.EAGAIN, "reading it would block", str(path)) from None
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def read_text(path: Path, *, home: Path | None, restricted: bool) -> str:
    """UTF-8, line endings kept (as ``open(..., newline="")``)."""
    return read_bytes(path, home=home, restricted=restricted).decode("utf-8")


def scandir(path: Path, *, home: Path | None, restricted: bool) -> list[os.DirEntry[str]]:
    fd = open_checked(path, home=home, restricted=restricted, directory=True)
    try:
        with os.scandir(fd) as entries:
            return list(entries)
    finally:
        os.close(fd)

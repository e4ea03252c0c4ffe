"""The agent's reaper: one small helper process per agent that SIGKILLs every tool process group
still registered when the agent dies — normally, by an exception, or by SIGKILL.

The agent holds the only write end of a pipe to the reaper (close-on-exec, so no tool process
inherits it). It writes ``+PGID`` after each spawn and ``-PGID`` once it has reaped that group's
leader. When the agent dies the kernel closes the pipe; the reaper reads end-of-file and kills every
group it still knows. A group whose leader has been reaped stays known while it has members (a
background job that outlived its command) — the kernel does not reuse a number still in use as a
process-group id — and is dropped the first time it is found empty.

The reaper is a fresh ``python -I -S`` (no copy of the agent's memory or environment), started with
``posix_spawn`` on the first registration: the agent does not wait for it, and a registration made
before it runs waits in the pipe.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

CHECK_EVERY_S = 5.0

SCRIPT = rf"""
import os, select, signal
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
    signal.signal(s, signal.SIG_IGN)
groups, done, buf = set(), set(), b""
while True:
    if not select.select([3], [], [], {CHECK_EVERY_S})[0]:
        for g in list(done):
            try:
                os.killpg(g, 0)
            except ProcessLookupError:
                done.discard(g); groups.discard(g)
            except OSError:
                pass
        continue
    data = os.read(3, 65536)
    if not data:
        break
    *lines, buf = (buf + data).split(b"\n")
    for line in lines:
        try:
            g = int(line[1:])
        except ValueError:
            continue
        if line[:1] == b"+":
            groups.add(g); done.discard(g)
        elif g in groups:
            done.add(g)
for g in groups:
    try:
        os.killpg(g, signal.SIGKILL)
    except OSError:
        pass
"""

_lock = threading.Lock()
_write_fd: int | None = None
_pid: int | None = None


def _start() -> int:
    global _write_fd, _pid
    read_fd, write_fd = os.pipe()
    try:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, read_fd, 3),
        ]
        pid = os.posix_spawn(
            sys.executable, [sys.executable, "-I", "-S", "-c", SCRIPT], {}, file_actions=actions, setsid=True
        )
    finally:
        os.close(read_fd)
    _write_fd, _pid = write_fd, pid
    return write_fd


def _alive() -> bool:
    if _pid is None:
        return False
    try:
        pid, _status = os.waitpid(_pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return pid == 0


def _send(line: str) -> None:
    global _write_fd
    with _lock:
        if _write_fd is not None and not _alive():
            with contextlib.suppress(OSError):
                os.close(_write_fd)
            _write_fd = None
        fd = _write_fd if _write_fd is not None else _start()
        with contextlib.suppress(OSError):
            os.write(fd, line.encode())


def register(pgid: int) -> None:
    """After a spawn with ``start_new_session``: the child's pid is its group's id."""
    _send(f"+{pgid}\n")


def release(pgid: int) -> None:
    """After the group's leader was reaped."""
    _send(f"-{pgid}\n")

"""Spare spawn servers: a container's server process, started before the container is needed.

A container's spawn server (``server.py``) is a fresh ``python -I``. Starting that interpreter and
importing the server's modules (and the patch writer's) is ~70 ms of the ~85 ms a container takes
to start, and none of it depends on the container's view. So a session that may run sandboxed
commands boots its server when it opens (``boot_for``), while the agent is still setting itself up:
the process imports its modules, arms its parent-death signal and waits — holding nothing, in no
namespace yet — for the configuration that the session's first container sends it (``take``).
A session that never runs a command stops its spare unused when it closes (``discard``).

This module is imported on the path of every session's opening: it loads nothing beyond what the
agent has already loaded (``os``, ``socket``, ``subprocess``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
BOOT = f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); from codexbro.sandbox.server import main; main()"
STALE_AFTER_S = 600.0  # a spare older than this is not adopted: the package may have changed since
MAX_SPARES = 2  # idle spares one process keeps (an app server opens many sessions; most run nothing)


class Booted:
    """A started server process and the agent's end of its control socket."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.process = process
        self.sock = sock
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        """The process started: the holder once the container is built (the server is its child)."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """Close our end (the server reads end-of-file and exits) and make sure it is gone."""
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def reaped(self, timeout_s: float = 5.0) -> None:
        """Wait, without blocking the loop, until the (killed) process is reaped: its pidfd becomes
        readable when it exits (a thread waits instead where there is no pidfd)."""
        if self.process.poll() is not None:
            return
        try:
            pidfd = os.pidfd_open(self.process.pid)
        except OSError:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self.process.wait, timeout_s)
            return
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()
        loop.add_reader(pidfd, _settle, exited)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(exited, timeout_s)
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        self.process.poll()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def boot() -> Booted:
    """Start a server process now (no configuration yet). It gets the agent's pid (its parent-death
    signal is tied to it) and the descriptor number of its control socket; the configuration — the
    paths of the view — travels later on that socket, so none of it is in the command line."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": os.environ.get("LANG", "C.UTF-8")}
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-c", BOOT, str(os.getpid()), str(theirs.fileno())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            pass_fds=(theirs.fileno(),), start_new_session=True, cwd="/",
        )  # fmt: skip
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    ours.setblocking(False)
    return Booted(process, ours)


# One spare per session (its owner name), made by ``boot_for`` and taken by its first container.
_SPARES: dict[str, Booted] = {}


def boot_for(owner: str) -> None:
    """Boot a spare server for session ``owner`` unless it has one. Never raises: without a spare,
    the first container starts its server itself."""
    if owner in _SPARES or not sys.platform.startswith("linux"):
        return
    for key in [k for k, spare in _SPARES.items() if time.monotonic() - spare.started >= STALE_AFTER_S]:
        _SPARES.pop(key).kill()  # too old to be adopted: no reason to keep it
    if len(_SPARES) >= MAX_SPARES:
        return
    try:
        _SPARES[owner] = boot()
    except OSError as exc:
        log.debug("no spare sandbox server: %s", exc)


def take(owner: str) -> Booted | None:
    """The session's spare, if it is still alive and fresh (else it is stopped and None)."""
    spare = _SPARES.pop(owner, None)
    if spare is None:
        return None
    if spare.alive and time.monotonic() - spare.started < STALE_AFTER_S:
        return spare
    spare.kill()
    return None


async def discard(owner: str) -> None:
    """Stop the spare of session ``owner`` (and its helpers, ``owner/…``) that no container took."""
    for key in [k for k in _SPARES if k == owner or k.startswith(owner + "/")]:
        spare = _SPARES.pop(key)
        spare.kill()
        await spare.reaped()


def drop(owner: str) -> None:
    """``discard`` for a caller outside the event loop (a session that failed to open)."""
    spare = _SPARES.pop(owner, None)
    if spare is not None:
        spare.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            spare.process.wait(1)


def spares() -> int:
    return len(_SPARES)

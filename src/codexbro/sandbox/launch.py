"""How a tool process is started outside the namespace container, and how its life is tied to
the agent's. (The namespace backend starts commands through its container's spawn server instead:
``container.py``, ``server.py``.)

Every tool process runs in its own session and process group (``start_new_session``), registered
with the agent's **reaper** (``reaper.py``), which SIGKILLs every registered group the moment the
agent dies — however it dies, SIGKILL included. That covers the command and everything it started
that stayed in its group; a process that moves itself to another group or session is the residual
case under ``danger-full-access``.

``preexec(plan)`` returns the ``preexec_fn`` a spawn needs, or None when it needs none (then Python
spawns with ``vfork``, about a millisecond; a ``fork`` of the agent costs ~5 ms here and grows with
its memory):

- a controlling terminal (``exec_command`` with ``tty``): ``TIOCSCTTY`` so Ctrl-C written to the
  PTY interrupts the command;
- ``command_setup`` (the landlock backend: Landlock, capabilities, seccomp): just before ``exec``.

The helpers below (parent-death signals, waiting for a child, exiting as it did, closing
descriptors) are used by the spawn server.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import signal
import termios
from collections.abc import Callable, Sequence
from typing import NamedTuple, NoReturn

from codexbro.sandbox import syscalls as sc

CHILD_FAILURE_EXIT = 126
WAITED = {
    signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP,
    signal.SIGTTIN, signal.SIGTTOU,
}  # fmt: skip


class Plan(NamedTuple):
    """What the child does. Callables run in forked children: keep them to syscalls. A NamedTuple,
    not a Struct: the container server (``server.py``) imports this module and starts on every
    sandboxed session — it must not pay for importing msgspec (~20 ms)."""

    controlling_tty: bool = False
    command_setup: Callable[[], None] | None = None  # just before the command starts


def child_failure(message: str) -> NoReturn:
    with contextlib.suppress(OSError):
        os.write(2, f"codexbro sandbox: {message}\n".encode())
    os._exit(CHILD_FAILURE_EXIT)


def describe(exc: OSError) -> str:
    return str(exc) if exc.filename else str(exc.strerror or exc)


def close_fds_except(keep: Sequence[int]) -> None:
    low = 0
    for fd in sorted(set(keep)):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def arm_parent_death(expected_parent: int | None, alive_fd: int | None = None) -> None:
    """SIGKILL when the parent dies; exit now if it already has. A parent in another PID namespace
    reads as 0 from ``getppid``: then ``alive_fd``, the read end of a pipe only the parent holds,
    tells (end-of-file once the parent is gone)."""
    sc.set_parent_death_signal(signal.SIGKILL)
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(CHILD_FAILURE_EXIT)
    if alive_fd is not None:
        os.set_blocking(alive_fd, False)
        try:
            if os.read(alive_fd, 1) == b"":
                os._exit(CHILD_FAILURE_EXIT)
        except BlockingIOError:
            pass
        os.close(alive_fd)


def mirror(status: int) -> NoReturn:
    """Exit as the command did: same code, or the same fatal signal."""
    if os.WIFEXITED(status):
        os._exit(os.WEXITSTATUS(status))
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else signal.SIGKILL
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(os.getpid(), sig)
    os._exit(128 + sig)


def wait_for(child: int, *, reap_all: bool = False) -> int:
    """Wait for ``child`` with every signal in ``WAITED`` blocked (they must be); returns its wait
    status. ``reap_all``: an init also reaps the orphans it inherits. Terminal signals (Ctrl-C, …)
    are the command's: it got its own copy."""
    while True:
        info = signal.sigwaitinfo(WAITED)
        if info.si_signo != signal.SIGCHLD:
            continue
        while True:
            try:
                pid, status = os.waitpid(-1 if reap_all else child, os.WNOHANG)
            except ChildProcessError:
                return signal.SIGKILL
            if pid == child:
                return status
            if pid == 0:
                break


def preexec(plan: Plan) -> Callable[[], None] | None:
    if not plan.controlling_tty and plan.command_setup is None:
        return None

    def direct() -> None:
        try:
            if plan.controlling_tty and os.isatty(0):
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            if plan.command_setup is not None:
                plan.command_setup()
        except OSError as exc:
            child_failure(describe(exc))

    return direct

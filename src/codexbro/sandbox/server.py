"""The namespace sandbox's spawn server: one small process per session container.

Started by the agent (``spare.py``) as a fresh ``python -I`` — no copy of the agent's memory or
environment — with a control socket (its descriptor number and the agent's pid are its arguments),
often before the session needs a container: it imports what it needs and waits for its
configuration (the view), the first message on the socket. It arms a
parent-death signal (the agent's death is its death) and builds the container
(``namespaces.enter``: user, mount, IPC, network and — for its children — PID namespaces, and the
read-only mount view). Then it forks: the child is PID 1 of the container and goes on as the server
(it mounts ``/proc``; its parent-death signal ties it to the parent; when PID 1 dies the kernel kills
everything in the namespace); the parent stays on the host side as the holder, replaced by
``sleep`` so it keeps nothing of Python. The server then serves the agent, one request per message;
the request itself travels in a memfd (the first descriptor), so its size has no limit:

- ``spawn`` (the command's stdin, stdout, stderr and extra descriptors ride along as SCM_RIGHTS):
  a non-interactive command gets a PID (and mount) namespace of its own — an init cloned into it
  forks the command, reaps, and exits as the command did, so whatever the command leaves behind
  dies with it and the command keeps ordinary signal behaviour; an interactive (TTY) one is forked
  straight into the container's, with the PTY as its controlling terminal. Either way the command
  is restricted just before ``exec``: Landlock (a ruleset built once), every capability dropped,
  ``no_new_privs``, seccomp, and the signal dispositions Python changed set back to default.
- ``patch``: the same, but the child writes an apply_patch instead of exec'ing a command (the
  answer on its stdout as JSON).
- ``kill``: SIGKILL to the command's whole process group.
- the server reports ``started`` and ``exit`` (the raw wait status) for each request.

Forking this small process costs ~1 ms; forking the agent would cost ~5 ms and grow with its memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import signal
import socket
import sys
import termios
from typing import Any, NoReturn

from codexbro.sandbox import landlock, namespaces, seccomp
from codexbro.sandbox import syscalls as sc
from codexbro.sandbox.launch import (
    WAITED,
    arm_parent_death,
    child_failure,
    close_fds_except,
    describe,
    mirror,
    wait_for,
)

SLEEP_FOREVER = ["sleep", "2147483647"]
MAX_FDS = 32
HIGH_FD = 1000  # where the server's own descriptors go before a child places the command's
RESET_SIGNALS = ("SIGPIPE", "SIGXFSZ", "SIGXFZ", "SIGCHLD", "SIGINT", "SIGTERM", "SIGHUP")


class Server:
    def __init__(self, config: dict[str, Any], sock: socket.socket) -> None:
        self.sock = sock
        self.view = namespaces.View(
            tuple(config["writable"]), tuple(config["protected"]), tuple(config["pinned"]),
            tuple(config["hidden_dirs"]), bool(config["network"]), os.getuid(), os.getgid(),
        )  # fmt: skip
        self.landlock_writable: list[str] = config["landlock_writable"]
        self.abi = int(config["landlock_abi"])
        self.filter = seccomp.build_filter(self.view.network)
        self.last_cap = sc.last_capability()
        self.children: dict[int, str] = {}  # pid → request id
        self.ruleset = -1
        self.alive_r = -1
        self._alive_w = -1

    # ---- set-up -------------------------------------------------------------------------------

    def build(self) -> None:
        """In the process the agent started: build the container, fork its PID 1 (which goes on as
        the server), and become the host-side holder: ``sleep``, with the parent-death signal."""
        import shutil

        sleep = shutil.which("sleep", path="/usr/local/bin:/usr/bin:/bin")  # never a workspace's
        if sleep is None:
            raise OSError("no `sleep` in /usr/local/bin, /usr/bin or /bin")
        namespaces.enter(self.view)
        alive_r, alive_w = os.pipe()
        armed_r, armed_w = os.pipe()
        server = os.fork()
        if server:
            os.close(alive_r)
            os.close(armed_w)
            if os.read(armed_r, 1) != b"1":
                os._exit(1)
            close_fds_except(())
            sc.drop_all_capabilities(self.last_cap)  # the holder needs none of the container's
            sc.set_no_new_privs()
            os.execv(sleep, [sleep, SLEEP_FOREVER[1]])  # keeps the parent-death signal
        os.close(alive_w)
        os.close(armed_r)
        arm_parent_death(None, alive_r)
        os.write(armed_w, b"1")
        os.close(armed_w)
        namespaces.mount_proc()
        # End-of-file on alive_r for every child once the server is gone; both ends kept high, so
        # placing a command's descriptors never lands on them.
        alive_r, alive_w = os.pipe()
        self.alive_r, self._alive_w = _high(alive_r), _high(alive_w)
        if self.abi > 0:  # built once, in the container's view; each command only applies it
            self.ruleset = _high(landlock.build_ruleset(self.landlock_writable, abi=self.abi))

    # ---- serving ------------------------------------------------------------------------------

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ, "control")
        selector.register(wake_r, selectors.EVENT_READ, "child")
        self.send({"event": "ready"})
        while True:
            for key, _mask in selector.select():
                if key.data == "child":
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 512)
                    self.reap()
                    continue
                try:
                    data, fds, _flags, _addr = socket.recv_fds(self.sock, 4096, MAX_FDS)
                except OSError:
                    data, fds = b"", []
                if not data:
                    return  # the agent closed the socket (or died): the container goes with us
                try:
                    self.handle(data, fds)
                finally:
                    for fd in fds:
                        with contextlib.suppress(OSError):
                            os.close(fd)

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(json.dumps(message).encode())

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            rid = self.children.pop(pid, None)
            if rid is not None:
                self.send({"id": rid, "event": "exit", "status": status})

    def handle(self, head: bytes, fds: list[int]) -> None:
        message = json.loads(head)
        if message.get("op") == "kill":
            for pid, rid in self.children.items():
                if rid == message.get("id"):
                    with contextlib.suppress(OSError):
                        os.killpg(pid, signal.SIGKILL)
            return
        rid = str(message.get("id"))
        try:
            request = _read_request(fds[0]) if fds else {}
            targets = [int(t) for t in request["fd_targets"]]
            if len(targets) != len(fds) - 1:
                raise ValueError("descriptor count does not match the request")
            tty = bool(request.get("tty"))
            # A non-interactive request gets a PID (and mount) namespace of its own: one clone.
            pid = os.fork() if tty else sc.clone_into(sc.CLONE_NEWPID | sc.CLONE_NEWNS)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.send({"id": rid, "event": "error", "message": f"cannot start: {exc}"})
            return
        if pid == 0:
            try:
                self.child(request, fds[1:], targets, tty)
            except BaseException as exc:
                child_failure(f"{type(exc).__name__}: {exc}")
        self.children[pid] = rid
        self.send({"id": rid, "event": "started", "pid": pid})

    # ---- in the forked child --------------------------------------------------------------------

    def child(self, request: dict[str, Any], fds: list[int], targets: list[int], tty: bool) -> NoReturn:
        """The forked (TTY) or cloned (PID namespace of its own) child: place the descriptors,
        restrict, then exec the command — or, as the namespace's PID 1, start it with
        ``posix_spawn`` (no second copy of this process), wait, and exit as it did."""
        try:
            signal.set_wakeup_fd(-1)
            os.close(self._alive_w)
            arm_parent_death(None, os.dup(self.alive_r))
            os.setsid()
            staged = [_high(os.dup(fd)) for fd in fds]  # out of the way of the targets first
            for src, dst in zip(staged, targets, strict=True):
                os.dup2(src, dst, inheritable=True)
            keep = [*targets, self.ruleset] if self.ruleset >= 0 else list(targets)
            close_fds_except(keep)
            if tty and os.isatty(0):
                with contextlib.suppress(OSError):  # a terminal another session owns stays theirs
                    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            if not tty:
                namespaces.mount_proc()
            os.chdir(request["cwd"])
            if self.ruleset >= 0:
                landlock.restrict_self(self.ruleset)
                os.close(self.ruleset)
            sc.drop_all_capabilities(self.last_cap)
            self.filter.install()
            defaults = {getattr(signal, n) for n in RESET_SIGNALS if hasattr(signal, n)}
            if tty or request.get("op") == "patch":
                for sig in defaults:
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
        except OSError as exc:
            child_failure(describe(exc))
        if request.get("op") == "patch":
            _write_patch(str(request["patch"]), str(request["cwd"]))
        argv: list[str] = request["argv"]
        try:
            if tty:
                os.execvpe(argv[0], argv, request["env"])
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, WAITED)
            # Every signal to default. (glibc's posix_spawn leaves its two internal real-time signals
            # ignored; every glibc program installs its own handlers for them.)
            every = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}
            command = os.posix_spawnp(argv[0], argv, request["env"], setsigdef=every,
                                      setsigmask=blocked - WAITED - defaults)  # fmt: skip
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.write(2, f"codexbro: cannot run {argv[0]!r}: {exc.strerror or exc}\n".encode())
            os._exit(127)
        for fd in range(0, 3):  # the command holds its pipes, not the init
            with contextlib.suppress(OSError):
                os.close(fd)
        mirror(wait_for(command, reap_all=True))


def _high(fd: int) -> int:
    """Move a descriptor to HIGH_FD or above (close-on-exec), out of the command's way."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, HIGH_FD)
    os.close(fd)
    return moved


def _read_request(fd: int) -> dict[str, Any]:
    with os.fdopen(os.dup(fd), "rb") as fh:
        fh.seek(0)
        request = json.loads(fh.read())
    if not isinstance(request, dict):
        raise ValueError("the request is not an object")
    return request


def _write_patch(patch: str, cwd: str) -> NoReturn:
    """The patch writer, run instead of a command: the answer on stdout as JSON."""
    from pathlib import Path

    from codexbro.apply_patch.apply import commit, verify
    from codexbro.apply_patch.parser import PatchError, parse_patch

    try:
        summary = commit(verify(parse_patch(patch), Path(cwd)), Path(cwd)).summary()
        answer: dict[str, Any] = {"ok": True, "text": summary}
    except PatchError as exc:
        answer = {"ok": False, "text": str(exc), "errno": exc.errno, "reason": exc.reason}
    with contextlib.suppress(OSError):
        os.write(1, json.dumps(answer).encode())
    os._exit(0)


def receive_config(sock: socket.socket) -> dict[str, Any] | None:
    """The first message: ``configure``, the configuration in a memfd. None when the agent closed
    the socket first (a spare it never used)."""
    while True:
        try:
            head, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
        except InterruptedError:
            continue
        break
    try:
        if not head:
            return None
        if not fds or json.loads(head).get("op") != "configure":
            raise ValueError("the first message is not the configuration")
        return _read_request(fds[0])
    finally:
        for fd in fds:
            os.close(fd)


def main() -> None:
    """``python -I -c BOOT AGENT_PID CONTROL_FD``: boot (imports done, parent-death signal armed),
    wait for the configuration, build the container, serve."""
    agent_pid, control_fd = int(sys.argv[1]), int(sys.argv[2])
    arm_parent_death(agent_pid)
    os.chdir("/")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)  # only the agent ends the server (by closing the socket)
    # Loaded before the configuration arrives (a spare server waits with it loaded): the patch
    # writer's children fork with it.
    import codexbro.apply_patch.apply  # noqa: F401

    sock = socket.socket(fileno=control_fd)
    config = receive_config(sock)
    if config is None:
        return
    server = Server(config, sock)
    try:
        server.build()
    except OSError as exc:
        server.send({"event": "failed", "message": describe(exc)})
        sys.exit(1)
    server.serve()  # returns when the agent is gone; as PID 1, our exit ends the container


if __name__ == "__main__":
    main()

"""The namespace sandbox's spawn server: one small process per session container.

Started by the agent (``container.py``) as a fresh ``python -I`` — no copy of the agent's memory or
environment — with a control socket (its descriptor number is in the configuration). It arms a
parent-death signal (the agent's death is its death) and builds the container
(``namespaces.enter``: user, mount, IPC, network and — for its children — PID namespaces, and the
read-only mount view). Then it forks: the child is PID 1 of the container and goes on as the server
(it mounts ``/proc``; its parent-death signal ties it to the parent; when PID 1 dies the kernel kills
everything in the namespace); the parent stays on the host side as the holder, replaced by
``sleep`` so it keeps nothing of Python. The server then serves the agent:

- ``spawn`` (fds for stdin, stdout, stderr and extras ride along as SCM_RIGHTS): a non-interactive
  command is cloned straight into a PID (and mount) namespace of its own, as its PID 1 — so
  whatever it leaves behind dies when it ends or is killed; an interactive (TTY) one is forked into
  the container's, with the PTY as its controlling terminal so Ctrl-C reaches it (PID 1 would ignore
  it). Either way the command is restricted just before ``exec``: Landlock (a ruleset built once),
  every capability dropped, seccomp.
- ``kill``: SIGKILL to the command's whole process group.
- the server reports ``started`` and ``exit`` (the raw wait status) for each command.

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
from typing import Any

from codexbro.sandbox import landlock, namespaces, seccomp
from codexbro.sandbox import syscalls as sc
from codexbro.sandbox.launch import arm_parent_death, child_failure, close_fds_except, describe

MAX_MESSAGE = 1 << 20
SLEEP_FOREVER = ["sleep", "2147483647"]
MAX_FDS = 16


class Server:
    def __init__(self, config: dict[str, Any]) -> None:
        self.sock = socket.socket(fileno=int(config["control_fd"]))
        self.view = namespaces.View(
            tuple(config["writable"]), tuple(config["protected"]), tuple(config["hidden_dirs"]),
            tuple(config["hidden_files"]), bool(config["network"]), os.getuid(), os.getgid(),
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
            os.execvp(SLEEP_FOREVER[0], SLEEP_FOREVER)  # keeps the parent-death signal
        os.close(alive_w)
        os.close(armed_r)
        arm_parent_death(None, alive_r)
        os.write(armed_w, b"1")
        os.close(armed_w)
        namespaces.mount_proc()
        self.alive_r, self._alive_w = os.pipe()  # end-of-file for every child once the server is gone
        if self.abi > 0:  # built once, in the container's view; each command only applies it
            self.ruleset = landlock.build_ruleset(self.landlock_writable, abi=self.abi)

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
                    data, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_MESSAGE, MAX_FDS)
                except OSError:
                    data, fds = b"", []
                if not data:
                    return  # the agent closed the socket (or died): the container goes with us
                try:
                    self.handle(json.loads(data), fds)
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

    def handle(self, request: dict[str, Any], fds: list[int]) -> None:
        if request.get("op") == "kill":
            for pid, rid in self.children.items():
                if rid == request["id"]:
                    with contextlib.suppress(OSError):
                        os.killpg(pid, signal.SIGKILL)
            return
        rid = str(request["id"])
        tty = bool(request.get("tty"))
        try:
            # A non-interactive command is PID 1 of a PID namespace of its own (and a mount
            # namespace, for its /proc): what it leaves behind dies with it. One clone does it.
            pid = os.fork() if tty else sc.clone_into(sc.CLONE_NEWPID | sc.CLONE_NEWNS)
        except OSError as exc:
            self.send({"id": rid, "event": "error", "message": f"fork failed: {exc.strerror}"})
            return
        if pid == 0:
            self.child(request, fds, tty)
        self.children[pid] = rid
        self.send({"id": rid, "event": "started", "pid": pid})

    # ---- in the forked child --------------------------------------------------------------------

    def child(self, request: dict[str, Any], fds: list[int], tty: bool) -> None:
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(self._alive_w)
            arm_parent_death(None, os.dup(self.alive_r))
            os.setsid()
            targets: list[int] = request["fd_targets"]
            staged = [os.dup(fd) for fd in fds]  # out of the way before they are placed
            for src, dst in zip(staged, targets, strict=True):
                os.dup2(src, dst, inheritable=True)
            close_fds_except((*targets, self.ruleset))
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
        except OSError as exc:
            child_failure(describe(exc))
        argv: list[str] = request["argv"]
        try:
            os.execvpe(argv[0], argv, request["env"])
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.write(2, f"codexbro: cannot run {argv[0]!r}: {exc.strerror or exc}\n".encode())
            os._exit(127)


def main() -> None:
    config = json.loads(sys.argv[1])
    arm_parent_death(int(config["agent_pid"]))
    server = Server(config)
    try:
        server.build()
    except OSError as exc:
        server.send({"event": "failed", "message": describe(exc)})
        sys.exit(1)
    server.serve()  # returns when the agent is gone; as PID 1, our exit ends the container


if __name__ == "__main__":
    main()

"""The agent's side of the namespace sandbox: one container per session (and per view), driven
through its spawn server (``server.py``) over a ``SOCK_SEQPACKET`` socket pair.

``Container.spawn`` hands the server a command and the descriptors it needs (stdin, stdout,
stderr, extras), and returns a ``ContainerProcess``: the part of ``asyncio.subprocess.Process`` the
tools use — ``pid``, ``returncode``, ``wait()``, ``kill()``, ``stdin``/``stdout``/``stderr`` streams.
The agent forks nothing: the server does, from its own small address space.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codexbro.sandbox.namespaces import View

START_TIMEOUT_S = 20.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_ids = itertools.count(1)


class ContainerError(OSError):
    pass


class ContainerProcess:
    """A command running in the container."""

    def __init__(self, container: Container, rid: str) -> None:
        self._container = container
        self.id = rid
        self.pid = 0  # in the container's PID namespace (for display)
        self.returncode: int | None = None
        self.stdin: asyncio.StreamWriter | None = None
        self.stdout: asyncio.StreamReader | None = None
        self.stderr: asyncio.StreamReader | None = None
        self._started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def _event(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        if event == "started" and not self._started.done():
            self.pid = int(message.get("pid") or 0)
            self._started.set_result(self.pid)
        elif event in ("exit", "error", "lost"):
            status = int(message.get("status", signal.SIGKILL))
            code = os.waitstatus_to_exitcode(status) if event == "exit" else -signal.SIGKILL
            if not self._started.done():
                self._started.set_exception(
                    ContainerError(message.get("message") or "the command did not start")
                )
            if not self._exited.done():
                self.returncode = code
                self._exited.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def kill(self) -> None:
        if self.returncode is None:
            self._container.send({"op": "kill", "id": self.id})

    async def communicate(self, data: bytes | None = None) -> tuple[bytes, bytes]:
        if self.stdin is not None:
            if data:
                self.stdin.write(data)
                with contextlib.suppress(ConnectionError):
                    await self.stdin.drain()
            self.stdin.close()
        out_task = asyncio.ensure_future(self.stdout.read()) if self.stdout else None
        err_task = asyncio.ensure_future(self.stderr.read()) if self.stderr else None
        out = await out_task if out_task else b""
        err = await err_task if err_task else b""
        await self.wait()
        return out, err


class Container:
    """One container: its server process, the control socket, the commands in flight."""

    def __init__(self, view: View, landlock_writable: list[str], landlock_abi: int) -> None:
        self.view = view
        self._config = {
            "writable": list(view.writable), "protected": list(view.protected),
            "hidden_dirs": list(view.hidden_dirs), "hidden_files": list(view.hidden_files),
            "network": view.network, "landlock_writable": landlock_writable, "landlock_abi": landlock_abi,
        }  # fmt: skip
        self._sock: socket.socket | None = None
        self._server: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._procs: dict[str, ContainerProcess] = {}
        self._start_lock = asyncio.Lock()

    @property
    def running(self) -> int:
        return len(self._procs)

    @property
    def alive(self) -> bool:
        return self._server is not None and self._server.returncode is None

    async def start(self) -> None:
        async with self._start_lock:
            if self.alive and self._ready is not None and self._ready.done() and not self._ready.exception():
                return
            await self._start()

    async def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = json.dumps({**self._config, "agent_pid": os.getpid(), "control_fd": theirs.fileno()})
        root = _PACKAGE_ROOT  # where the codexbro package lives
        boot = f"import sys; sys.path.insert(0, {root!r}); from codexbro.sandbox.server import main; main()"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": os.environ.get("LANG", "C.UTF-8")}
        try:
            self._server = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-c", boot, config, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
                pass_fds=(theirs.fileno(),), start_new_session=True,
            )  # fmt: skip
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._reader = asyncio.ensure_future(self._read())
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT_S)
        except TimeoutError:
            await self.aclose()
            raise ContainerError("the sandbox container did not start in time") from None

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None and self._ready is not None
        try:
            while True:
                data = await loop.sock_recv(self._sock, 1 << 16)
                if not data:
                    break
                message = json.loads(data)
                event = message.get("event")
                if event == "ready":
                    self._ready.set_result(None)
                elif event == "failed":
                    self._ready.set_exception(
                        ContainerError(message.get("message") or "container set-up failed")
                    )
                elif (proc := self._procs.get(str(message.get("id")))) is not None:
                    proc._event(message)
                    if proc.returncode is not None:
                        self._procs.pop(proc.id, None)
        except (OSError, ValueError):
            pass
        finally:
            if not self._ready.done():
                self._ready.set_exception(ContainerError("the sandbox container exited during set-up"))
            for proc in list(self._procs.values()):
                proc._event({"event": "lost"})
            self._procs.clear()

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        if self._sock is None:
            raise ContainerError("the sandbox container is not running")
        payload = json.dumps(message).encode()
        if fds:
            socket.send_fds(self._sock, [payload], fds)
        else:
            self._sock.send(payload)

    async def spawn(
        self, argv: list[str], *, cwd: str, env: dict[str, str], tty: bool, stdin: int | None,
        stdout: int | None, stderr: int | None, pass_fds: tuple[int, ...] = (),
    ) -> ContainerProcess:  # fmt: skip
        """``stdin``/``stdout``/``stderr``: a descriptor to hand over, ``asyncio.subprocess.PIPE``,
        ``asyncio.subprocess.STDOUT`` (stderr only) or ``DEVNULL``/None."""
        await self.start()
        loop = asyncio.get_running_loop()
        rid = str(next(_ids))
        proc = ContainerProcess(self, rid)
        handed: list[int] = []  # descriptors to send (closed here afterwards when we made them)
        ours: list[int] = []
        try:
            for target, spec in ((0, stdin), (1, stdout), (2, stderr)):
                if spec == asyncio.subprocess.PIPE:
                    r, w = os.pipe()
                    child_end, our_end = (r, w) if target == 0 else (w, r)
                    ours.append(child_end)
                    if target == 0:
                        transport, flow = await loop.connect_write_pipe(
                            asyncio.streams.FlowControlMixin, os.fdopen(our_end, "wb", buffering=0)
                        )
                        proc.stdin = asyncio.StreamWriter(transport, flow, None, loop)
                    else:
                        reader = asyncio.StreamReader(limit=2**24)
                        protocol = asyncio.StreamReaderProtocol(reader)
                        await loop.connect_read_pipe(
                            _factory(protocol), os.fdopen(our_end, "rb", buffering=0)
                        )
                        if target == 1:
                            proc.stdout = reader
                        else:
                            proc.stderr = reader
                    handed.append(child_end)
                elif spec == asyncio.subprocess.STDOUT and target == 2:
                    handed.append(handed[1])
                elif spec is None or spec == asyncio.subprocess.DEVNULL:
                    fd = os.open(os.devnull, os.O_RDWR)
                    ours.append(fd)
                    handed.append(fd)
                else:
                    handed.append(int(spec))
            handed += list(pass_fds)
            self._procs[rid] = proc
            self.send(
                {"op": "spawn", "id": rid, "argv": argv, "env": env, "cwd": cwd, "tty": tty,
                 "fd_targets": [0, 1, 2, *pass_fds]},
                handed,
            )  # fmt: skip
        finally:
            for fd in ours:
                with contextlib.suppress(OSError):
                    os.close(fd)
        try:
            await proc._started
        except ContainerError:
            self._procs.pop(rid, None)
            raise
        return proc

    def ns_path(self, name: str) -> str:
        assert self._server is not None
        return f"/proc/{self._server.pid}/ns/{name}"

    async def aclose(self) -> None:
        """Stop the container: the server reads end-of-file and exits; as PID 1 it takes every
        process in the container with it; its holder is killed."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        server = self._server
        if server is not None and server.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                server.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait(), 5)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


def _factory(protocol: asyncio.StreamReaderProtocol) -> Callable[[], asyncio.StreamReaderProtocol]:
    return lambda: protocol

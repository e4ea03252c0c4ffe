"""The agent's side of the namespace sandbox: one container per session and view, driven through
its spawn server (``server.py``) over a ``SOCK_SEQPACKET`` socket pair.

``Container.spawn`` hands the server a command and the descriptors it needs (stdin, stdout,
stderr, extras) and returns a ``ContainerProcess``: the part of ``asyncio.subprocess.Process`` the
tools use — ``pid``, ``returncode``, ``wait()``, ``kill()``, ``stdin``/``stdout``/``stderr`` streams.
The agent forks nothing: the server does, from its own small address space.

Robustness: the request travels in a memfd (no message-size limit); a full socket is waited on, not
an error; a spawn that is cancelled, or whose request could not be sent, leaves nothing behind (its
command is killed, its pipes closed); the container is started once even when the first commands
race or are cancelled; and when the server dies, every command in flight ends (SIGKILL status) and
the next spawn builds a new container.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import weakref
from collections.abc import Callable
from typing import Any

from codexbro.sandbox import spare
from codexbro.sandbox.namespaces import View

START_TIMEOUT_S = 20.0
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
        self._transports: list[asyncio.BaseTransport] = []
        loop = asyncio.get_running_loop()
        self._started: asyncio.Future[int] = loop.create_future()
        self._exited: asyncio.Future[int] = loop.create_future()

    def _event(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        if event == "started" and not self._started.done():
            self.pid = int(message.get("pid") or 0)
            self._started.set_result(self.pid)
        elif event in ("exit", "error", "lost"):
            code = os.waitstatus_to_exitcode(int(message["status"])) if event == "exit" else -signal.SIGKILL
            if not self._started.done():
                self._started.set_exception(
                    ContainerError(str(message.get("message") or "the command did not start"))
                )
            if not self._exited.done():
                self.returncode = code
                self._exited.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def kill(self) -> None:
        if self.returncode is None:
            self._container.send_nowait({"op": "kill", "id": self.id})

    def _close_pipes(self) -> None:
        for transport in self._transports:
            transport.close()
        self._transports.clear()

    async def communicate(self, input: bytes | None = None) -> tuple[bytes, bytes]:
        async def feed() -> None:
            if self.stdin is None:
                return
            if input:
                self.stdin.write(input)
                with contextlib.suppress(ConnectionError):
                    await self.stdin.drain()
            self.stdin.close()

        async def read(stream: asyncio.StreamReader | None) -> bytes:
            return await stream.read() if stream is not None else b""

        _fed, out, err = await asyncio.gather(feed(), read(self.stdout), read(self.stderr))
        await self.wait()
        return out, err


class Container:
    """One container: its server process, the control socket, the requests in flight."""

    def __init__(self, view: View, landlock_writable: list[str], landlock_abi: int, owner: str = "") -> None:
        self.view = view
        self._config = {
            "writable": list(view.writable), "protected": list(view.protected),
            "hidden_dirs": list(view.hidden_dirs), "pinned": list(view.pinned),
            "network": view.network, "landlock_writable": landlock_writable, "landlock_abi": landlock_abi,
        }  # fmt: skip
        self.owner = owner
        self._sock: socket.socket | None = None
        self._server: spare.Booted | None = None
        self._reader: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None
        self._procs: dict[str, ContainerProcess] = {}
        # One sender at a time: a full socket makes a sender wait for writability with
        # ``add_writer``, which keeps one callback per descriptor — a second waiter replaced the
        # first's, whose spawn then waited forever (~290 commands started at once hung the turn).
        self._send_lock = asyncio.Lock()
        self.on_idle: Callable[[Container], None] | None = None

    @property
    def running(self) -> int:
        return len(self._procs)

    @property
    def alive(self) -> bool:
        return (
            self._sock is not None
            and self._server is not None
            and self._server.alive
            and self._reader is not None
            and not self._reader.done()
        )

    @property
    def idle(self) -> bool:
        """Nothing runs in it and it is not starting (a start in progress has a spawn waiting)."""
        return self.running == 0 and (self._starting is None or self._starting.done())

    # ---- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the container once; concurrent and cancelled callers share one start."""
        if (
            self.alive
            and self._starting is not None
            and self._starting.done()
            and not self._starting.exception()
        ):
            return
        if self._starting is None or self._starting.done():
            if self._starting is not None or self._server is not None:
                await self._teardown()  # a dead or failed container: start afresh
            self._starting = asyncio.ensure_future(self._start())
            # a start whose callers were all cancelled (a warm-up, a stopped turn) may still fail:
            # its error is the next caller's, never an "exception was never retrieved" on stderr
            self._starting.add_done_callback(_retrieved)
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        # The session's spare server (booted when it opened) if it has one; else one booted now.
        booted = spare.take(self.owner) if self.owner else None
        if booted is None:
            booted = spare.boot()
        self._server = booted
        self._sock = booted.sock
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ready.add_done_callback(_retrieved)  # set by the reader even when this start was cancelled
        self._reader = asyncio.ensure_future(self._read(booted.sock, ready))
        try:
            await self._send({"op": "configure"}, self._config, [])
            await asyncio.wait_for(asyncio.shield(ready), START_TIMEOUT_S)
        except BaseException as exc:
            await self._teardown()
            if isinstance(exc, TimeoutError):
                raise ContainerError("the sandbox container did not start in time") from None
            raise

    async def _read(self, sock: socket.socket, ready: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(sock, 1 << 16)
                if not data:
                    break
                message = json.loads(data)
                event = message.get("event")
                if event == "ready":
                    ready.set_result(None)
                elif event == "failed":
                    ready.set_exception(
                        ContainerError(str(message.get("message") or "container set-up failed"))
                    )
                    break
                elif (proc := self._procs.get(str(message.get("id")))) is not None:
                    proc._event(message)
                    if proc.returncode is not None:
                        self._forget(proc)
        except (OSError, ValueError):
            pass
        finally:
            # The server is gone (or said it failed): end everything in flight.
            if not ready.done():
                ready.set_exception(ContainerError("the sandbox container exited during set-up"))
            for proc in list(self._procs.values()):
                proc._event({"event": "lost", "message": "the sandbox container ended"})
                self._forget(proc)

    def _forget(self, proc: ContainerProcess) -> None:
        self._procs.pop(proc.id, None)
        if not self._procs and self.on_idle is not None:
            self.on_idle(self)

    async def _teardown(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.cancel()  # before the socket closes: its descriptor number may be reused at once
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        self._sock = None
        server, self._server = self._server, None
        if server is not None:
            # Closing our end: the server reads end-of-file and takes the container down; killing
            # the holder (the process we started): PID 1 follows it by its parent-death signal.
            server.kill()
            await server.reaped()
        for proc in list(self._procs.values()):
            proc._event({"event": "lost", "message": "the sandbox container was stopped"})
        self._procs.clear()

    async def aclose(self) -> None:
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done():
            starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
        await self._teardown()

    # ---- requests -------------------------------------------------------------------------------

    def send_nowait(self, message: dict[str, Any]) -> None:
        """A small message that must not wait (kill): dropped if the server is gone."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.send(json.dumps(message).encode())

    async def _send(self, message: dict[str, Any], request: dict[str, Any], fds: list[int]) -> None:
        """``message`` on the socket, ``request`` in a memfd sent as the first descriptor."""
        if self._sock is None:
            raise ContainerError("the sandbox container is not running")
        memfd = os.memfd_create("codexbro-request", os.MFD_CLOEXEC)
        try:
            os.write(memfd, json.dumps(request).encode())
            head = json.dumps(message).encode()
            loop = asyncio.get_running_loop()
            async with self._send_lock:
                while True:
                    if self._sock is None:
                        raise ContainerError("the sandbox container is not running")
                    try:
                        socket.send_fds(self._sock, [head], [memfd, *fds])
                        return
                    except BlockingIOError:
                        fd = self._sock.fileno()
                        writable: asyncio.Future[None] = loop.create_future()
                        loop.add_writer(fd, _resolve, writable)
                        try:
                            await writable
                        finally:
                            loop.remove_writer(fd)
        finally:
            os.close(memfd)

    async def spawn(
        self, argv: list[str], *, cwd: str, env: dict[str, str], tty: bool, stdin: int | None,
        stdout: int | None, stderr: int | None, pass_fds: tuple[int, ...] = (), patch: str | None = None,
    ) -> ContainerProcess:  # fmt: skip
        """``stdin``/``stdout``/``stderr``: a descriptor to hand over, ``asyncio.subprocess.PIPE``,
        ``asyncio.subprocess.STDOUT`` (stderr only) or ``DEVNULL``/None. ``patch``: run the patch
        writer instead of a command."""
        await self.start()
        rid = str(next(_ids))
        proc = ContainerProcess(self, rid)
        handed: list[int] = []
        ours: list[int] = []  # descriptors made here: closed once sent
        sent = False
        try:
            for target, spec in ((0, stdin), (1, stdout), (2, stderr)):
                if spec == asyncio.subprocess.PIPE:
                    handed.append(await _pipe(proc, target, ours))
                elif spec == asyncio.subprocess.STDOUT and target == 2:
                    handed.append(handed[1])
                elif spec is None or spec == asyncio.subprocess.DEVNULL:
                    fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                    ours.append(fd)
                    handed.append(fd)
                else:
                    handed.append(int(spec))
            handed += list(pass_fds)
            request = {"argv": argv, "env": env, "cwd": cwd, "tty": tty, "fd_targets": [0, 1, 2, *pass_fds]}
            if patch is not None:
                request.update(op="patch", patch=patch)
            self._procs[rid] = proc
            await self._send({"op": "spawn", "id": rid}, request, handed)
            sent = True
            await proc._started
            return proc
        except BaseException:
            if sent:
                proc.kill()  # cancelled while starting: it must not run on unobserved
            proc._close_pipes()
            self._procs.pop(rid, None)
            raise
        finally:
            for fd in ours:
                with contextlib.suppress(OSError):
                    os.close(fd)


async def _pipe(proc: ContainerProcess, target: int, ours: list[int]) -> int:
    """A pipe for stdin (0) or stdout/stderr (1, 2): our end wrapped in a stream, theirs returned."""
    loop = asyncio.get_running_loop()
    r, w = os.pipe()
    child_end, our_end = (r, w) if target == 0 else (w, r)
    ours.append(child_end)
    transport: asyncio.BaseTransport
    if target == 0:
        # FlowControlMixin is what asyncio's own subprocess streams use for a write pipe.
        writer, flow = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(our_end, "wb", buffering=0)
        )
        proc.stdin = asyncio.StreamWriter(writer, flow, None, loop)
        transport = writer
    else:
        reader = asyncio.StreamReader(limit=2**24)
        protocol = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop.connect_read_pipe(lambda: protocol, os.fdopen(our_end, "rb", buffering=0))
        if target == 1:
            proc.stdout = reader
        else:
            proc.stderr = reader
    proc._transports.append(transport)
    return child_end


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# ---- the containers of this process -----------------------------------------------------------------

MAX_CONTAINERS = 8
# Keyed by (event loop, owner, view). A loop is named by a serial of its own, never by ``id()``:
# the id of a closed loop is reused by the next one (tests run many loops; the live probes run
# theirs in a thread), and one loop must never touch another's containers or closing tasks.
_CONTAINERS: dict[tuple[int, str, View], Container] = {}
_CLOSING: set[asyncio.Task[None]] = set()
_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()
_serials = itertools.count(1)


def _loop_key() -> int:
    loop = asyncio.get_running_loop()
    key = _LOOPS.get(loop)
    if key is None:
        key = _LOOPS[loop] = next(_serials)
    return key


def _close_soon(container: Container) -> None:
    task = asyncio.ensure_future(container.aclose())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


def container_for(owner: str, view: View, landlock_writable: list[str], landlock_abi: int) -> Container:
    """The container of session ``owner`` for ``view`` (made on first use). A view changes when the
    policy or the protected paths change — a protected directory replaced on the host included (its
    inode is in the view) —, and the session's previous containers are then retired: stopped as soon
    as no command of theirs runs."""
    loop = _loop_key()
    key = (loop, owner, view)
    found = _CONTAINERS.get(key)
    if found is not None:
        return found
    for other in [k for k in _CONTAINERS if k[:2] == (loop, owner)]:
        old = _CONTAINERS.pop(other)
        if old.running == 0:
            _close_soon(old)
        else:
            old.on_idle = _close_soon
    found = _CONTAINERS[key] = Container(view, landlock_writable, landlock_abi, owner)
    for extra in [k for k in _CONTAINERS if k[0] == loop][:-MAX_CONTAINERS]:
        if _CONTAINERS[extra].idle:
            _close_soon(_CONTAINERS.pop(extra))
    return found


def _owned(key_owner: str, owner: str | None) -> bool:
    """A session's containers: its own, and its helpers' (owner ``SESSION/…``, e.g. the shell
    snapshot's capture, which must not retire the session's container by using another view)."""
    return owner is None or key_owner == owner or key_owner.startswith(owner + "/")


async def close_containers(owner: str | None = None) -> None:
    """Stop this event loop's containers — of one session (and its helpers), or all — and what
    still runs in them."""
    loop = _loop_key()
    for key in [k for k in _CONTAINERS if k[0] == loop and _owned(k[1], owner)]:
        await _CONTAINERS.pop(key).aclose()
    here = asyncio.get_running_loop()
    closing = [task for task in _CLOSING if task.get_loop() is here]
    if closing:
        await asyncio.gather(*closing, return_exceptions=True)


def containers_open() -> bool:
    return bool(_CONTAINERS) or bool(_CLOSING)

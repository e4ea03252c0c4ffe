"""Long-lived processes for unified exec (``exec_command`` / ``write_stdin``), session-scoped.

Each process runs in its own process group, on a PTY (``tty=true``: 24×80, stdin open) or on pipes
(stdout and stderr merged, stdin closed). Output accumulates in a bounded capture — up to 1 MiB,
keeping the first half and a rolling tail, counting the middle (``capture.py``) — and each tool
call drains what arrived since the previous one. At most 64 processes live at once; beyond that the least recently used is killed
(exited ones first, the 8 most recent protected), as upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import random
import struct
import termios
import time
from pathlib import Path
from typing import TYPE_CHECKING

from codexbro.tools.capture import Capture, Captured

if TYPE_CHECKING:
    from collections.abc import Callable

    from codexbro.protocol import EventMsg
    from codexbro.sandbox.linux import Prepared
    from codexbro.tools.shell_snapshot import Launch
    from codexbro.tools.spawn import ToolProcess

MAX_PROCESSES = 64
PROTECTED_RECENT = 8


class ExecProcess:
    def __init__(
        self, pid_key: int, argv: list[str], cwd: Path, tty: bool, call_id: str = "",
        emit: Callable[[EventMsg], None] | None = None,
    ) -> None:  # fmt: skip
        self.id = pid_key
        self.argv = argv
        self.cwd = cwd
        self.tty = tty
        self.call_id = call_id  # the exec_command call that started it: its item, start to end
        self.emit = emit
        self.buffer = Capture()  # what the next tool call returns
        self.everything = Capture()  # what the process has printed, for its end event
        self.changed = asyncio.Event()
        self.exit_code: int | None = None
        self.last_used = time.monotonic()
        self.started = time.monotonic()
        self.end_reported = False
        self._proc: ToolProcess | None = None
        self._master: int | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._sandbox: Prepared | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def stdin_open(self) -> bool:
        return self.tty and self._master is not None and self.exit_code is None

    async def start(
        self, env: dict[str, str], sandbox: Prepared | None = None, launch: Launch | None = None
    ) -> None:
        from codexbro.tools.spawn import start_process

        argv, fds = (launch.argv, launch.pass_fds) if launch is not None else (self.argv, ())
        self._sandbox = sandbox
        if self.tty:
            master, slave = pty.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            try:
                self._proc = await start_process(
                    argv, cwd=self.cwd, env=env, sandbox=sandbox, tty=True, stdin=slave, stdout=slave,
                    stderr=slave, pass_fds=fds,
                )  # fmt: skip
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
            self._master = master
            os.set_blocking(master, False)
            self._readers.append(asyncio.ensure_future(self._read_pty(master)))
        else:
            self._proc = await start_process(
                argv, cwd=self.cwd, env=env, sandbox=sandbox, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, pass_fds=fds,
            )  # fmt: skip
            self._readers.append(asyncio.ensure_future(self._read_pipe()))
        self._readers.append(asyncio.ensure_future(self._wait()))

    def _feed(self, data: bytes) -> None:
        self.buffer.add(data)
        self.everything.add(data)
        self.changed.set()

    def aggregated_output(self) -> str:
        return self.everything.result().marked()

    def report_end(self, formatted: str, *, killed: bool = False) -> None:
        """The end event of this process's item (once), under the call that started it."""
        if self.end_reported or self.emit is None:
            return
        self.end_reported = True
        from codexbro.protocol import ExecCommandEnd

        code = self.exit_code if self.exit_code is not None and not killed else -1
        self.emit(
            ExecCommandEnd(
                self.call_id, self.argv, str(self.cwd), code, int((time.monotonic() - self.started) * 1000),
                self.aggregated_output(), formatted, "completed" if code == 0 else "failed",
            )
        )  # fmt: skip

    async def _read_pipe(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while chunk := await self._proc.stdout.read(8192):
            self._feed(chunk)

    async def _read_pty(self, master: int) -> None:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(master, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                try:
                    chunk = os.read(master, 8192)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: the child side closed
                    return
                if not chunk:
                    return
                self._feed(chunk)
        finally:
            loop.remove_reader(master)

    async def _wait(self) -> None:
        from codexbro.tools.spawn import finish_process

        assert self._proc is not None
        code = await self._proc.wait()
        finish_process(self._proc, self._sandbox)
        # Let the readers drain what the process wrote just before exiting.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(asyncio.gather(*self._readers[:-1])), 0.5)
        self.exit_code = code if code >= 0 else 128 - code
        self.changed.set()

    def write(self, data: bytes) -> None:
        if self._master is None:
            raise OSError("stdin is closed")
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._master, view)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            view = view[written:]

    async def collect(self, yield_s: float) -> Captured:
        """Wait until the process exits or ``yield_s`` passes, then drain the buffer."""
        deadline = time.monotonic() + yield_s
        while self.exit_code is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        self.last_used = time.monotonic()
        return self.buffer.drain()

    async def terminate(self) -> None:
        """Kill the process group, reap the child, let the readers hit EOF, release the PTY."""
        if self._proc is not None and self._proc.returncode is None:
            from codexbro.tools.spawn import kill_group

            kill_group(self._proc)
        if self._readers:
            _done, pending = await asyncio.wait(self._readers, timeout=2.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=0.5)
        if self._master is not None:
            with contextlib.suppress(OSError):
                asyncio.get_running_loop().remove_reader(self._master)
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = None


class ExecSessions:
    """The live processes of one session."""

    def __init__(self) -> None:
        self.processes: dict[int, ExecProcess] = {}

    def _new_id(self) -> int:
        while True:
            key = random.randrange(1000, 100_000)
            if key not in self.processes:
                return key

    async def spawn(
        self, argv: list[str], cwd: Path, env: dict[str, str], tty: bool, sandbox: Prepared | None = None,
        call_id: str = "", emit: Callable[[EventMsg], None] | None = None, launch: Launch | None = None,
    ) -> ExecProcess:  # fmt: skip
        """``argv`` as the model sent it (shown, recorded); ``launch``, when given, how it really
        starts (the shell snapshot's rewrite of it, with the descriptors to inherit)."""
        await self._prune()
        proc = ExecProcess(self._new_id(), argv, cwd, tty, call_id, emit)
        await proc.start(env, sandbox, launch)
        self.processes[proc.id] = proc
        return proc

    def get(self, key: int) -> ExecProcess | None:
        return self.processes.get(key)

    def forget(self, key: int) -> None:
        self.processes.pop(key, None)

    async def _prune(self) -> None:
        if len(self.processes) < MAX_PROCESSES:
            return
        by_use = sorted(self.processes.values(), key=lambda p: p.last_used)
        protected = {p.id for p in by_use[-PROTECTED_RECENT:]}
        candidates = [p for p in by_use if p.id not in protected]
        victim = next(
            (p for p in candidates if p.exit_code is not None), candidates[0] if candidates else None
        )
        if victim is not None:
            self.forget(victim.id)
            await victim.terminate()

    async def aclose(self) -> None:
        """End of session: stop every process; one still open gets its end event — its real exit
        status if it had ended on its own, failed (killed) otherwise."""
        procs, self.processes = list(self.processes.values()), {}
        ended = {p.id for p in procs if p.exit_code is not None}
        await asyncio.gather(*(p.terminate() for p in procs))
        for proc in procs:
            proc.report_end(proc.aggregated_output(), killed=proc.id not in ended)

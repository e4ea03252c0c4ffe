"""Run one child process for a tool: own process group, bounded capture, timeout, clean kill.

The child gets its own session (``start_new_session``) so a timeout or an interrupt kills the whole
group — shells, pipelines and anything they started — not just the direct child. Output is read in
8 KiB chunks into a 1 MiB capture per stream (upstream's ``EXEC_OUTPUT_MAX_BYTES``) that keeps the
head *and* the tail with exact counts of the middle (``capture.py``; upstream keeps the head only);
after the child exits, pipes held open by stray background processes are drained for at most 2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from msgspec import Struct

from codexbro.tools.capture import Capture, Captured

if TYPE_CHECKING:
    from codexbro.sandbox.linux import Prepared

READ_CHUNK = 8192
DRAIN_AFTER_EXIT_S = 2.0
TIMEOUT_EXIT_CODE = 124

OnOutput = Callable[[str, bytes], None]


class ExecResult(Struct, frozen=True):
    """A finished command: exit code, captured output, timing, whether the sandbox denied it."""

    exit_code: int
    stdout: bytes  # head and tail (the middle of a huge output left out)
    stderr: bytes
    captured: Captured  # stdout and stderr as they interleaved
    duration_s: float
    timed_out: bool


class ToolProcess(Protocol):
    """What tools use of a process: ``asyncio.subprocess.Process`` or a ``ContainerProcess``."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    stdin: asyncio.StreamWriter | None
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None

    async def wait(self) -> int: ...

    async def communicate(self, input: bytes | None = None) -> tuple[bytes, bytes]: ...


async def start_process(
    argv: list[str], *, cwd: Path, env: dict[str, str], sandbox: Prepared | None, tty: bool = False,
    pass_fds: tuple[int, ...] = (), stdin: Any = None, stdout: Any = None, stderr: Any = None,
    helpers: bool = True,
) -> ToolProcess:  # fmt: skip
    """Every tool process starts here: in its own session and process group, inside ``sandbox``
    when given — started by the namespace container, or registered with the reaper — so it dies
    with the agent. Pair with ``finish_process``."""
    from codexbro.sandbox import reaper
    from codexbro.sandbox.linux import spawn_args
    from codexbro.tools.helpers import with_helpers

    if helpers:
        argv, env = with_helpers(argv, env)
    if sandbox is not None and sandbox.container is not None:
        _check_startable(argv, cwd, env)  # fail as an unsandboxed spawn would, not inside the box
        try:
            proc = await sandbox.container.spawn(
                argv, cwd=str(cwd), env={**env, **sandbox.env}, tty=tty, stdin=stdin, stdout=stdout,
                stderr=stderr, pass_fds=pass_fds,
            )  # fmt: skip
        except BaseException:
            sandbox.release()
            raise
        sandbox.started()
        return cast(ToolProcess, proc)
    spawn = spawn_args(sandbox, argv, env, str(cwd), tty)
    try:
        aproc = await asyncio.create_subprocess_exec(
            *spawn.argv, cwd=str(cwd), env=spawn.env, start_new_session=True, preexec_fn=spawn.preexec,
            pass_fds=(*pass_fds, *spawn.pass_fds), stdin=stdin, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    except BaseException:
        if sandbox is not None:
            sandbox.release()
        raise
    if sandbox is not None:
        sandbox.started()
    reaper.register(aproc.pid)
    return cast(ToolProcess, aproc)


def _check_startable(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    if not os.path.isdir(cwd):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(cwd))
    program = argv[0] if argv else ""
    found = os.access(program, os.X_OK) if "/" in program else shutil.which(program, path=env.get("PATH"))
    if not found:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", program)


def finish_process(proc: ToolProcess, sandbox: Prepared | None) -> None:
    """After the process was reaped: the reaper forgets its group, the sandbox is released."""
    from codexbro.sandbox import reaper

    if isinstance(proc, asyncio.subprocess.Process):
        reaper.release(proc.pid)
    if sandbox is not None:
        sandbox.release()


def kill_group(proc: ToolProcess) -> None:
    """SIGKILL the command and everything in its process group (in the container: its PID
    namespace too)."""
    if isinstance(proc, asyncio.subprocess.Process):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()  # type: ignore[attr-defined]


async def run_process(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout_s: float | None,
    on_output: OnOutput | None = None,
    sandbox: Prepared | None = None,
    pass_fds: tuple[int, ...] = (),
) -> ExecResult:
    """Spawn ``argv`` (inside ``sandbox`` when given) and wait for it. Raises ``OSError`` when it
    cannot start (caller reports it). On cancellation the process group is killed first.
    """
    started = time.monotonic()
    proc = await start_process(
        argv, cwd=cwd, env=env, sandbox=sandbox, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, pass_fds=pass_fds,
    )  # fmt: skip
    stdout, stderr, aggregated = Capture(), Capture(), Capture()

    async def pump(stream: asyncio.StreamReader | None, name: str, sink: Capture) -> None:
        if stream is None:
            return
        while chunk := await stream.read(READ_CHUNK):
            sink.add(chunk)
            aggregated.add(chunk)
            if on_output is not None:
                on_output(name, chunk)

    readers = [
        asyncio.ensure_future(pump(proc.stdout, "stdout", stdout)),
        asyncio.ensure_future(pump(proc.stderr, "stderr", stderr)),
    ]
    timed_out = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            timed_out = True
            kill_group(proc)
            await proc.wait()
        # The child is gone; give stray holders of its pipes a short grace, then cut them off.
        _done, pending = await asyncio.wait(readers, timeout=DRAIN_AFTER_EXIT_S)
        if pending:
            kill_group(proc)
            await asyncio.wait(pending, timeout=0.5)
    except BaseException:
        kill_group(proc)
        for reader in readers:
            reader.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(proc.wait(), 1.0)
        raise
    finally:
        for reader in readers:
            if not reader.done():
                reader.cancel()
        if proc.returncode is not None:
            finish_process(proc, sandbox)
    code = proc.returncode if proc.returncode is not None else -1
    if timed_out:
        code = TIMEOUT_EXIT_CODE
    elif code < 0:
        code = 128 - code  # killed by signal N → 128+N, as a shell reports it
    return ExecResult(
        code, bytes(stdout.head + stdout.tail), bytes(stderr.head + stderr.tail), aggregated.result(),
        time.monotonic() - started, timed_out,
    )  # fmt: skip

"""``exec_command`` and ``write_stdin`` (unified exec, as upstream).

``exec_command`` starts a process and waits up to ``yield_time_ms`` (250–30 000 ms, default 10 000);
if it is still running the answer carries a session id for ``write_stdin``, which sends characters
(PTY sessions only) and/or polls for more output. Answers:

    Chunk ID: 1a2b3c
    Wall time: 0.5012 seconds
    Process exited with code 0            (or: Process running with session ID 4242)
    Original token count: 3
    Output:
    ...
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING

from codexbro.protocol import ExecCommandBegin
from codexbro.tools.base import (
    FunctionTool,
    RespondToModel,
    ToolCall,
    ToolContext,
    ToolOutput,
    function_spec,
    int_arg,
)
from codexbro.tools.capture import Captured
from codexbro.tools.exec_env import build_env, user_shell
from codexbro.tools.exec_sessions import ExecProcess, ExecSessions
from codexbro.tools.handlers.apply_patch import apply_patch_text
from codexbro.tools.handlers.shell import restored
from codexbro.tools.output import formatted_truncate_text, total_tokens

if TYPE_CHECKING:
    from codexbro.tools.shell_snapshot import ShellSnapshot

MIN_YIELD_MS, MAX_YIELD_MS, DEFAULT_YIELD_MS = 250, 30_000, 10_000
WRITE_DEFAULT_YIELD_MS, MIN_EMPTY_YIELD_MS, MAX_EMPTY_YIELD_MS = 250, 5_000, 300_000
DEFAULT_MAX_OUTPUT_TOKENS = 10_000

UNIFIED_ENV = {
    "NO_COLOR": "1", "TERM": "dumb", "LANG": "C.UTF-8", "LC_CTYPE": "C.UTF-8", "LC_ALL": "C.UTF-8",
    "COLORTERM": "", "PAGER": "cat", "GIT_PAGER": "cat", "GH_PAGER": "cat", "CODEX_CI": "1",
}  # fmt: skip

EXEC_COMMAND = function_spec(
    "exec_command",
    "Runs a command (in a PTY when `tty` is true) and returns its output, or a session ID to keep "
    "interacting with it through write_stdin when it is still running after `yield_time_ms`.",
    {
        "cmd": {"type": "string", "description": "The shell command to run."},
        "workdir": {"type": "string", "description": "Directory to run in (defaults to the session cwd)."},
        "shell": {"type": "string", "description": "Shell binary to use (defaults to the user's shell)."},
        "login": {"type": "boolean", "description": "Run as a login shell (default true)."},
        "tty": {
            "type": "boolean",
            "description": "Allocate a terminal so the process can read stdin (default false).",
        },
        "yield_time_ms": {
            "type": "number",
            "description": "How long to wait for output before answering (default 10000).",
        },
        "max_output_tokens": {
            "type": "number",
            "description": "Cap on returned output tokens (default 10000).",
        },
        "sandbox_permissions": {
            "type": "string",
            "enum": ["use_default", "require_escalated"],
            "description": 'Use "require_escalated" to ask to run outside the sandbox (needs approval).',
        },
        "justification": {
            "type": "string",
            "description": "With require_escalated only: a question for the user.",
        },
        "prefix_rule": {
            "type": "array",
            "items": {"type": "string"},
            "description": "With require_escalated only: a reusable command prefix to approve.",
        },
    },
    ["cmd"],
)

WRITE_STDIN = function_spec(
    "write_stdin",
    "Writes characters to a running exec_command session (empty `chars` just polls) and returns new output.",
    {
        "session_id": {"type": "number", "description": "The session ID from exec_command."},
        "chars": {"type": "string", "description": "Characters to write; may be empty to poll."},
        "yield_time_ms": {"type": "number", "description": "How long to wait for output before answering."},
        "max_output_tokens": {
            "type": "number",
            "description": "Cap on returned output tokens (default 10000).",
        },
    },
    ["session_id"],
)


def format_chunk(proc: ExecProcess | None, captured: Captured, seconds: float, max_tokens: int,
                 exit_code: int | None = None) -> str:  # fmt: skip
    lines = [f"Chunk ID: {secrets.token_hex(3)}", f"Wall time: {seconds:.4f} seconds"]
    code = exit_code if exit_code is not None else (proc.exit_code if proc else None)
    if code is not None:
        lines.append(f"Process exited with code {code}")
    elif proc is not None:
        lines.append(f"Process running with session ID {proc.id}")
    lines.append(f"Original token count: {total_tokens(captured)}")
    lines.append("Output:")
    lines.append(formatted_truncate_text(captured, "tokens", max_tokens))
    return "\n".join(lines)


def _finish(proc: ExecProcess, sessions: ExecSessions, text: str) -> None:
    """Once the process has exited: its item ends (under the exec_command call that started it,
    with everything it printed), whichever call noticed the exit."""
    if proc.exit_code is not None:
        sessions.forget(proc.id)
        proc.report_end(text)


class ExecCommandHandler(FunctionTool):
    """``exec_command``: starts a process (a PTY if asked) and returns what it printed so far."""

    name = "exec_command"
    SPEC = EXEC_COMMAND

    def __init__(self, sessions: ExecSessions | None, snapshot: ShellSnapshot | None = None) -> None:
        self.sessions = sessions or ExecSessions()
        self.snapshot = snapshot  # restores the login environment in place of `SHELL -lc`

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        args = self.args(call)
        cwd = ctx.resolve_path(args.get("workdir"))
        if not cwd.is_dir():
            raise RespondToModel(f"workdir {cwd} does not exist or is not a directory")
        shell = args.get("shell") or user_shell()
        argv = [shell, "-c" if args.get("login") is False else "-lc", args["cmd"]]
        yield_ms = min(max(int_arg(args, "yield_time_ms", DEFAULT_YIELD_MS), MIN_YIELD_MS), MAX_YIELD_MS)
        max_tokens = (
            int_arg(args, "max_output_tokens", DEFAULT_MAX_OUTPUT_TOKENS) or DEFAULT_MAX_OUTPUT_TOKENS
        )
        from codexbro.apply_patch.invocation import NotExplicit, maybe_shell_patch

        try:
            shell_patch = maybe_shell_patch(argv)
        except NotExplicit as exc:
            raise RespondToModel(str(exc)) from None
        if shell_patch is not None:
            where = cwd / shell_patch.cd if shell_patch.cd else cwd
            patched = await apply_patch_text(shell_patch.patch, where, call.call_id, ctx)
            return ToolOutput(f"Wall time: {patched.seconds:.4f} seconds\nOutput:\n{patched.output}",
                              success=patched.exit_code == 0)  # fmt: skip

        from codexbro.tools.exec_gate import gate_command, sandbox_for

        sandboxed = await gate_command(
            ctx, call.call_id, argv, cwd, escalate=args.get("sandbox_permissions") == "require_escalated",
            justification=args.get("justification"), prefix_rule=args.get("prefix_rule"),
            tool=self.name,
        )  # fmt: skip
        launch = await restored(self.snapshot, argv, {**build_env(ctx.env_policy), **UNIFIED_ENV}, ctx)
        started = time.monotonic()
        try:
            proc = await self.sessions.spawn(
                argv, cwd, launch.env, bool(args.get("tty")), await sandbox_for(ctx, sandboxed), call.call_id,
                ctx.emit, launch=launch,
            )  # fmt: skip
        except OSError as exc:
            raise RespondToModel(f"failed to start {shell!r}: {exc.strerror or exc}") from None
        ctx.emit(ExecCommandBegin(call.call_id, argv, str(cwd)))
        try:
            captured = await proc.collect(yield_ms / 1000)
        except asyncio.CancelledError:
            self.sessions.forget(proc.id)  # an interrupted turn takes its processes with it
            await asyncio.shield(proc.terminate())
            raise
        text = format_chunk(proc, captured, time.monotonic() - started, max_tokens)
        _finish(proc, self.sessions, captured.marked())
        return ToolOutput(text, success=proc.exit_code in (None, 0))


class WriteStdinHandler(FunctionTool):
    """``write_stdin``: writes to a running process and returns what it printed since."""

    name = "write_stdin"
    supports_parallel = False
    SPEC = WRITE_STDIN

    def __init__(self, sessions: ExecSessions | None) -> None:
        self.sessions = sessions or ExecSessions()

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        args = self.args(call)
        key = int_arg(args, "session_id", 0)
        proc = self.sessions.get(key)
        if proc is None:
            raise RespondToModel(f"write_stdin failed: Unknown process id {key}")
        chars = args.get("chars") or ""
        max_tokens = (
            int_arg(args, "max_output_tokens", DEFAULT_MAX_OUTPUT_TOKENS) or DEFAULT_MAX_OUTPUT_TOKENS
        )
        started = time.monotonic()
        if chars:
            if not proc.stdin_open:
                raise RespondToModel(
                    "stdin is closed for this session; rerun exec_command with tty=true to keep stdin open"
                )
            proc.write(chars.encode("utf-8"))
            await asyncio.sleep(0.1)
            yield_ms = min(
                max(int_arg(args, "yield_time_ms", WRITE_DEFAULT_YIELD_MS), MIN_YIELD_MS), MAX_YIELD_MS
            )
        else:
            yield_ms = min(
                max(int_arg(args, "yield_time_ms", MIN_EMPTY_YIELD_MS), MIN_EMPTY_YIELD_MS),
                MAX_EMPTY_YIELD_MS,
            )
        try:
            captured = await proc.collect(yield_ms / 1000)
        except asyncio.CancelledError:
            self.sessions.forget(proc.id)
            await asyncio.shield(proc.terminate())
            raise
        text = format_chunk(proc, captured, time.monotonic() - started, max_tokens)
        _finish(proc, self.sessions, captured.marked())
        return ToolOutput(text, success=proc.exit_code in (None, 0))

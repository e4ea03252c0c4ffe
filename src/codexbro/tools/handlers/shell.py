"""The classic shell tools: ``shell`` (argv array), ``shell_command`` (script string) and
``local_shell`` (Responses ``local_shell_call`` items). Schemas and output formats follow upstream;
descriptions are our own.

Every command goes through ``tools/exec_gate.py`` (policy, approval, sandbox) and starts in
``tools/spawn.py``; an escalation request is refused when the approval policy is ``never``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from codexbro.protocol import ExecCommandBegin, ExecCommandEnd, ExecCommandOutputDelta
from codexbro.tools.base import (
    RespondToModel,
    ToolCall,
    ToolContext,
    ToolOutput,
    function_spec,
    parse_arguments,
)
from codexbro.tools.exec_env import build_env, user_shell
from codexbro.tools.output import exec_output_freeform, exec_output_structured

if TYPE_CHECKING:
    from codexbro.tools.shell_snapshot import Launch, ShellSnapshot
    from codexbro.tools.spawn import ExecResult

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS = 10_000
MAX_DELTA_EVENTS = 10_000

_COMMON: dict[str, Any] = {
    "workdir": {"type": "string", "description": "Directory to run in (defaults to the session cwd)."},
    "timeout_ms": {"type": "number", "description": "Kill the command after this many milliseconds."},
    "sandbox_permissions": {
        "type": "string",
        "description": 'Use "require_escalated" to ask to run outside the sandbox (needs approval); '
        'defaults to "use_default".',
    },
    "justification": {
        "type": "string",
        "description": "With require_escalated only: one short question the user answers to approve.",
    },
    "prefix_rule": {
        "type": "array",
        "items": {"type": "string"},
        "description": "With require_escalated only: a command prefix the user may approve for later calls.",
    },
}


async def restored(snapshot: ShellSnapshot | None, argv: list[str], env: dict[str, str], ctx: ToolContext
                   ) -> Launch:  # fmt: skip
    """How to start ``argv``: with the session's shell snapshot in place of a login shell when
    there is one (the first command after a failed capture says why there is none)."""
    from codexbro.tools.shell_snapshot import Launch

    if snapshot is None:
        return Launch(argv, env)
    launch = await snapshot.launch(argv, env)
    note = snapshot.take_note()
    if note is not None:
        from codexbro.protocol import WarningEvent

        ctx.emit(WarningEvent(note))
    return launch


class _ShellBase:
    supports_parallel = True
    name = ""

    def __init__(self, snapshot: ShellSnapshot | None = None) -> None:
        self.snapshot = snapshot  # restores the login environment in place of `SHELL -lc`

    async def _run(
        self,
        argv: list[str],
        call: ToolCall,
        ctx: ToolContext,
        *,
        workdir: str | None,
        timeout_ms: Any,
        escalate: Any,
        structured: bool,
        justification: str | None = None,
        prefix_rule: list[str] | None = None,
    ) -> ToolOutput:
        if escalate not in (None, "use_default", "require_escalated"):
            raise RespondToModel(
                f'`sandbox_permissions` must be "use_default" or "require_escalated", got {escalate!r}'
            )
        if not argv or not all(isinstance(a, str) for a in argv) or not argv[0]:
            raise RespondToModel("`command` must be a non-empty array of strings")
        cwd = ctx.resolve_path(workdir)
        if not cwd.is_dir():
            raise RespondToModel(f"workdir {cwd} does not exist or is not a directory")
        timeout = DEFAULT_TIMEOUT_MS if timeout_ms is None else timeout_ms
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise RespondToModel(f"`timeout_ms` must be a positive number, got {timeout_ms!r}")

        from codexbro.apply_patch.invocation import NotExplicit, maybe_shell_patch

        try:
            shell_patch = maybe_shell_patch(argv)
        except NotExplicit as exc:
            raise RespondToModel(str(exc)) from None
        if shell_patch is not None:
            # The runtime applies the patch itself, with the same checks as the apply_patch tool.
            from codexbro.tools.handlers.apply_patch import apply_patch_text

            log.info("apply_patch was requested through %s; applying it directly", self.name)
            where = ctx.resolve_path(str(cwd / shell_patch.cd)) if shell_patch.cd else cwd
            patched = await apply_patch_text(shell_patch.patch, where, call.call_id, ctx)
            fmt = exec_output_structured if structured else exec_output_freeform
            text = fmt(
                patched.output, patched.exit_code, patched.seconds, ctx.truncation_mode, ctx.truncation_limit
            )
            return ToolOutput(text, success=patched.exit_code == 0)

        from codexbro.sandbox.linux import is_likely_denied
        from codexbro.tools.exec_gate import denial_note, gate_command, offer_retry, sandbox_for

        sandboxed = await gate_command(
            ctx, call.call_id, argv, cwd, escalate=escalate == "require_escalated",
            justification=justification, prefix_rule=prefix_rule, tool=self.name,
        )  # fmt: skip
        launch = await restored(self.snapshot, argv, build_env(ctx.env_policy), ctx)
        ctx.emit(ExecCommandBegin(call.call_id, argv, str(cwd)))
        deltas = 0

        def on_output(stream: str, chunk: bytes) -> None:
            nonlocal deltas
            if deltas < MAX_DELTA_EVENTS:
                deltas += 1
                ctx.emit(ExecCommandOutputDelta(call.call_id, stream, chunk.decode("utf-8", "replace")))

        from codexbro.tools.spawn import run_process

        async def spawn(inside: bool) -> ExecResult:
            try:
                return await run_process(
                    launch.argv, cwd=cwd, env=launch.env, timeout_s=timeout / 1000, on_output=on_output,
                    sandbox=await sandbox_for(ctx, inside), pass_fds=launch.pass_fds,
                )  # fmt: skip
            except OSError as exc:
                message = f"failed to start {argv[0]!r}: {exc.strerror or exc}"
                ctx.emit(ExecCommandEnd(call.call_id, argv, str(cwd), -1, 0, message, message, "failed"))
                raise RespondToModel(message) from None
            except RespondToModel as exc:
                ctx.emit(ExecCommandEnd(call.call_id, argv, str(cwd), -1, 0, str(exc), str(exc), "declined"))
                raise

        result = await spawn(sandboxed)
        denied = sandboxed and is_likely_denied(result.exit_code, result.captured.text)
        if denied and await offer_retry(ctx, call.call_id, argv, cwd):
            result = await spawn(False)
            denied = False
        captured = result.captured
        if result.timed_out:
            captured = captured.with_prefix(f"command timed out after {int(timeout)} milliseconds\n")
        text = captured.marked()
        fmt = exec_output_structured if structured else exec_output_freeform
        formatted = fmt(
            captured, result.exit_code, result.duration_s, ctx.truncation_mode, ctx.truncation_limit
        )
        if denied:
            formatted += denial_note(ctx)
        ctx.emit(
            ExecCommandEnd(
                call.call_id,
                argv,
                str(cwd),
                result.exit_code,
                int(result.duration_s * 1000),
                text,
                formatted,
                "completed" if result.exit_code == 0 else "failed",
                sandbox_denied=denied,
            )
        )
        return ToolOutput(formatted, success=result.exit_code == 0)


class ShellHandler(_ShellBase):
    """``shell``: argv array, executed directly (the model adds ``bash -lc`` itself)."""

    name = "shell"
    _schema = function_spec(
        "shell",
        "Runs a command and returns its output. `command` is an argv array; for shell syntax pass "
        '["bash", "-lc", "<script>"]. Set `workdir` rather than using `cd`.',
        {
            "command": {"type": "array", "items": {"type": "string"}, "description": "The argv to execute."},
            **_COMMON,
        },
        ["command"],
    )

    def spec(self) -> dict[str, Any]:
        return self._schema

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        if call.kind == "local_shell":
            action = call.action
            return await self._run(
                list(action.get("command") or []),
                call,
                ctx,
                workdir=action.get("working_directory"),
                timeout_ms=action.get("timeout_ms"),
                escalate=None,
                structured=True,
            )
        if call.kind != "function":
            raise RespondToModel(f"unsupported payload for shell handler: {call.name}")
        args = parse_arguments(call, self._schema["parameters"])
        return await self._run(
            args["command"],
            call,
            ctx,
            workdir=args.get("workdir"),
            timeout_ms=args.get("timeout_ms"),
            escalate=args.get("sandbox_permissions"),
            structured=True,
            justification=args.get("justification"),
            prefix_rule=args.get("prefix_rule"),
        )


class LocalShellHandler(ShellHandler):
    """``local_shell``: the Responses built-in tool; calls arrive as ``local_shell_call`` items."""

    name = "local_shell"

    def spec(self) -> dict[str, Any]:
        return {"type": "local_shell"}


class ShellCommandHandler(_ShellBase):
    """``shell_command``: a script string run by the user's shell (login shell by default)."""

    name = "shell_command"
    _schema = function_spec(
        "shell_command",
        "Runs a shell script in the user's default shell and returns its output. Set `workdir` "
        "rather than using `cd`.",
        {
            "command": {"type": "string", "description": "The script to run."},
            "login": {
                "type": "boolean",
                "description": "Run as a login shell (default true), loading the user's profile.",
            },
            **_COMMON,
        },
        ["command"],
    )

    def spec(self) -> dict[str, Any]:
        return self._schema

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        if call.kind != "function":
            raise RespondToModel(f"unsupported payload for shell handler: {call.name}")
        args = parse_arguments(call, self._schema["parameters"])
        shell = user_shell()
        login = args.get("login")
        argv = [shell, "-c" if login is False else "-lc", args["command"]]
        return await self._run(
            argv,
            call,
            ctx,
            workdir=args.get("workdir"),
            timeout_ms=args.get("timeout_ms"),
            escalate=args.get("sandbox_permissions"),
            structured=False,
            justification=args.get("justification"),
            prefix_rule=args.get("prefix_rule"),
        )

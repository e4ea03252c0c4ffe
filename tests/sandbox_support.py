"""Shared helpers for the sandbox tests: which backends work here (with the reason when not), a tool
context for a policy, and calls through the real tool router."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from codexbro.config.types import SandboxWorkspaceWrite, ShellEnvironmentPolicy
from codexbro.sandbox.linux import BACKENDS
from codexbro.sandbox.policy import spec_for
from codexbro.sandbox.probes import ProbeResult, backend_report
from codexbro.tools.base import ToolCall, ToolContext
from codexbro.tools.exec_sessions import ExecSessions
from codexbro.tools.handlers.apply_patch import ApplyPatchHandler
from codexbro.tools.handlers.edit_file import EditFileHandler
from codexbro.tools.handlers.shell import ShellCommandHandler, ShellHandler
from codexbro.tools.handlers.unified_exec import ExecCommandHandler, WriteStdinHandler
from codexbro.tools.router import ToolRouter

REPORTS: dict[str, ProbeResult] = {b: backend_report(b) for b in BACKENDS}
WORKING = [b for b in BACKENDS if REPORTS[b].ok]
FULL = "danger-full-access"
RESTRICTED = ("read-only", "workspace-write")
IS_ROOT = os.getuid() == 0


def backend_params(*, require: str | None = None) -> list[Any]:
    """One param per backend; a backend that does not work here (or lacks ``require``) is skipped
    with its probe's reason."""
    params = []
    for name in BACKENDS:
        report = REPORTS[name]
        reason = None
        if not report.ok:
            reason = f"{name} sandbox unavailable here: {report.detail}"
        elif require is not None and report.enforced().get(require) is not True:
            reason = f"the {name} backend does not enforce {require} (documented; see sandbox doctor)"
        params.append(pytest.param(name, marks=pytest.mark.skipif(reason is not None, reason=reason or "")))
    return params


def policy_params(*, require: str | None = None) -> list[Any]:
    """(mode, backend) pairs: every restricted mode under every backend, plus the full-access
    control that must show the attempt itself works."""
    params = [pytest.param(FULL, "none", id="control-full-access")]
    for mode in RESTRICTED:
        for backend in backend_params(require=require):
            params.append(
                pytest.param(mode, *backend.values, marks=backend.marks, id=f"{mode}-{backend.values[0]}")
            )
    return params


def ctx_for(
    mode: str, ws: Path, backend: str, *, network: bool = False, approval: str = "never", home: Path | None = None,
    roots: tuple[str, ...] = (),
) -> ToolContext:  # fmt: skip
    sww = SandboxWorkspaceWrite(
        writable_roots=roots, network_access=network, exclude_slash_tmp=True, exclude_tmpdir_env_var=True
    )
    return ToolContext(
        cwd=ws, turn_id="t", sandbox_mode=mode, approval_policy=approval, sandbox_workspace_write=sww,
        env_policy=ShellEnvironmentPolicy(), sandbox=spec_for(mode, sww, ws, home),
        sandbox_backend=backend if backend != "none" else "auto", home=home,
    )  # fmt: skip


_ROUTERS: dict[int, ToolRouter] = {}


def router() -> ToolRouter:
    """One router (and unified-exec process table) per event loop: pytest gives each test its own."""
    loop = id(asyncio.get_running_loop())
    if loop not in _ROUTERS:
        sessions = ExecSessions()
        _ROUTERS[loop] = ToolRouter(
            [ShellCommandHandler(), ShellHandler(), ApplyPatchHandler("freeform"), EditFileHandler(),
             ExecCommandHandler(sessions), WriteStdinHandler(sessions)]
        )  # fmt: skip
    return _ROUTERS[loop]


async def sh(ctx: ToolContext, script: str) -> tuple[int, str]:
    """Run ``script`` through the shell_command tool; (exit code, whole tool output)."""
    call = ToolCall(
        "c", "shell_command", "function", arguments=json.dumps({"command": script, "login": False})
    )
    out = str((await router().dispatch(call, ctx)).output.content)
    first = out.split("\n", 1)[0]
    code = int(first.removeprefix("Exit code: ")) if first.startswith("Exit code: ") else -1
    return code, out


async def patch(ctx: ToolContext, text: str) -> str:
    """Apply a patch through the apply_patch tool (freeform); the tool output."""
    call = ToolCall("p", "apply_patch", "custom", input=text)
    return str((await router().dispatch(call, ctx)).output.content)


async def tool(ctx: ToolContext, name: str, args: dict[str, Any]) -> str:
    call = ToolCall("x", name, "function", arguments=json.dumps(args))
    return str((await router().dispatch(call, ctx)).output.content)


def blocked(mode: str) -> bool:
    return mode != FULL


async def end_session() -> None:
    """What a session's close does for the sandbox: stop containers, remove placeholders."""
    from codexbro.sandbox import container, placeholders

    await container.close_containers()
    placeholders.sweep()

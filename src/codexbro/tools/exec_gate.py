"""The gate every command-running tool passes through: policy decision, approval, sandbox.

``gate_command`` answers "run sandboxed", "run unsandboxed" (approved escalation) or raises
``RespondToModel`` with the reason the command was refused. ``sandbox_for`` turns that into a
prepared sandbox for the spawn. ``offer_retry`` asks, after a likely sandbox denial, whether to run
the command again outside the sandbox (only under ``on-failure`` / ``untrusted``, as upstream).
"""

from __future__ import annotations

from pathlib import Path

from codexbro.protocol import ExecApprovalRequest, ToolDecision, WarningEvent
from codexbro.records import replace
from codexbro.sandbox.exec_policy import ApprovalStore, append_rule, decide, proposed_prefix
from codexbro.sandbox.linux import Prepared, SandboxUnavailable, prepare
from codexbro.tools.base import RespondToModel, ToolContext
from codexbro.tools.exec_env import build_env

APPROVED = ("approved", "approved_for_session", "approved_for_workspace")


async def ask(
    ctx: ToolContext, call_id: str, argv: list[str], cwd: Path, reason: str, prefix: list[str]
) -> bool:
    """Ask the user; True when approved. Remembers session/workspace approvals."""
    if ctx.request_approval is None:
        raise RespondToModel(
            f"this command needs approval ({reason}), and nobody can approve it in this session "
            f"(approval policy: {ctx.approval_policy})"
        )
    decision = await ctx.request_approval(
        ExecApprovalRequest(call_id, ctx.turn_id, argv, str(cwd), reason, prefix)
    )
    if decision not in APPROVED:
        raise RespondToModel("exec command rejected by user")
    if decision in ("approved_for_session", "approved_for_workspace") and ctx.approvals is not None:
        ctx.approvals.add(prefix, ctx.cwd)
    if decision == "approved_for_workspace" and ctx.home is not None:
        append_rule(ctx.home, prefix, ctx.cwd.resolve(), "approved by the user")
    return True


def writable_program(argv: list[str], ctx: ToolContext) -> Path | None:
    """The file ``argv[0]`` runs, when it lies inside a writable root of the turn's sandbox."""
    import os
    import shutil

    from codexbro.sandbox.policy import physical, writable_roots

    if not argv:
        return None
    env_path = build_env(ctx.env_policy).get("PATH", os.defpath)
    found = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env_path)
    if found is None:
        return None
    program = physical(Path(ctx.cwd, found))
    roots = writable_roots("workspace-write", ctx.sandbox_workspace_write, ctx.cwd)
    return program if any(program == r or r in program.parents for r in roots) else None


async def gate_command(
    ctx: ToolContext, call_id: str, argv: list[str], cwd: Path, *, escalate: bool,
    justification: str | None = None, prefix_rule: list[str] | None = None, tool: str = "shell",
) -> bool:  # fmt: skip
    """Returns whether the command must run inside the sandbox."""
    decision = decide(
        argv, cwd=cwd, approval=ctx.approval_policy, mode=ctx.sandbox_mode, escalate=escalate,
        rules=list(ctx.rules), store=ctx.approvals or ApprovalStore(),
    )  # fmt: skip
    planted = writable_program(argv, ctx) if not decision.sandboxed and ctx.sandbox is not None else None
    if planted is not None and decision.verdict != "reject":
        # What runs outside the sandbox is a file sandboxed commands can change: never on a rule or
        # an earlier "for the session", and the question says which file it is.
        note = f"`{argv[0]}` is {planted}, inside a writable root: a file sandboxed commands can change"
        reason = f"{decision.reason} — {note}" if decision.verdict == "ask" and decision.reason else note
        decision = replace(decision, verdict="ask", reason=reason)
        justification = f"{justification} ({note})" if justification else None
    sandboxed = decision.sandboxed and ctx.sandbox is not None
    backend = ctx.sandbox_backend if sandboxed else "none"
    if decision.verdict == "reject":
        ctx.emit(ToolDecision(call_id, tool, "reject", backend, None, decision.reason))
        raise RespondToModel(decision.reason)
    approval = None
    if decision.verdict == "ask":
        try:
            await ask(
                ctx, call_id, argv, cwd, justification or decision.reason, proposed_prefix(argv, prefix_rule)
            )
            approval = "approved"
        except RespondToModel:
            ctx.emit(ToolDecision(call_id, tool, "ask", backend, "denied", decision.reason))
            raise
    if sandboxed and backend == "auto":
        import asyncio

        from codexbro.sandbox.linux import SandboxUnavailable, choose_backend

        try:
            backend = await asyncio.to_thread(choose_backend, ctx.home)
        except SandboxUnavailable:
            backend = "unavailable"
    ctx.emit(
        ToolDecision(
            call_id, tool, decision.verdict, backend, approval, decision.reason or "policy allows it"
        )
    )
    return sandboxed


async def sandbox_for(ctx: ToolContext, sandboxed: bool) -> Prepared | None:
    """The prepared sandbox for one spawn (None when it runs unsandboxed). The first time a
    backend is used in this process, a warning says what it does not enforce, if anything. The
    live probes behind the choice run in a thread: the event loop never waits on them."""
    if not sandboxed or ctx.sandbox is None:
        return None
    import asyncio

    from codexbro.sandbox.linux import choose_backend
    from codexbro.sandbox.probes import backend_report

    backend = ctx.sandbox_backend
    try:
        if backend == "auto":
            backend = await asyncio.to_thread(choose_backend, ctx.home)
        # a live probe once per process, or its verdict kept in the home for this machine
        report = await asyncio.to_thread(backend_report, backend, ctx.home)
        prepared = prepare(ctx.sandbox, backend)
    except (SandboxUnavailable, OSError) as exc:
        raise RespondToModel(f"sandbox unavailable, command not run: {exc}") from None
    if not report.ok:
        prepared.release()
        raise RespondToModel(
            f"sandbox unavailable, command not run: the {prepared.backend} sandbox fails its check "
            f"({report.detail}); run `codexbro sandbox doctor`"
        )
    if prepared.backend not in _NOTED:
        _NOTED.add(prepared.backend)
        missing = report.not_enforced()
        if missing:
            ctx.emit(
                WarningEvent(
                    f"sandbox ({prepared.backend}) does not enforce: {', '.join(missing)} — "
                    "see `codexbro sandbox doctor`"
                )
            )
    return prepared


_NOTED: set[str] = set()


async def offer_retry(ctx: ToolContext, call_id: str, argv: list[str], cwd: Path) -> bool:
    """After a sandbox denial: True when the user approved running it again unsandboxed."""
    if ctx.approval_policy not in ("on-failure", "untrusted") or ctx.request_approval is None:
        return False
    reason = "command failed; retry without sandbox?"
    planted = writable_program(argv, ctx)
    if planted is not None:
        reason += f" (`{argv[0]}` is {planted}, inside a writable root: a file sandboxed commands can change)"
    try:
        return await ask(ctx, call_id, argv, cwd, reason, proposed_prefix(argv))
    except RespondToModel:
        return False


def denial_note(ctx: ToolContext) -> str:
    spec = ctx.sandbox
    if spec is None:
        return ""
    roots = ", ".join(spec.writable) or "nowhere"
    network = "allowed" if spec.network else "blocked"
    how = (
        'ask for escalation with sandbox_permissions="require_escalated" and a justification'
        if ctx.approval_policy in ("on-request", "on-failure", "untrusted")
        else "escalation is impossible under approval policy never; stay within the writable roots"
    )
    return (
        f"\n[sandbox] This looks like a sandbox denial ({spec.mode}): writes are allowed in {roots}; "
        f".git and agent metadata are read-only; network is {network}. To proceed, {how}."
    )

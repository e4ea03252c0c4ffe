"""A turn as a task of its session: its settings (``turn_context``), its start (the file catches
up, the turn context and the user's input are recorded), the turn loop (``core/turn.py``), and its
end however it comes — completed, failed, interrupted, or stopped by a session file that cannot be
written. Manual compaction (``Op::Compact``) runs as a task the same way."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from codexbro import protocol as p
from codexbro.core.history import output_item_for
from codexbro.core.rollout import RolloutWriteError, new_thread_id
from codexbro.core.turn import TurnContext, TurnState, run_turn
from codexbro.errors import ApiError, CodexbroError
from codexbro.protocol.items import ResponseItem, first_text, user_message
from codexbro.tools.menu import build_router

if TYPE_CHECKING:
    from codexbro.core.session import Session

log = logging.getLogger(__name__)

TURN_ABORTED_NOTE = (
    "<turn_aborted>\nThe user interrupted the previous turn. Commands that were still running were "
    "stopped and their results are incomplete. Do not resume that work unless asked.\n</turn_aborted>"
)


def turn_context(session: Session, output_schema: dict[str, Any] | None) -> TurnContext:
    from codexbro.sandbox.policy import spec_for

    cfg, model = session.config, session.model
    spec = spec_for(
        cfg.sandbox_mode, cfg.sandbox_workspace_write, cfg.cwd, cfg.codexbro_home, session.thread_id
    )
    return TurnContext(
        turn_id=new_thread_id(), cwd=cfg.cwd, model=model, approval_policy=cfg.approval_policy,
        sandbox_mode=cfg.sandbox_mode, sandbox_workspace_write=cfg.sandbox_workspace_write,
        env_policy=cfg.shell_environment_policy, router=build_router(model, cfg, session.tool_resources),
        output_schema=output_schema, truncation_mode=model.truncation_mode,
        truncation_limit=cfg.tool_output_token_limit or model.truncation_limit,
        sandbox=spec,
        sandbox_backend=cfg.sandbox_backend, approvals=session.approvals, rules=session.rules,
        home=cfg.codexbro_home, request_approval=session.request_approval,
        ask_user=session.ask if session.can_ask_user else None,
        warm_up=lambda tool: session.tool_resources.warm_up(tool, spec, cfg.sandbox_backend, cfg.codexbro_home),
    )  # fmt: skip


async def run(session: Session, ctx: TurnContext, items: list[ResponseItem]) -> None:
    final: p.EventMsg | None = None
    try:
        final = await _run(session, ctx, items)
    finally:
        session.turn_ended(final)


async def _run(session: Session, ctx: TurnContext, items: list[ResponseItem]) -> p.EventMsg:
    """The turn, up to its last event (``task_complete`` or ``turn_aborted``), which is returned:
    the session emits it once the turn is no longer active."""
    window = session.context.context_window()
    if not _catch_up(session, ctx.turn_id):
        return p.TaskComplete(ctx.turn_id, None)
    session.emit(p.TaskStarted(ctx.turn_id, window))
    try:
        await _mcp_ready(session)  # before anything is recorded: the first request has their tools
    except asyncio.CancelledError:
        return p.TurnAborted(ctx.turn_id, "interrupted")
    except CodexbroError as err:
        session.emit(p.ErrorEvent(err.message, err.kind))
        return p.TaskComplete(ctx.turn_id, None)
    cfg, model = session.config, session.model
    session.persist(lambda v: session.recorder.write("turn_context", v), {
        "turn_id": ctx.turn_id, "cwd": str(cfg.cwd), "approval_policy": cfg.approval_policy,
        "sandbox_policy": {"mode": cfg.sandbox_mode}, "model": model.slug,
        "effort": cfg.model_reasoning_effort or model.default_reasoning_level,
        "summary": cfg.model_reasoning_summary or model.default_reasoning_summary,
    })  # fmt: skip
    mark, had_context = len(session.history.items), session.context_recorded
    if not session.context_recorded:
        for item in session.initial_context():
            session.record(item)
        session.context_recorded = True
    for item in items:
        session.record(item)
        session.emit(p.UserMessage(first_text(item)))
    last: str | None = None
    try:
        if session.rollout_error is not None:
            # Recording the turn's start failed: nothing was sent, so nothing of it stays in the
            # history either (the next turn must not carry this prompt along unasked).
            session.history.replace(session.history.items[:mark])
            session.context_recorded = had_context
            raise asyncio.CancelledError
        last = await run_turn(session, ctx, TurnState())
        if session.rollout_error is not None:
            # A write failed after the turn's last pause: the cancel it asked for never got in
            # (the rest of the answer was already read), but the turn ends with the error all the same.
            raise asyncio.CancelledError
    except asyncio.CancelledError:
        for call in session.history.pending_calls():
            session.record(output_item_for(call, "aborted"))
        if _rollout_failure(session):
            return p.TaskComplete(ctx.turn_id, None)
        session.record(user_message(TURN_ABORTED_NOTE))
        return p.TurnAborted(ctx.turn_id, "interrupted")
    except (ApiError, CodexbroError) as err:
        session.emit(p.ErrorEvent(err.message, err.kind))
    except Exception as err:  # a bug: report it, keep the session alive
        log.exception("turn failed")
        session.emit(p.ErrorEvent(f"internal error: {type(err).__name__}: {err}", "other"))
    return p.TaskComplete(ctx.turn_id, last)


async def _mcp_ready(session: Session) -> None:
    """The session's MCP servers have started or failed (each within its start-up timeout), so
    their tools are in this turn's first request; a failed ``required`` server ends the turn."""
    mcp = session.tool_resources.mcp
    if mcp is None:
        return
    await mcp.wait_started()
    failures = mcp.required_failures()
    if failures:
        raise CodexbroError("; ".join(failures))


def _catch_up(session: Session, turn_id: str) -> bool:
    """An earlier write failed: the file catches up (the whole history again) before anything new
    happens; False (said, with the task's start) when it still cannot be written."""
    session.rollout_error = None
    if session.recorder.failed is None:
        return True
    try:
        session.recorder.resync(session.history.items)
        return True
    except RolloutWriteError as err:
        session.emit(p.TaskStarted(turn_id, session.context.context_window()))
        session.emit(p.ErrorEvent(f"{err.message} (nothing was sent to the model)", err.kind))
        return False


async def run_compact(session: Session, turn_id: str) -> None:
    final: p.EventMsg | None = None
    try:
        if not _catch_up(session, turn_id):
            final = p.TaskComplete(turn_id, None)
            return
        session.emit(p.TaskStarted(turn_id, session.context.context_window()))
        router = build_router(session.model, session.config, session.tool_resources)
        try:
            if not await session.context.compact(router.specs(), "manual"):
                session.emit(p.WarningEvent("nothing was compacted"))
            if session.rollout_error is not None:
                # As in a turn: a write that failed after the last pause still ends the task with it.
                raise asyncio.CancelledError
            final = p.TaskComplete(turn_id, None)
        except asyncio.CancelledError:
            failed = _rollout_failure(session)
            final = p.TaskComplete(turn_id, None) if failed else p.TurnAborted(turn_id, "interrupted")
        except Exception as err:  # a bug, or a provider without this compaction: said, and the task ends
            log.exception("compaction failed")
            session.emit(p.ErrorEvent(f"compaction failed: {type(err).__name__}: {err}", "other"))
            final = p.TaskComplete(turn_id, None)
    finally:
        session.turn_ended(final)


def _rollout_failure(session: Session) -> bool:
    """The task was stopped by a session file that could not be written: say so."""
    failure, session.rollout_error = session.rollout_error, None
    if failure is None:
        return False
    session.emit(p.ErrorEvent(failure.message, failure.kind))
    return True

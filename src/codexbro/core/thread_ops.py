"""Ops that change the thread itself rather than run a turn: new settings for the turns that follow
(``OverrideTurnContext``), rolling turns back (``ThreadRollback``), forking (``ForkThread``). Each
runs between turns; the session dispatches them here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from codexbro import protocol as p
from codexbro.core.history import drop_last_turns
from codexbro.core.rollout import RolloutWriteError

if TYPE_CHECKING:
    from codexbro.core.session import Session


def override(session: Session, op: p.OverrideTurnContext) -> None:
    """New settings for the turns that follow; a running turn keeps its own."""
    from typing import get_args

    from codexbro.config import values
    from codexbro.config.requirements import refusal
    from codexbro.records import replace

    wanted = {"approval_policy": (op.approval_policy, values.ApprovalPolicy),
              "sandbox_mode": (op.sandbox_mode, values.SandboxMode),
              "model_reasoning_effort": (op.effort, values.ReasoningEffort)}  # fmt: skip
    changes: dict[str, Any] = {}
    for key, (value, allowed) in wanted.items():
        if value is None:
            continue
        if value not in get_args(allowed):
            session.emit(
                p.ErrorEvent(f"`{value}` is not a valid {key} (one of {', '.join(get_args(allowed))})")
            )
            return
        if (why := refusal(key, value, session.requirements)) is not None:
            session.emit(p.ErrorEvent(why))
            return
        changes[key] = value
    if op.cwd is not None:
        from pathlib import Path

        where = Path(op.cwd).expanduser()
        if not where.is_absolute() or not where.is_dir():
            session.emit(p.ErrorEvent(f"`{op.cwd}` is not an existing absolute directory: cwd unchanged"))
            return
        changes["cwd"] = where.resolve()
    model = session.model
    retarget = getattr(session.client, "retarget", None)
    if op.model is not None and op.model != session.model.slug:
        if session.model_lookup is None or retarget is None:
            session.emit(p.ErrorEvent(f"this session's model cannot change (to {op.model})"))
            return
        model = session.model_lookup(op.model)
        changes["model"] = op.model
    session.config, session.model = replace(session.config, **changes), model
    if retarget is not None:
        retarget(session.model, session.config)
    session.emit_configured()


def rollback(session: Session, count: int) -> None:
    kept = drop_last_turns(session.history.items, count)
    if kept is None:
        session.emit(
            p.ErrorEvent(f"cannot roll back {count} turn(s): the thread has fewer", "thread_rollback_failed")
        )
        return
    session.history.replace(kept)
    session.emit(p.ThreadRolledBack(count))  # recorded: a resumed session drops them too


def fork(session: Session, drop_turns: int) -> None:
    if not session.recorder.enabled:
        session.emit(p.ErrorEvent("this session is not recorded (ephemeral): there is no file to fork from"))
        return
    items = session.history.items if drop_turns == 0 else drop_last_turns(session.history.items, drop_turns)
    if items is None:
        session.emit(p.ErrorEvent(f"cannot fork without the last {drop_turns} turn(s): the thread has fewer"))
        return
    from codexbro.core.rollout import fork_file

    try:
        thread_id, path = fork_file(session.recorder, items)
    except RolloutWriteError as err:
        session.emit(p.ErrorEvent(f"could not fork the thread: {err.message}", err.kind))
        return
    session.emit(p.ThreadForked(thread_id, str(path) if path is not None else None))

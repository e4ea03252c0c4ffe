"""What codexbro reads from a cloud task, the way upstream 0.169 reads it (its cloud-tasks client;
shapes captured from 0.169 against a loopback fake — see docs/chatgpt.md):

- status: ``task_status_display.latest_turn_status_display.turn_status`` (completed → ready,
  failed/cancelled → error, anything else → pending), else ``task_status_display.state``;
- the diff of a turn: the first output item ``{"type": "output_diff", "diff"}`` or
  ``{"type": "pr", "output_diff": {"diff"}}`` — in ``current_diff_task_turn``, then
  ``current_assistant_turn``;
- attempts (best-of-N): the main turn and each sibling turn that has a diff, ordered by
  ``attempt_placement`` (placed first), then ``created_at``; ``--attempt N`` is 1-based.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from msgspec import Struct

from codexbro.errors import UserError

STATUSES = ("pending", "ready", "applied", "error")


class Summary(Struct, frozen=True):
    files_changed: int = 0
    lines_added: int = 0
    lines_removed: int = 0

    def text(self) -> str:
        if not (self.files_changed or self.lines_added or self.lines_removed):
            return "no diff"
        files = "file" if self.files_changed == 1 else "files"
        return f"+{self.lines_added}/-{self.lines_removed} • {self.files_changed} {files}"


class Task(Struct, frozen=True):
    id: str
    title: str
    status: str  # pending | ready | applied | error
    updated_at: float | None
    environment_id: str | None
    environment_label: str | None
    summary: Summary
    is_review: bool
    attempt_total: int | None


class Attempt(Struct, frozen=True):
    turn_id: str
    placement: int | None
    created_at: float | None
    status: str | None
    diff: str


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def task_id_of(text: str) -> str:
    """A task id, or the task's URL (``…/codex/tasks/ID?x#y``) as 0.169 accepts it."""
    text = text.strip().split("#", 1)[0].split("?", 1)[0].rstrip("/")
    tid = text.rsplit("/", 1)[-1]
    if not tid or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}", tid):
        raise UserError(f"not a cloud task id or task URL: {text!r}")
    return tid


def status_of(display: dict[str, Any]) -> str:
    turn = _dict(display.get("latest_turn_status_display")).get("turn_status")
    if isinstance(turn, str):
        return {"completed": "ready", "failed": "error", "cancelled": "error"}.get(turn, "pending")
    state = display.get("state")
    return state if isinstance(state, str) and state in STATUSES else "pending"


def _summary(display: dict[str, Any]) -> Summary:
    stats = _dict(_dict(display.get("latest_turn_status_display")).get("diff_stats"))
    return Summary(
        _int(stats.get("files_modified")), _int(stats.get("lines_added")), _int(stats.get("lines_removed"))
    )


def from_list_item(doc: dict[str, Any]) -> Task:
    display = _dict(doc.get("task_status_display"))
    latest = _dict(display.get("latest_turn_status_display"))
    siblings = latest.get("sibling_turn_ids")
    label = display.get("environment_label")
    return Task(
        id=str(doc.get("id") or ""),
        title=str(doc.get("title") or "<untitled>"),
        status=status_of(display),
        updated_at=_num(doc.get("updated_at")),
        environment_id=None,
        environment_label=label if isinstance(label, str) and label else None,
        summary=_summary(display),
        is_review=bool(doc.get("pull_requests")),
        attempt_total=len(siblings) + 1 if isinstance(siblings, list) else None,
    )


def from_details(doc: dict[str, Any], task_id: str) -> Task:
    task = doc.get("task")
    if not isinstance(task, dict):
        raise UserError(f"the server's answer for task {task_id} has no task metadata")
    display = _dict(doc.get("task_status_display") or task.get("task_status_display"))
    latest = _dict(display.get("latest_turn_status_display"))
    summary = _summary(display)
    if summary == Summary():
        diff = turn_diff(_dict(doc.get("current_diff_task_turn"))) or turn_diff(
            _dict(doc.get("current_assistant_turn"))
        )
        summary = count_diff(diff) if diff else summary
    updated = _num(task.get("updated_at")) or _num(task.get("created_at"))
    updated = updated or _num(latest.get("updated_at")) or _num(latest.get("created_at"))
    label = display.get("environment_label")
    env_id = task.get("environment_id")
    siblings = _dict(doc.get("current_assistant_turn")).get("sibling_turn_ids") or latest.get(
        "sibling_turn_ids"
    )
    return Task(
        id=str(task.get("id") or task_id),
        title=str(task.get("title") or "<untitled>"),
        status=status_of(display),
        updated_at=updated,
        environment_id=env_id if isinstance(env_id, str) else None,
        environment_label=label if isinstance(label, str) and label else None,
        summary=summary,
        is_review=bool(task.get("is_review") or task.get("external_pull_requests")),
        attempt_total=len(siblings) + 1 if isinstance(siblings, list) else None,
    )


def turn_diff(turn: dict[str, Any]) -> str | None:
    items = turn.get("output_items")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "output_diff":
            diff = item.get("diff")
        elif item.get("type") == "pr":
            diff = _dict(item.get("output_diff")).get("diff")
        else:
            continue
        if isinstance(diff, str) and diff.strip():
            return diff
    return None


def count_diff(diff: str) -> Summary:
    files = added = removed = 0
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            files += 1
        elif line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return Summary(files, added, removed)


def messages_of(doc: dict[str, Any]) -> list[str]:
    """The assistant's messages in a task's details (output items, then its work log)."""
    out: list[str] = []
    for key in ("current_diff_task_turn", "current_assistant_turn"):
        turn = _dict(doc.get(key))
        for item in turn.get("output_items") or []:
            if isinstance(item, dict) and item.get("type") == "message":
                out += _texts(item.get("content"))
        for message in _dict(turn.get("worklog")).get("messages") or []:
            if isinstance(message, dict) and _dict(message.get("author")).get("role") == "assistant":
                out += _texts(_dict(message.get("content")).get("parts"))
    return list(dict.fromkeys(t for t in out if t.strip()))


def prompt_of(doc: dict[str, Any]) -> str:
    texts: list[str] = []
    for item in _dict(doc.get("current_user_turn")).get("input_items") or []:
        if isinstance(item, dict) and item.get("type") == "message" and item.get("role") in (None, "user"):
            texts += _texts(item.get("content"))
    return "\n\n".join(texts)


def error_of(doc: dict[str, Any]) -> str | None:
    err = _dict(_dict(doc.get("current_assistant_turn")).get("error"))
    code, message = err.get("code"), err.get("message")
    if not code and not message:
        return None
    return f"{code}: {message}" if code and message else str(code or message)


def _texts(content: Any) -> list[str]:
    out = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            out.append(part["text"])
    return out


def attempts(doc: dict[str, Any], siblings: list[dict[str, Any]]) -> list[Attempt]:
    found: list[Attempt] = []
    for key in ("current_diff_task_turn", "current_assistant_turn"):
        turn = _dict(doc.get(key))
        diff = turn_diff(turn)
        if diff:
            found.append(_attempt(turn, diff))
            break
    for turn in siblings:
        diff = turn_diff(turn)
        if diff and isinstance(turn.get("id"), str) and all(a.turn_id != turn["id"] for a in found):
            found.append(_attempt(turn, diff))
    found.sort(key=lambda a: (a.placement is None, a.placement or 0, a.created_at or 0.0))
    return found


def _attempt(turn: dict[str, Any], diff: str) -> Attempt:
    placement = turn.get("attempt_placement")
    status = turn.get("turn_status")
    return Attempt(
        str(turn.get("id") or ""),
        placement if isinstance(placement, int) and not isinstance(placement, bool) else None,
        _num(turn.get("created_at")),
        status if isinstance(status, str) else None,
        diff,
    )


def pick(found: list[Attempt], number: int | None, task_id: str) -> Attempt:
    if not found:
        raise UserError(f"no diff available for task {task_id}; it may still be running")
    n = number or 1
    if n > len(found):
        raise UserError(f"attempt {n} is not available; only {len(found)} attempt(s) found")
    return found[n - 1]


def ago(ts: float | None, now: float | None = None) -> str:
    """Upstream's relative time: ``Ns``/``Nm``/``Nh ago``, then the local date (``Dec  2 14:55``)."""
    now = time.time() if now is None else now
    delta = max(0.0, now - (ts if ts is not None else now))
    if delta < 60:
        return f"{int(delta)}s ago"
    if delta < 3600:
        return f"{int(delta // 60)}m ago"
    if delta < 86400:
        return f"{int(delta // 3600)}h ago"
    return datetime.fromtimestamp(ts or now).strftime("%b %e %H:%M")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

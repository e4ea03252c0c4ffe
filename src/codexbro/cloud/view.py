"""How cloud tasks read on a screen — upstream 0.169's lines (``codex cloud list``/``status``), shared
by ``codexbro cloud`` and the TUI's ``/cloud`` view."""

from __future__ import annotations

from typing import Any

from codexbro.cloud import tasks as t


def task_url(base: str, task_id: str) -> str:
    base = base.rstrip("/")
    root = base[: -len("/backend-api")] if base.endswith("/backend-api") else base
    return f"{root}/codex/tasks/{task_id}"


def block(task: t.Task, base: str, indent: str) -> list[str]:
    meta = "  •  ".join(
        x for x in (task.environment_label or task.environment_id, t.ago(task.updated_at)) if x
    )
    return [f"[{task.status.upper()}] {task.title}", meta, task.summary.text()] if not indent else [
        task_url(base, task.id), f"{indent}[{task.status.upper()}] {task.title}", f"{indent}{meta}",
        f"{indent}{task.summary.text()}",
    ]  # fmt: skip


def task_json(task: t.Task, base: str) -> dict[str, Any]:
    return {
        "id": task.id, "url": task_url(base, task.id), "title": task.title, "status": task.status,
        "updated_at": t.iso(task.updated_at), "environment_id": task.environment_id,
        "environment_label": task.environment_label,
        "summary": {"files_changed": task.summary.files_changed, "lines_added": task.summary.lines_added,
                    "lines_removed": task.summary.lines_removed},
        "is_review": task.is_review, "attempt_total": task.attempt_total,
    }  # fmt: skip


def list_text(found: list[t.Task], base: str, cursor: str | None) -> str:
    """``cloud list``'s blocks (0.169's), and the command for the next page when there is one."""
    import shlex

    if not found:
        return "No tasks found."
    blocks = ["\n".join(block(x, base, "  ")) for x in found]
    if cursor:
        blocks.append(f"To fetch the next page, run codexbro cloud list --cursor={shlex.quote(cursor)}")
    return "\n\n".join(blocks)


async def tasks_view(backend: Any, base: str, task_id: str | None = None) -> tuple[str, str | None]:
    """The TUI's ``/cloud``: the task list; or one task's status lines and its diff (None if none)."""
    if task_id is None:
        summaries, cursor, _page = await backend.tasks()
        return list_text([t.from_list_item(s.raw) for s in summaries], base, cursor), None
    tid = t.task_id_of(task_id)
    doc = await backend.task(tid)
    task = t.from_details(doc, tid)
    lines = [task_url(base, tid), *block(task, base, "")]
    if (err := t.error_of(doc)) is not None:
        lines.append(f"Task failed: {err}")
    lines += [f"> {m}" for m in t.messages_of(doc)[:3]]
    attempts = t.attempts(doc, [])
    lines.append(f"apply it here: codexbro cloud apply {tid}" if attempts else "no diff yet")
    return "\n".join(lines), attempts[0].diff if attempts else None

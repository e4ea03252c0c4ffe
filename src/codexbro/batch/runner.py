"""``codexbro batch``'s local engine: tasks as ``codexbro exec --json`` processes, ``jobs`` at a time.

Each task runs in its own process (its own session, config precedence as ``exec``: the batch's
``-m``/``-s``/``-c``/``--output-schema`` are defaults a task's own fields override), in its own copy
of its repository (``workspace.py``), in a process group of its own: a timeout or Ctrl-C kills the
whole group. One result line per task is appended to the results file as soon as it ends (flushed
and fsynced), so a killed batch loses nothing that finished, and running the same command again
skips the tasks that have a result (``--rerun`` runs them again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from msgspec import Struct, field

from codexbro.batch import workspace
from codexbro.batch.tasks import BadLine, Task


class Defaults(Struct, frozen=True):
    """The batch's own flags: what every task gets unless it says otherwise."""

    model: str | None = None
    sandbox: str | None = None
    overrides: tuple[str, ...] = ()
    output_schema: Any = None
    timeout_s: float | None = None
    keep: bool = False


class Progress(Struct):
    total: int
    done: int = 0
    failed: int = 0
    running: int = 0
    started: float = field(default_factory=time.monotonic)
    on_change: Callable[[Progress, dict[str, Any] | None], None] | None = None

    def changed(self, result: dict[str, Any] | None = None) -> None:
        if self.on_change is not None:
            self.on_change(self, result)


class ResultsFile:
    """Append-only JSONL: a line per finished task, durable as soon as it is written."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def finished_ids(self) -> set[str]:
        ids: set[str] = set()
        if not self.path.exists():
            return ids
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError, AttributeError):
                doc = json.loads(line)
                if isinstance(doc.get("id"), str):
                    ids.add(doc["id"])
        return ids

    def append(self, result: dict[str, Any]) -> None:
        data = (json.dumps(result, ensure_ascii=False) + "\n").encode("utf-8", "surrogateescape")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def exec_argv(task: Task, defaults: Defaults, schema_file: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "codexbro", "exec", "--json", "--skip-git-repo-check"]
    for override in defaults.overrides:
        argv += ["-c", override]
    for key, value in task.config.items():
        argv += ["-c", f"{key}={json.dumps(value)}"]
    model = task.model or defaults.model
    if model:
        argv += ["-m", model]
    sandbox = task.sandbox or defaults.sandbox
    if sandbox:
        argv += ["-s", sandbox]
    if schema_file is not None:
        argv += ["--output-schema", str(schema_file)]
    return [*argv, "--", task.prompt]


def summarize(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The final message, usage, thread and error of an ``exec --json`` event stream."""
    out: dict[str, Any] = {"final_message": None, "usage": None, "thread_id": None, "error": None}
    for event in events:
        kind = event.get("type")
        raw_item = event.get("item")
        item: dict[str, Any] = raw_item if isinstance(raw_item, dict) else {}
        if kind == "thread.started":
            out["thread_id"] = event.get("thread_id")
        elif kind == "item.completed" and item.get("type") == "agent_message":
            out["final_message"] = item.get("text")
        elif kind == "turn.completed":
            out["usage"] = event.get("usage")
        elif kind == "turn.failed":
            error = event.get("error")
            out["error"] = error.get("message") if isinstance(error, dict) else str(error or "turn failed")
        elif kind == "error" and out["error"] is None:
            out["error"] = event.get("message")
    return out


async def run_task(task: Task, defaults: Defaults, work: Path, home: Path) -> dict[str, Any]:
    """One task, start to result (never raises for the task's own failures)."""
    started = time.monotonic()
    result: dict[str, Any] = {"id": task.id, "status": "failed", "final_message": None, "diff": "", "usage": None,
                              "wall_s": 0.0, "rollout": None, "error": None}  # fmt: skip
    ws = None
    proc: asyncio.subprocess.Process | None = None
    try:
        ws = await workspace.prepare(task, work)
        schema = task.output_schema if task.output_schema is not None else defaults.output_schema
        schema_file = None
        if schema is not None:
            schema_file = work / f".{ws.path.name}.schema.json"
            schema_file.write_text(json.dumps(schema), encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            *exec_argv(task, defaults, schema_file), cwd=ws.path, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), defaults.timeout_s)
        except TimeoutError:
            _kill(proc)
            await proc.wait()
            result.update(status="timeout", error=f"timed out after {defaults.timeout_s:g} s")
            out, err = b"", b""
        events = []
        for line in out.decode("utf-8", "replace").splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict):
                    events.append(doc)
        summary = summarize(events)
        result.update({k: v for k, v in summary.items() if k != "thread_id"})
        if result["status"] != "timeout":
            result["status"] = "ok" if proc.returncode == 0 else "failed"
            if proc.returncode != 0 and not result["error"]:
                tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
                result["error"] = tail[0][:500]
        if schema is not None and result["status"] == "ok" and isinstance(result["final_message"], str):
            with contextlib.suppress(ValueError):
                result["final_message"] = json.loads(result["final_message"])
        if summary["thread_id"]:
            from codexbro.core.rollout import find_rollout

            with contextlib.suppress(Exception):
                result["rollout"] = str(find_rollout(home, summary["thread_id"]))
        result["diff"] = await workspace.diff(ws)
    except asyncio.CancelledError:
        if proc is not None and proc.returncode is None:
            _kill(proc)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(proc.wait(), 2)
        result.update(status="cancelled", error="the batch was interrupted")
        raise
    except (workspace.WorkspaceError, OSError) as exc:
        result["error"] = str(exc)
    finally:
        result["wall_s"] = round(time.monotonic() - started, 3)
        if ws is not None and not defaults.keep:
            workspace.remove(ws, work)
    return result


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def failed_result(task_id: str, status: str, error: str) -> dict[str, Any]:
    return {"id": task_id, "status": status, "error": error, "final_message": None, "diff": "", "usage": None,
            "wall_s": 0.0, "rollout": None}  # fmt: skip


def plan(items: list[Task | BadLine], results: ResultsFile, *, rerun: bool, progress: Progress) -> list[Task]:
    """The tasks still to run: bad lines are recorded as failed at once (the rest still run), tasks
    with a result are skipped unless ``rerun``. Shared by both engines."""
    finished = set() if rerun else results.finished_ids()
    todo: list[Task] = []
    for item in items:
        if isinstance(item, BadLine):
            key = item.id or f"line-{item.line}"
            if key not in finished:
                bad = failed_result(key, "failed", item.error)
                results.append(bad)
                progress.done += 1
                progress.failed += 1
                progress.changed(bad)
            continue
        if item.id in finished:
            progress.total -= 1
            continue
        todo.append(item)
    return todo


async def run_local(items: list[Task | BadLine], results: ResultsFile, defaults: Defaults, *, jobs: int,
                    work: Path, home: Path, rerun: bool, progress: Progress) -> int:  # fmt: skip
    """Run every task (``jobs`` at a time); returns how many did not end ``ok``."""
    todo = plan(items, results, rerun=rerun, progress=progress)
    gate = asyncio.Semaphore(max(1, jobs))
    running: dict[str, asyncio.Task[dict[str, Any]]] = {}

    async def one(task: Task) -> None:
        async with gate:
            progress.running += 1
            progress.changed()
            try:
                result = await run_task(task, defaults, work, home)
            except asyncio.CancelledError:
                results.append(failed_result(task.id, "cancelled", "the batch was interrupted"))
                raise
            finally:
                progress.running -= 1
            results.append(result)
            progress.done += 1
            progress.failed += result["status"] != "ok"
            progress.changed(result)

    tasks = [asyncio.ensure_future(one(t)) for t in todo]
    for t, fut in zip(todo, tasks, strict=True):
        running[t.id] = fut  # type: ignore[assignment]
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        for fut in tasks:
            fut.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return progress.failed

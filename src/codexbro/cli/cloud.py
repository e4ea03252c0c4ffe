"""``codexbro cloud list|status|diff|apply|exec|envs|show``: Codex cloud tasks as upstream 0.169's
``codex cloud`` shows them (its output lines, exit codes and ``--json`` shapes; captured on
loopback), plus ``envs`` (codexbro's: the environments and why each matched) and ``show`` (the
task's raw JSON). Differences from 0.169, on purpose: the base URL is ``chatgpt_base_url`` from
the config (0.169 reads ``CODEX_CLOUD_TASKS_BASE_URL`` and only trusts chatgpt.com); ``apply``
checks before it writes and changes nothing unless all of the diff applies (``--3way`` to merge
anyway); nothing is written to ``./error.log``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from codexbro.cloud import tasks as t
from codexbro.cloud.view import block as _block
from codexbro.cloud.view import list_text, task_url
from codexbro.cloud.view import task_json as _task_json
from codexbro.config.loader import Overrides, load_config
from codexbro.errors import CodexbroError, UserError
from codexbro.textsafe import for_terminal


class Failed(Exception):
    """The command's answer is printed, and it exits 1 (a task not ready, an apply that conflicts)."""

    def __init__(self, text: str) -> None:
        self.text = text


def run(action: str, ns: Any) -> int:
    config = load_config(Overrides(cli_overrides=ns.config_overrides, cwd=Path.cwd()))
    handler = ACTIONS[action]

    async def go() -> str:
        from codexbro.composition.chatgpt import chatgpt_backend

        async with chatgpt_backend(config) as backend:
            return await handler(backend, ns, config.chatgpt_base_url, config.cwd)

    try:
        text = asyncio.run(go())
    except Failed as failed:
        print(for_terminal(failed.text))
        return 1
    except CodexbroError as err:
        print(f"Error: {for_terminal(err.message)}", file=sys.stderr)
        return 1
    if text:
        # diff's text is made safe (or kept byte for byte when piped) by the action itself
        print(text if action == "diff" else for_terminal(text), end="" if text.endswith("\n") else "\n")
    return 0


async def _env_id(backend: Any, wanted: str | None, cwd: Path) -> str | None:
    if not wanted:
        return None
    from codexbro.cloud.envs import list_environments, resolve_env

    envs, _notes = await list_environments(backend, cwd)
    return resolve_env(envs, wanted).id


async def cloud_list(backend: Any, ns: Any, base: str, cwd: Path) -> str:
    env = await _env_id(backend, ns.env, cwd)
    summaries, cursor, _page = await backend.tasks(ns.limit, ns.cursor, env)
    found = [t.from_list_item(s.raw) for s in summaries]
    if ns.json:
        return json.dumps({"tasks": [_task_json(x, base) for x in found], "cursor": cursor}, indent=2)
    return list_text(found, base, cursor)


async def cloud_status(backend: Any, ns: Any, base: str, cwd: Path) -> str:
    tid = t.task_id_of(ns.task_id)
    doc = await backend.task(tid)
    task = t.from_details(doc, tid)
    if ns.json:
        out = {**_task_json(task, base), "prompt": t.prompt_of(doc), "messages": t.messages_of(doc),
               "error": t.error_of(doc)}  # fmt: skip
        text = json.dumps(out, indent=2)
    else:
        lines = _block(task, base, "")
        if task.status == "error" and (err := t.error_of(doc)):
            lines.append(f"Task failed: {err}")
        text = "\n".join(lines)
    if task.status != "ready":  # as 0.169: only a ready task is a success
        raise Failed(text)
    return text


async def _attempt(backend: Any, ns: Any) -> tuple[str, t.Attempt, int]:
    tid = t.task_id_of(ns.task_id)
    doc = await backend.task(tid)
    turn = doc.get("current_assistant_turn")
    turn_id = turn.get("id") if isinstance(turn, dict) else None
    siblings = await backend.sibling_turns(tid, turn_id) if isinstance(turn_id, str) and turn_id else []
    found = t.attempts(doc, siblings)
    return tid, t.pick(found, ns.attempt, tid), len(found)


async def cloud_diff(backend: Any, ns: Any, base: str, cwd: Path) -> str:
    tid, attempt, total = await _attempt(backend, ns)
    if ns.json:
        return for_terminal(json.dumps({"id": tid, "attempt": ns.attempt or 1, "attempts": total,
                                        "turn_id": attempt.turn_id, "diff": attempt.diff}, indent=2))  # fmt: skip
    if not sys.stdout.isatty():
        return attempt.diff  # piped (`| git apply`): the diff byte for byte
    text = for_terminal(attempt.diff)  # a server's text on a terminal: no escape sequences of its own
    return colour_diff(text) if "NO_COLOR" not in os.environ else text


async def cloud_apply(backend: Any, ns: Any, base: str, cwd: Path) -> str:
    from codexbro.cloud.apply import apply_diff

    tid, attempt, _total = await _attempt(backend, ns)
    result = await asyncio.to_thread(
        apply_diff, attempt.diff, cwd, three_way=ns.three_way, check_only=ns.check
    )
    if ns.json:
        text = json.dumps({"id": tid, "attempt": ns.attempt or 1, "status": result.status, "applied": result.applied,
                           "conflicts": result.conflicts, "failed": result.failed, "summary": result.summary},
                          indent=2)  # fmt: skip
        if not result.ok:
            raise Failed(text)
        return text
    n = len(result.applied)
    files = [f"  {name}" for name in result.applied] + [f"  ({line})" for line in result.summary]
    if result.status == "checked":
        return "\n".join([f"Preflight passed for task {tid} (applies cleanly: {n} {_files(n)})", *files])
    if result.status == "applied":
        return "\n".join([f"Applied task {tid} locally ({n} {_files(n)})", *files])
    if result.status == "conflicts":
        lines = [f"Applied task {tid} with conflicts (applied={n}, conflicts={len(result.conflicts)}"
                 f"{f', not applied={len(result.failed)}' if result.failed else ''}):"]  # fmt: skip
        lines += [f"  applied   {f}" for f in result.applied]
        lines += [f"  conflict  {f}  (conflict markers left in the file)" for f in result.conflicts]
        lines += [f"  failed    {f}: {why}" for f, why in result.failed.items()]
        raise Failed("\n".join(lines))
    lines = [
        f"Task {tid} does not apply here; nothing was changed ({len(result.failed)} {_files(len(result.failed))}):"
    ]
    lines += [f"  {f}: {why}" for f, why in result.failed.items()]
    if not ns.three_way:
        lines.append("Run with --3way to merge it anyway (conflict markers are left where it does not fit).")
    raise Failed("\n".join(lines))


def _files(n: int) -> str:
    return "file" if n == 1 else "files"


async def cloud_exec(backend: Any, ns: Any, base: str, cwd: Path) -> str:
    from codexbro.cloud.envs import autodetect, list_environments, resolve_env

    prompt = _query(ns.query)
    envs, _notes = await list_environments(backend, cwd)
    env = resolve_env(envs, ns.env) if ns.env else autodetect(envs, cwd)
    branch = ns.branch or _current_branch(cwd) or "main"
    doc = await backend.create_task(env.id, prompt, branch, best_of_n=ns.attempts,
                                    starting_diff=os.environ.get("CODEX_STARTING_DIFF") or None)  # fmt: skip
    task = doc.get("task")
    tid = (task.get("id") if isinstance(task, dict) else None) or doc.get("id")
    if not isinstance(tid, str) or not tid:
        raise UserError(f"the server created no task id in its answer: {json.dumps(doc)[:300]}")
    if ns.json:
        return json.dumps({"id": tid, "url": task_url(base, tid), "environment_id": env.id,
                           "environment_label": env.label, "branch": branch, "attempts": ns.attempts}, indent=2)  # fmt: skip
    return task_url(base, tid)


async def cloud_envs(backend: Any, ns: Any, base: str, cwd: Path) -> str:
    from codexbro.cloud.envs import list_environments

    envs, notes = await list_environments(backend, cwd)
    if ns.json:
        return json.dumps({"environments": [{"id": e.id, "label": e.label, "is_pinned": e.is_pinned,
                                             "task_count": e.task_count, "repos": e.repos, "reason": e.reason}
                                            for e in envs], "notes": notes}, indent=2)  # fmt: skip
    if not envs:
        return "\n".join(["No environments found.", *notes])
    rows = [f"{'id':<28} {'label':<28} {'tasks':>5}  why"]
    for e in envs:
        label = (e.label or "-") + (" (pinned)" if e.is_pinned else "")
        count = "-" if e.task_count is None else str(e.task_count)
        rows.append(f"{e.id:<28} {label:<28} {count:>5}  {e.reason}")
    return "\n".join([*rows, *notes])


async def cloud_create(backend: Any, ns: Any, base: str, cwd: Path) -> str:
    """The older ``cloud create ENVIRONMENT_ID PROMPT``: the server's answer as JSON."""
    return json.dumps(await backend.create_task(ns.environment_id, " ".join(ns.prompt)), indent=2)


async def cloud_show(backend: Any, ns: Any, base: str, cwd: Path) -> str:
    return json.dumps(await backend.task(t.task_id_of(ns.task_id)), indent=2)


ACTIONS: dict[str, Callable[[Any, Any, str, Path], Awaitable[str]]] = {
    "list": cloud_list, "status": cloud_status, "diff": cloud_diff, "apply": cloud_apply, "exec": cloud_exec,
    "envs": cloud_envs, "show": cloud_show, "create": cloud_create,
}  # fmt: skip


def _query(query: str | None) -> str:
    if query is not None and query != "-":
        if not query.strip():
            raise UserError("the task prompt is empty")
        return query
    if query is None and sys.stdin.isatty():
        raise UserError("no prompt: pass one, or `-` to read it from stdin")
    if query is None:
        print("Reading query from stdin...", file=sys.stderr)
    text = sys.stdin.read()
    if not text.strip():
        raise UserError("no query provided via stdin (received empty input)")
    return text


def _current_branch(cwd: Path) -> str | None:
    from codexbro.cloud.git import run_git

    try:
        proc = run_git(["branch", "--show-current"], cwd, timeout_s=10)
    except (UserError, OSError):
        return None
    name = proc.stdout.strip()
    return name if proc.returncode == 0 and name else None


def colour_diff(diff: str) -> str:
    out = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---", "diff --git", "index ")):
            out.append(f"\x1b[1m{line}\x1b[0m")
        elif line.startswith("@@"):
            out.append(f"\x1b[36m{line}\x1b[0m")
        elif line.startswith("+"):
            out.append(f"\x1b[32m{line}\x1b[0m")
        elif line.startswith("-"):
            out.append(f"\x1b[31m{line}\x1b[0m")
        else:
            out.append(line)
    return "\n".join(out) + "\n"

"""``codexbro batch`` input: one task per line of a JSONL file, checked line by line.

A task: ``id`` (string, unique), ``prompt`` (string), and optionally where it runs — ``cwd`` (a
directory, copied or cloned for the task) or ``repo`` (a git URL or path, cloned) with ``ref``
(a branch, tag or commit) — and ``model``, ``sandbox``, ``output_schema`` (an object, or a path to
a JSON file) and ``config`` (an object of ``-c`` overrides: ``{"model_reasoning_effort": "high"}``).
A bad line — not JSON, not an object, a missing or wrongly typed field, an unknown key, a duplicate
id, a repository that does not exist — is reported with its line number and becomes a failed result;
the other tasks still run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from msgspec import Struct, field

KEYS = {"id", "prompt", "cwd", "repo", "ref", "model", "sandbox", "output_schema", "config"}
SANDBOXES = ("read-only", "workspace-write", "danger-full-access")


class Task(Struct, frozen=True):
    id: str
    prompt: str
    line: int
    cwd: str | None = None
    repo: str | None = None
    ref: str | None = None
    model: str | None = None
    sandbox: str | None = None
    output_schema: Any = None  # an object, or None
    config: dict[str, Any] = field(default_factory=dict)


class BadLine(Struct, frozen=True):
    """A line that is not a runnable task; ``id`` when the line named one."""

    line: int
    error: str
    id: str | None = None


def parse_tasks(path: Path, default_cwd: Path) -> list[Task | BadLine]:
    """Every non-blank line of ``path`` as a task or the reason it is not one (in file order)."""
    out: list[Task | BadLine] = []
    seen: set[str] = set()
    text = path.read_text(encoding="utf-8", errors="replace")
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        parsed = _parse_line(raw, number, path.parent, default_cwd)
        if isinstance(parsed, Task):
            if parsed.id in seen:
                parsed = BadLine(number, f"line {number}: duplicate id {parsed.id!r}", None)
            else:
                seen.add(parsed.id)
        out.append(parsed)
    return out


def _parse_line(raw: str, n: int, base: Path, default_cwd: Path) -> Task | BadLine:
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        return BadLine(n, f"line {n}: not JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(doc, dict):
        return BadLine(n, f"line {n}: a task is a JSON object, got {type(doc).__name__}")
    task_id = doc.get("id")
    named = task_id if isinstance(task_id, str) and task_id else None
    unknown = sorted(set(doc) - KEYS)
    problems = []
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})")
    if named is None:
        problems.append("`id` must be a non-empty string")
    if not isinstance(doc.get("prompt"), str) or not doc["prompt"].strip():
        problems.append("`prompt` must be a non-empty string")
    for key in ("cwd", "repo", "ref", "model", "sandbox"):
        if key in doc and not isinstance(doc[key], str):
            problems.append(f"`{key}` must be a string")
    if "cwd" in doc and "repo" in doc:
        problems.append("give `cwd` or `repo`, not both")
    if isinstance(doc.get("sandbox"), str) and doc["sandbox"] not in SANDBOXES:
        problems.append(f"`sandbox` must be one of {', '.join(SANDBOXES)}")
    if "config" in doc and not isinstance(doc["config"], dict):
        problems.append("`config` must be an object of config keys")
    schema = doc.get("output_schema")
    if isinstance(schema, str):
        schema_path = (base / schema) if not Path(schema).is_absolute() else Path(schema)
        try:
            schema = json.loads(schema_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"`output_schema` {schema_path}: {exc}")
    if schema is not None and not isinstance(schema, dict):
        problems.append("`output_schema` must be a JSON schema object or a path to one")
    where = doc.get("cwd") if isinstance(doc.get("cwd"), str) else None
    if where is not None:
        resolved = (base / where) if not Path(where).is_absolute() else Path(where)
        if not resolved.is_dir():
            problems.append(f"`cwd` {resolved} is not a directory")
        where = str(resolved)
    repo = doc.get("repo") if isinstance(doc.get("repo"), str) else None
    if repo is not None and "://" not in repo and not repo.startswith("git@"):
        local = (base / repo) if not Path(repo).is_absolute() else Path(repo)
        if not local.exists():
            problems.append(f"`repo` {local} does not exist")
        repo = str(local)
    if problems:
        return BadLine(n, f"line {n}: " + "; ".join(problems), named)
    assert named is not None
    return Task(
        id=named, prompt=doc["prompt"], line=n, cwd=where or (None if repo else str(default_cwd)), repo=repo,
        ref=doc.get("ref"), model=doc.get("model"), sandbox=doc.get("sandbox"), output_schema=schema,
        config=dict(doc.get("config") or {}),
    )  # fmt: skip

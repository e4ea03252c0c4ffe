"""Each batch task's own copy of its repository, and the diff the task made in it.

- a git repository (``repo``, or a ``cwd`` inside a work tree) → ``git clone --no-hardlinks`` of it
  (then ``git checkout REF``): the copy's git directory is its own and writable, nothing is shared
  with the original or the other tasks;
- any other directory → a plain copy (symlinks kept as links).

The diff: ``git add -A`` then ``git diff --cached --binary`` against the copy's start (new files
included) — for a clone in its own repository, for a plain copy in a baseline git directory made
when it was copied and kept beside it (not inside: the task sees no repository that is not there). Copies go under the batch's work directory and are removed afterwards unless ``--keep``.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from msgspec import Struct

from codexbro.batch.tasks import Task


class WorkspaceError(Exception):
    pass


class Workspace(Struct, frozen=True):
    path: Path  # where the task runs
    original: Path | None  # the source directory (plain copies: what the diff compares with)
    git: bool


async def _git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin",
                                             "HOME": str(Path.home()), "LC_ALL": "C"},
    )  # fmt: skip
    out, err = await proc.communicate()
    if check and proc.returncode != 0:
        detail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise WorkspaceError(f"git {args[0]} failed: {detail[0]}")
    return out.decode("utf-8", "replace")


async def prepare(task: Task, root: Path) -> Workspace:
    """The task's isolated copy under ``root`` (a fresh directory named after its id)."""
    dest = root / _safe(task.id)
    if dest.exists():
        shutil.rmtree(dest)
    source = task.repo or task.cwd or "."
    local = Path(source) if "://" not in source and not source.startswith("git@") else None
    top = None
    if local is not None:
        top_text = (
            await _git("rev-parse", "--show-toplevel", cwd=local, check=False) if local.is_dir() else ""
        )
        top = Path(top_text.strip()) if top_text.strip() else None
    if local is None or top is not None:
        src = source if local is None else str(top)
        await _git("clone", "--quiet", "--no-hardlinks", src, str(dest))
        if task.ref:
            await _git("checkout", "--quiet", task.ref, cwd=dest)
        inner = (
            dest / local.resolve().relative_to(top.resolve())
            if local is not None and top is not None
            else dest
        )
        return Workspace(inner, None, True)
    if task.ref:
        raise WorkspaceError(f"`ref` {task.ref!r} needs a git repository; {local} is not one")
    await asyncio.to_thread(_copy, local, dest, root)
    # The baseline the diff compares with: the copy as it starts, in a git directory kept outside
    # it (the task sees no repository that is not there; the original may change meanwhile).
    base = _baseline_dir(dest)
    await _git("--git-dir", str(base), "--work-tree", str(dest), "init", "-q")
    await _git("--git-dir", str(base), "--work-tree", str(dest), "add", "-A")
    await _git("--git-dir", str(base), "--work-tree", str(dest), "-c", "user.name=codexbro", "-c",
               "user.email=batch@codexbro.invalid", "commit", "-q", "--allow-empty", "-m", "baseline")  # fmt: skip
    return Workspace(dest, local, False)


def _copy(source: Path, dest: Path, work: Path) -> None:
    """A plain copy of ``source``, leaving out the batch's own work directory if it lies inside."""
    work = work.resolve()

    def skip_work_dir(directory: str, names: list[str]) -> list[str]:
        return [n for n in names if Path(directory, n).resolve() == work]

    shutil.copytree(source, dest, symlinks=True, ignore=skip_work_dir)


async def diff(ws: Workspace) -> str:
    """What the task changed, as a patch (empty when nothing)."""
    if ws.git:
        top = Path((await _git("rev-parse", "--show-toplevel", cwd=ws.path)).strip())
        await _git("add", "-A", cwd=top)
        return await _git("diff", "--cached", "--binary", "--no-color", cwd=top)
    base = _baseline_dir(ws.path)
    await _git("--git-dir", str(base), "--work-tree", str(ws.path), "add", "-A")
    return await _git(
        "--git-dir", str(base), "--work-tree", str(ws.path), "diff", "--cached", "--binary", "--no-color"
    )


def _baseline_dir(copy: Path) -> Path:
    return copy.parent / f".{copy.name}.baseline.git"


def remove(ws: Workspace, root: Path) -> None:
    top = ws.path
    while top.parent != root and root in top.parents:
        top = top.parent
    shutil.rmtree(top, ignore_errors=True)
    shutil.rmtree(_baseline_dir(top), ignore_errors=True)


def _safe(task_id: str) -> str:
    """A directory name for an id (ids are free text): its safe characters plus a short hash."""
    import hashlib

    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in task_id)[:60].strip(".") or "task"
    return f"{cleaned}-{hashlib.sha256(task_id.encode()).hexdigest()[:8]}"

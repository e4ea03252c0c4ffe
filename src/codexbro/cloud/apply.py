"""Applying a cloud task's diff to the local work tree — all of it or none of it.

Upstream 0.169 runs ``git apply --3way`` straight away: a diff that does not fit leaves some files
patched, some with conflict markers, and the index changed. codexbro checks first
(``git apply --check``) and, when anything would not apply, changes nothing and names each file
and the reason; ``--3way`` is the explicit choice to merge anyway, leaving conflict markers in the
files it lists (against a private copy of the index, as newer upstream does: the user's staging
area is left alone). A clean apply changes the work tree only (nothing staged).

git runs from the work tree's top with hooks, fsmonitor and implicit bare repositories off. The
diff is the server's text: git itself refuses paths outside the work tree or behind a symbolic link.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from msgspec import Struct, field

from codexbro.errors import UserError

GIT = [
    "git",
    "-c",
    "safe.bareRepository=explicit",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
]

_APPLIED = (re.compile(r"^Applied patch to '(.+)' cleanly\.$"), re.compile(r"^Applied patch (.+) cleanly\.$"))
_CONFLICT = (
    re.compile(r"^Applied patch to '(.+)' with conflicts\.$"),
    re.compile(r"^U (.+)$"),
)
_FAILED = (
    (re.compile(r"^error: patch failed: (.+):\d+$"), "its lines have changed here"),
    (re.compile(r"^error: (.+): patch does not apply$"), "its lines have changed here"),
    (re.compile(r"^error: (.+): already exists in working directory$"), "it already exists here"),
    (re.compile(r"^error: (.+): does not exist in index$"), "it does not exist here"),
    (re.compile(r"^error: (.+): No such file or directory$"), "it does not exist here"),
    (re.compile(r"^error: (.+): does not match index$"), "it has changes staged that differ"),
    (
        re.compile(r"^error: affected file '(.+)' is beyond a symbolic link$"),
        "it lies behind a symbolic link",
    ),
)


class ApplyResult(Struct):
    status: str  # "applied" | "checked" | "conflicts" | "refused"
    applied: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # files left with conflict markers (--3way)
    failed: dict[str, str] = field(default_factory=dict)  # file → why it does not apply (nothing changed)
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("applied", "checked")


def is_unified_diff(text: str) -> bool:
    return text.startswith("diff --git ") or ("\n--- " in text and "\n+++ " in text and "@@ " in text)


def work_tree(cwd: Path) -> Path:
    proc = subprocess.run([*GIT, "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise UserError(
            f"{cwd} is not inside a git work tree: {proc.stderr.strip() or 'git rev-parse failed'}"
        )
    return Path(proc.stdout.strip())


def _files_of(diff: str) -> list[str]:
    names = []
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            parts = line.split(" b/", 1)
            if len(parts) == 2:
                names.append(parts[1])
    return names


def apply_diff(diff: str, cwd: Path, *, three_way: bool = False, check_only: bool = False) -> ApplyResult:
    if not is_unified_diff(diff):
        raise UserError("the task's diff is not a unified git diff; nothing was applied")
    root = work_tree(cwd)
    with tempfile.TemporaryDirectory(prefix="codexbro-apply-") as tmp:
        patch = Path(tmp) / "task.diff"
        patch.write_text(diff if diff.endswith("\n") else diff + "\n", encoding="utf-8")
        check = _git(["apply", "--check", "--verbose", str(patch)], root)
        if check.returncode == 0:
            if check_only:
                return ApplyResult("checked", applied=_files_of(diff), output=check.stdout + check.stderr)
            done = _git(["apply", "--verbose", str(patch)], root)
            if done.returncode != 0:  # the tree changed between the check and now: git applied nothing
                return ApplyResult(
                    "refused", failed=_failures(done.stderr, diff), output=done.stdout + done.stderr
                )
            return ApplyResult("applied", applied=_files_of(diff), output=done.stdout + done.stderr)
        failed = _failures(check.stderr, diff)
        if not three_way or check_only:
            return ApplyResult("refused", failed=failed, output=check.stdout + check.stderr)
        env = _private_index(root, tmp)
        merged = _git(["apply", "--3way", "--verbose", str(patch)], root, env)
        out = merged.stdout + merged.stderr
        applied, conflicts = [], []
        for line in out.splitlines():
            line = line.strip()
            if any(p.match(line) for p in _APPLIED):
                applied.append(next(m for p in _APPLIED if (m := p.match(line)))[1])
            elif any(p.match(line) for p in _CONFLICT):
                name = next(m for p in _CONFLICT if (m := p.match(line)))[1]
                if name not in conflicts:
                    conflicts.append(name)
        applied = [a for a in dict.fromkeys(applied) if a not in conflicts]
        if merged.returncode == 0 and not conflicts:
            return ApplyResult("applied", applied=applied or _files_of(diff), output=out)
        if not applied and not conflicts:  # git applied nothing at all
            return ApplyResult("refused", failed=_failures(merged.stderr, diff) or failed, output=out)
        return ApplyResult("conflicts", applied=applied, conflicts=conflicts, output=out)


def _failures(stderr: str, diff: str) -> dict[str, str]:
    failed: dict[str, str] = {}
    for line in stderr.splitlines():
        for pattern, why in _FAILED:
            match = pattern.match(line.strip())
            if match and match[1] not in failed:
                failed[match[1]] = why
    if not failed and stderr.strip():
        failed["(patch)"] = stderr.strip().splitlines()[-1]
    return failed


def _private_index(root: Path, tmp: str) -> dict[str, str]:
    """GIT_INDEX_FILE → a copy of the work tree's index: a 3-way apply records its merge there."""
    proc = _git(["rev-parse", "--git-path", "index"], root)
    index = Path(proc.stdout.strip())
    index = index if index.is_absolute() else root / index
    copy = Path(tmp) / "index"
    if index.is_file():
        shutil.copyfile(index, copy)
    return {**os.environ, "GIT_INDEX_FILE": str(copy)}


def _git(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
                              env=env)  # fmt: skip
    except FileNotFoundError:
        raise UserError("git is not installed: it is needed to apply a task's diff") from None
    except subprocess.TimeoutExpired:
        raise UserError("git apply did not finish within 2 minutes") from None

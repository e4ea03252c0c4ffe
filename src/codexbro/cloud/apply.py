"""Applying a cloud task's diff to the local work tree — all of it or none of it.

Upstream 0.169 runs ``git apply --3way`` straight away: a diff that does not fit leaves some files
patched, some with conflict markers, and the index changed. codexbro checks first
(``git apply --check``) and, when anything would not apply, changes nothing and names each file
and the reason; ``--3way`` is the explicit choice to merge anyway, leaving conflict markers in the
files it lists (against a private copy of the index, as newer upstream does: the user's staging
area is left alone). A clean apply changes the work tree only (nothing staged).

The diff is the server's text and is read as hostile (``plan``): every path it names — what it
writes and what it reads (a copy's or rename's source) — must be relative, free of ``..`` and
``.git``, reached through no symbolic link, and inside the work tree but outside its git
directory (whatever that is called); it may not create a symbolic link. (git itself refuses unsafe
destinations, but not the source of a copy.) git's write phase is not atomic — a file can fail
half-way, after others were written — so every path the diff touches is saved first and put back
when git fails (``_Journal``). The report is git's own account of the change (``--numstat``,
``--summary``): names, renames, copies, modes, binaries. git runs from the work tree's top with
hooks, fsmonitor and implicit bare repositories off. Filter drivers (``filter.*.clean``) in the
repository's own config still run, as for any git command there: the diff cannot add one (it
cannot write the git directory).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from msgspec import Struct, field

from codexbro.cloud.git import run_git
from codexbro.errors import UserError

_APPLIED = (re.compile(r"^Applied patch to '(.+)' cleanly\.$"), re.compile(r"^Applied patch (.+) cleanly\.$"))
_CONFLICT = (re.compile(r"^Applied patch to '(.+)' with conflicts\.$"), re.compile(r"^U (.+)$"))
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
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


class ApplyResult(Struct):
    status: str  # "applied" | "checked" | "conflicts" | "refused"
    applied: list[str] = field(default_factory=list)  # git's names (a rename as "old => new")
    conflicts: list[str] = field(default_factory=list)  # files left with conflict markers (--3way)
    failed: dict[str, str] = field(default_factory=dict)  # file → why it does not apply (nothing changed)
    summary: list[str] = field(default_factory=list)  # git's summary: creates, deletes, renames, modes
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("applied", "checked")


def is_unified_diff(text: str) -> bool:
    return text.startswith(("diff --git ", "--- ")) or (
        "\n--- " in text and "\n+++ " in text and "@@ " in text
    )


def work_tree(cwd: Path) -> Path:
    proc = run_git(["rev-parse", "--show-toplevel"], cwd, timeout_s=30)
    if proc.returncode != 0:
        raise UserError(
            f"{cwd} is not inside a git work tree: {proc.stderr.strip() or 'git rev-parse failed'}"
        )
    return Path(proc.stdout.strip())


# ---- what the diff names ------------------------------------------------------------------------


def _unquote(text: str) -> str:
    """A path as git writes it: plain, or "C-quoted" with octal escapes for bytes."""
    if not text.startswith('"'):
        return text
    out = bytearray()
    i = 1
    while i < len(text) and text[i] != '"':
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in "01234567" and i + 3 < len(text):
                out.append(int(text[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, ord(nxt)))
            i += 2
            continue
        out += ch.encode("utf-8", "surrogateescape")
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _strip_prefix(path: str) -> str:
    """``-p1`` as git apply does it: the first component (``a/``, ``b/``) goes."""
    return path.split("/", 1)[1] if "/" in path else path


def _git_line_names(rest: str) -> list[str]:
    """The two names of a ``diff --git`` line, when they can be told apart."""
    if rest.startswith('"'):
        end = rest.find('" ', 1)
        while end > 0 and rest[end - 1] == "\\":
            end = rest.find('" ', end + 1)
        if end < 0:
            return []
        return [_strip_prefix(_unquote(rest[: end + 1])), _strip_prefix(_unquote(rest[end + 2 :]))]
    if rest.endswith('"') and ' "' in rest:
        first, second = rest.rsplit(' "', 1)
        return [_strip_prefix(first), _strip_prefix(_unquote('"' + second))]
    n = (len(rest) - 5) // 2  # "a/P b/P": the same name twice
    if rest[:2] == "a/" and rest[2 + n : 5 + n] == " b/" and rest[2 : 2 + n] == rest[5 + n :]:
        return [rest[2 : 2 + n]]
    return []  # renames and copies: their own header lines name both sides


def plan(diff: str) -> tuple[set[str], set[str]]:
    """(paths the diff writes, paths it reads) — raises ``UserError`` for a symbolic link."""
    writes: set[str] = set()
    reads: set[str] = set()
    for raw in diff.splitlines():
        line = raw.rstrip("\r")
        if line.startswith("diff --git "):
            writes.update(_git_line_names(line[len("diff --git ") :]))
        elif line.startswith(("--- ", "+++ ")):
            name = line[4:].split("\t", 1)[0]
            if name != "/dev/null":
                (reads if line.startswith("---") else writes).add(_strip_prefix(_unquote(name)))
        elif line.startswith(("copy from ", "rename from ")):
            source = _unquote(line.split(" from ", 1)[1])
            reads.add(source)
            if line.startswith("rename"):
                writes.add(source)  # a rename deletes its source
        elif line.startswith(("copy to ", "rename to ")):
            writes.add(_unquote(line.split(" to ", 1)[1]))
        elif line.startswith(("new file mode 120000", "new mode 120000")):
            raise UserError("the task's diff creates a symbolic link; nothing was applied (inspect it with "
                            "`codexbro cloud diff`, and apply it with git yourself if you trust it)")  # fmt: skip
    return writes, reads


def _check_paths(root: Path, git_dirs: list[Path], writes: set[str], reads: set[str]) -> None:
    for name in sorted(writes | reads):
        what = "reads" if name in reads and name not in writes else "writes"
        parts = name.split("/")
        if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise UserError(f"the task's diff {what} {name!r}, outside this work tree; nothing was applied")
        if any(p.lower().rstrip(". ") == ".git" for p in parts):
            raise UserError(
                f"the task's diff {what} {name!r}, inside git's own directory; nothing was applied"
            )
        step = root
        for part in parts:
            step = step / part
            if step.is_symlink():
                raise UserError(f"the task's diff {what} {name!r} through the symbolic link {step}; nothing "
                                "was applied")  # fmt: skip
        real = Path(os.path.realpath(root / name))
        if not (real == root or root in real.parents):
            raise UserError(f"the task's diff {what} {name!r}, outside this work tree; nothing was applied")
        for git_dir in git_dirs:
            if real == git_dir or git_dir in real.parents:
                raise UserError(f"the task's diff {what} {name!r}, inside git's own directory ({git_dir}); "
                                "nothing was applied")  # fmt: skip


def _git_dirs(root: Path) -> list[Path]:
    proc = _git(["rev-parse", "--absolute-git-dir", "--git-common-dir"], root)
    found = []
    for line in proc.stdout.splitlines():
        path = Path(line) if os.path.isabs(line) else root / line
        found.append(Path(os.path.realpath(path)))
    return found


# ---- putting things back when git fails half-way ----------------------------------------------------


class _Journal:
    """What each path the diff touches held before: put back if the apply fails."""

    def __init__(self, root: Path, names: set[str]) -> None:
        self.root = root
        self.saved: dict[Path, tuple[bytes, int] | None] = {}  # None: it did not exist
        self.made_dirs: list[Path] = []
        for name in names:
            path = root / name
            try:
                st = path.lstat()
            except FileNotFoundError:
                self.saved[path] = None
                parent = path.parent
                while parent != root and not parent.exists():
                    self.made_dirs.append(parent)
                    parent = parent.parent
                continue
            if stat.S_ISREG(st.st_mode):
                self.saved[path] = (path.read_bytes(), stat.S_IMODE(st.st_mode))

    def restore(self) -> None:
        for path, before in self.saved.items():
            if before is None:
                if path.is_symlink() or path.is_file():
                    path.unlink()
                elif path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            path.write_bytes(before[0])
            os.chmod(path, before[1])
        for directory in sorted(set(self.made_dirs), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()


# ---- applying ---------------------------------------------------------------------------------------


def apply_diff(diff: str, cwd: Path, *, three_way: bool = False, check_only: bool = False) -> ApplyResult:
    if not is_unified_diff(diff):
        raise UserError("the task's diff is not a unified git diff; nothing was applied")
    root = Path(os.path.realpath(work_tree(cwd)))
    writes, reads = plan(diff)
    _check_paths(root, _git_dirs(root), writes, reads)
    with tempfile.TemporaryDirectory(prefix="codexbro-apply-") as tmp:
        patch = Path(tmp) / "task.diff"
        patch.write_text(
            diff if diff.endswith("\n") else diff + "\n", encoding="utf-8", errors="surrogateescape"
        )
        check = _git(["apply", "--check", "--verbose", str(patch)], root)
        if check.returncode == 0:
            names, summary = _account(patch, root)
            if check_only:
                return ApplyResult(
                    "checked", applied=names, summary=summary, output=check.stdout + check.stderr
                )
            journal = _Journal(root, writes | reads)
            done = _git(["apply", "--verbose", str(patch)], root)
            if done.returncode != 0:  # git failed half-way (or the tree changed since the check)
                journal.restore()
                failed = _failures(done.stderr) or {
                    "(apply)": "git failed while writing; every file was put back"
                }
                return ApplyResult("refused", failed=failed, output=done.stdout + done.stderr)
            return ApplyResult("applied", applied=names, summary=summary, output=done.stdout + done.stderr)
        failed = _failures(check.stderr)
        if not three_way or check_only:
            return ApplyResult("refused", failed=failed, output=check.stdout + check.stderr)
        return _three_way(patch, root, tmp, failed)


def _three_way(patch: Path, root: Path, tmp: str, failed_check: dict[str, str]) -> ApplyResult:
    env = _private_index(root, tmp)
    merged = _git(["apply", "--3way", "--verbose", str(patch)], root, env)
    out = merged.stdout + merged.stderr
    applied: list[str] = []
    conflicts: list[str] = []
    for line in (ln.strip() for ln in out.splitlines()):
        for pattern in _APPLIED:
            if (match := pattern.match(line)) is not None:
                applied.append(match[1])
        for pattern in _CONFLICT:
            if (match := pattern.match(line)) is not None and match[1] not in conflicts:
                conflicts.append(match[1])
    applied = [a for a in dict.fromkeys(applied) if a not in conflicts]
    failed = {
        f: why
        for f, why in _failures(merged.stderr, fallback=False).items()
        if f not in conflicts and f not in applied
    }
    if merged.returncode == 0 and not conflicts:
        names, summary = _account(patch, root)
        return ApplyResult("applied", applied=names, summary=summary, output=out)
    if merged.returncode != 0 and not conflicts:  # git wrote nothing
        return ApplyResult("refused", failed=failed or failed_check, output=out)
    return ApplyResult("conflicts", applied=applied, conflicts=conflicts, failed=failed, output=out)


def _account(patch: Path, root: Path) -> tuple[list[str], list[str]]:
    """git's own account of the diff: each file (a rename as ``old => new``) and its summary lines
    (created, deleted, renamed, copied, mode changes)."""
    numstat = _git(["apply", "--numstat", "-z", str(patch)], root).stdout
    names: list[str] = []
    fields = numstat.split("\0")
    i = 0
    while i < len(fields):
        entry = fields[i]
        if not entry:
            i += 1
            continue
        parts = entry.split("\t", 2)
        if len(parts) == 3 and parts[2]:
            names.append(parts[2])
            i += 1
        elif len(parts) == 3 and i + 2 < len(fields):  # a rename or copy: source and destination follow
            names.append(f"{fields[i + 1]} => {fields[i + 2]}")
            i += 3
        else:
            i += 1
    summary = [
        ln.strip() for ln in _git(["apply", "--summary", str(patch)], root).stdout.splitlines() if ln.strip()
    ]
    return names, summary


def _failures(stderr: str, *, fallback: bool = True) -> dict[str, str]:
    failed: dict[str, str] = {}
    for line in stderr.splitlines():
        for pattern, why in _FAILED:
            match = pattern.match(line.strip())
            if match and match[1] not in failed:
                failed[match[1]] = why
    if fallback and not failed and stderr.strip():
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
    return run_git(args, cwd, env=env)

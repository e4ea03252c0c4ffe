"""What in a repository's own metadata would make the user's next ``git`` command run code a
sandboxed command planted in the workspace — beyond ``.git`` at the top of a root (``policy.py``).

Git runs code from the work tree when its (protected) metadata tells it to, and finds repositories
where the work tree says they are:

- **submodules**: ``git status`` in the superproject runs ``status`` in every populated submodule,
  whose repository is named by ``<path>/.git`` — a file in the work tree. Re-pointed at a planted
  git directory, its ``core.fsmonitor`` runs on the user's next ``git status``. Every gitlink in
  the index (nested submodules too) has its ``.git`` protected (a placeholder when it is missing).
- **a bare repository at the top**: in a root that is not a repository (its ``.git`` is the empty
  placeholder), git takes the root itself for a bare repository once ``HEAD``, ``objects`` and
  ``refs`` exist there, with its ``config``. ``HEAD`` gets a placeholder directory (git rejects a
  directory as ``HEAD``); an existing ``HEAD`` file there cannot be kept from being used, and is
  refused.
- **paths the config names**: ``core.hooksPath`` (husky's ``.husky/_``), ``include.path``, and the
  programs of ``core.fsmonitor``, filters, diff and merge drivers, editors, pagers and helpers — when
  they lie in a root, they are protected (a placeholder for a hook directory that is missing).

The index is read directly (versions 2–4, SHA-1 and SHA-256), cached by size and mtime.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from msgspec import Struct, field

MAX_DEPTH = 4
_INDEX_CACHE: dict[tuple[str, int, int, int], list[str]] = {}
_GITLINK = 0o160000
# Config keys whose value is a path (relative to the work tree), or a command line whose
# path-like words are programs git runs.
PATH_KEYS = ("core.hookspath",)
INCLUDE_KEY = re.compile(r"^(include|includeif\..*)\.path$")
COMMAND_KEYS = re.compile(
    r"^(core\.(fsmonitor|sshcommand|editor|pager|askpass)|sequence\.editor|gpg(\..*)?\.program"
    r"|credential(\..*)?\.helper|filter\..*\.(clean|smudge|process)|diff\..*\.(textconv|command)"
    r"|merge\..*\.driver|pager\..*|alias\..*)$"
)


class Exposure(Struct):
    protect: list[Path] = field(default_factory=list)  # existing paths to keep read-only
    placeholders: list[Path] = field(default_factory=list)  # missing directories to hold
    problems: list[str] = field(default_factory=list)  # layouts that cannot be kept safe


def _within(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def gitdir_of(worktree: Path) -> Path | None:
    """The repository of a work tree: ``.git`` itself, or what a ``.git`` file names."""
    dotgit = worktree / ".git"
    if dotgit.is_dir() and not dotgit.is_symlink():
        return dotgit if (dotgit / "HEAD").exists() else None
    try:
        text = dotgit.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    gitdir = _real(worktree / text.removeprefix("gitdir:").strip())
    return gitdir if gitdir.is_dir() else None


def _common_dir(gitdir: Path) -> Path:
    try:
        common = (gitdir / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        return gitdir
    return _real(gitdir / common)


# ---- the index -------------------------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    c = data[pos]
    pos += 1
    value = c & 0x7F
    while c & 0x80:
        value += 1
        c = data[pos]
        pos += 1
        value = (value << 7) + (c & 0x7F)
    return value, pos


def gitlinks(index: Path, hash_len: int = 20) -> list[str]:
    """The paths of the submodules (gitlinks) an index records; [] for a missing or bad index."""
    try:
        st = index.stat()
    except OSError:
        return []
    key = (str(index), st.st_size, st.st_mtime_ns, hash_len)
    if key in _INDEX_CACHE:
        return _INDEX_CACHE[key]
    try:
        found = _parse_gitlinks(index.read_bytes(), hash_len)
    except (OSError, ValueError, IndexError):
        found = []
    _INDEX_CACHE[key] = found
    return found


def _parse_gitlinks(data: bytes, hash_len: int) -> list[str]:
    if data[:4] != b"DIRC":
        return []
    version = int.from_bytes(data[4:8], "big")
    count = int.from_bytes(data[8:12], "big")
    if version not in (2, 3, 4):
        return []
    pos, previous, found = 12, b"", []
    fixed = 40 + hash_len  # ctime, mtime, dev, ino, mode, uid, gid, size; then the object id
    for _ in range(count):
        start = pos
        mode = int.from_bytes(data[pos + 24 : pos + 28], "big")
        pos += fixed
        flags = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if version >= 3 and flags & 0x4000:
            pos += 2
        if version == 4:
            strip, pos = _varint(data, pos)
            end = data.index(b"\0", pos)
            name = previous[: len(previous) - strip] + data[pos:end]
            pos = end + 1
        else:
            end = data.index(b"\0", pos)
            name = data[pos:end]
            pos = start + ((end - start + 8) & ~7)
        previous = name
        if mode & 0o170000 == _GITLINK:
            found.append(os.fsdecode(name))
    return found


# ---- the config -------------------------------------------------------------------------------------


def config_entries(path: Path) -> list[tuple[str, str]]:
    """(``section[.subsection].key`` lower-cased but for the subsection, value) from a git config
    file, tolerantly: a line it cannot read is skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out: list[tuple[str, str]] = []
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = pending + raw
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending = line[:-1]
            continue
        pending = ""
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            match = re.match(r'\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]', line)
            if match:
                name, sub = match.group(1).lower(), match.group(2)
                section = f"{name}.{sub}" if sub is not None else name
                line = line[match.end() :].strip()
                if not line:
                    continue
            else:
                continue
        key, _, value = line.partition("=")
        out.append((f"{section}.{key.strip().lower()}", _unquote(value.strip()) if _ else "true"))
    return out


def _unquote(value: str) -> str:
    out, quoted, i = [], False, 0
    while i < len(value):
        c = value[i]
        if c == '"':
            quoted = not quoted
        elif c == "\\" and i + 1 < len(value):
            i += 1
            out.append({"n": "\n", "t": "\t", "b": "\b"}.get(value[i], value[i]))
        elif c in "#;" and not quoted:
            break
        else:
            out.append(c)
        i += 1
    return "".join(out).strip()


def _program_words(command: str) -> list[str]:
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return [w for w in words if "/" in w or w.startswith(".")]


# ---- what a root exposes ----------------------------------------------------------------------------


def exposures(roots: list[Path]) -> Exposure:
    found = Exposure()
    for root in roots:
        gitdir = gitdir_of(root)
        if gitdir is None:
            _bare_guard(root, found)
            continue
        _scan(root, gitdir, roots, found, depth=0)
    return found


def _bare_guard(root: Path, found: Exposure) -> None:
    head = root / "HEAD"
    if head.is_symlink() or (head.exists() and not head.is_dir()):
        found.problems.append(
            f"{head} exists at the top of {root}, which is not a git repository: a command could make "
            "the directory itself a (bare) repository whose config runs commands in your next `git`"
        )
    elif head.is_dir():
        found.protect.append(head)
    else:
        found.placeholders.append(head)


def _scan(worktree: Path, gitdir: Path, roots: list[Path], found: Exposure, depth: int) -> None:
    common = _common_dir(gitdir)
    entries = [*config_entries(common / "config"), *config_entries(gitdir / "config.worktree")]
    hash_len = 32 if any(k == "extensions.objectformat" and v.lower() == "sha256" for k, v in entries) else 20
    for key, value in entries:
        if key in PATH_KEYS:
            _guard_path(Path(os.path.expanduser(value)), worktree, roots, found, directory=True)
        elif INCLUDE_KEY.match(key):
            _guard_path(Path(os.path.expanduser(value)), common, roots, found, directory=False)
        elif COMMAND_KEYS.match(key):
            for word in _program_words(value):
                _guard_path(Path(os.path.expanduser(word)), worktree, roots, found, directory=False)
    if depth >= MAX_DEPTH:
        return
    for rel in gitlinks(gitdir / "index", hash_len):
        sub = worktree / rel
        dotgit = sub / ".git"
        if not any(_within(sub, r) for r in roots):
            continue
        if sub.is_symlink() or dotgit.is_symlink():
            found.problems.append(f"the submodule path {sub} goes through a symbolic link")
            continue
        if dotgit.exists():
            found.protect.append(dotgit)
            nested = gitdir_of(sub)
            if nested is not None:
                _scan(sub, nested, roots, found, depth + 1)
        elif sub.is_dir():
            found.placeholders.append(dotgit)
        elif not sub.exists():
            found.placeholders.append(sub)


def _guard_path(value: Path, base: Path, roots: list[Path], found: Exposure, *, directory: bool) -> None:
    path = Path(os.path.normpath(base / value))
    real = _real(path)
    if not any(_within(real, r) or _within(path, r) for r in roots):
        return
    if path.is_symlink():
        found.problems.append(f"{path}, which git's config names, is a symbolic link")
    elif path.exists():
        found.protect.append(real)
    elif directory and path.parent.is_dir():
        found.placeholders.append(path)
    else:
        found.problems.append(f"{path}, which git's config names, does not exist (a command could create it)")

"""Sandbox policy as data: writable roots, protected and hidden paths, and the patch-safety decision
. The enforcement for spawned processes is in ``linux.py``; this
module is what it, and apply_patch's approval decision, consult.

Paths are resolved the way the kernel resolves them (``physical``): a symlink is followed *before*
a ``..`` after it, so ``link/../file`` means "the parent of the link's target", not ``file``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from msgspec import Struct

from codexbro.config.types import SandboxWorkspaceWrite
from codexbro.config.values import PatchVerdict

# Inside a writable root these stay read-only (agent metadata and version control), existing or not.
PROTECTED_NAMES = (".git", ".codex", ".codexbro", ".agents")
log = logging.getLogger(__name__)
# Files in an agent home that hold credentials.
CREDENTIAL_FILES = ("auth.json", ".credentials.json")


def writable_roots(mode: str, sww: SandboxWorkspaceWrite, cwd: Path) -> list[Path]:
    """The roots a ``workspace-write`` sandbox lets the agent write; ``[]`` for read-only.

    Computed again at every turn, so a root is only what it is *now*: one that does not exist is left
    out (a command could create it as a link to anywhere), and so is one whose path goes through a
    symbolic link that lies in another root (a command could re-point the link — `TMPDIR` inside
    the workspace, a configured root reached through a link there). Both are logged."""
    if mode != "workspace-write":
        return []
    extra = [Path(r) for r in sww.writable_roots]
    if not sww.exclude_slash_tmp:
        extra.append(Path("/tmp"))
    tmpdir = os.environ.get("TMPDIR")
    if tmpdir and not sww.exclude_tmpdir_env_var:
        extra.append(Path(tmpdir))
    base = physical(cwd)
    lexical = [Path(os.path.normpath(os.path.join(os.getcwd(), r))) for r in extra]
    candidates = [base, *(physical(r) for r in lexical if os.path.isdir(r))]
    out = [base]
    for raw, root in zip(extra, lexical, strict=True):
        resolved = physical(root)
        if resolved in out:
            continue
        if not resolved.is_dir():
            log.info("writable root %s does not exist: left out", raw)
            continue
        link = _link_in(root, [c for c in candidates if c != resolved])
        if link is not None:
            log.warning(
                "writable root %s goes through the link %s inside another writable root: left out", raw, link
            )
            continue
        out.append(resolved)
    return out


def _link_in(path: Path, roots: list[Path]) -> Path | None:
    """The first symbolic link on ``path`` that lies in one of ``roots`` (a command could re-point it)."""
    step = Path(path.parts[0])
    for part in path.parts[1:]:
        step = step / part
        if step.is_symlink() and any(_within(physical(step.parent), r) for r in roots):
            return step
    return None


def physical(path: Path | str) -> Path:
    """Absolute, every existing symlink followed, each ``..`` applied to what it follows."""
    return Path(os.path.realpath(os.path.join(os.getcwd(), path)))


def _gitdir_text(dotgit: Path) -> str | None:
    try:
        text = dotgit.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line.removeprefix("gitdir:").strip() if line.startswith("gitdir:") else None


def _gitdir_of(dotgit: Path) -> list[Path]:
    """The git directory a ``.git`` *file* points to (worktrees, submodules) and its common dir."""
    raw = _gitdir_text(dotgit)
    if raw is None:
        return []
    gitdir = physical(dotgit.parent / raw)
    found = [gitdir]
    try:
        common = (gitdir / "commondir").read_text(encoding="utf-8").strip()
        found.append(physical(gitdir / common))
    except OSError:
        pass
    return found


def protected_paths(roots: list[Path]) -> list[Path]:
    """Every protected path of ``roots``, existing or not: each name at the top of each root, what a
    symlinked name points to, and the git directory a ``.git`` file points to."""
    out: list[Path] = []
    for root in roots:
        for name in PROTECTED_NAMES:
            entry = root / name
            out.append(entry)
            if entry.is_symlink():
                out.append(physical(entry))
            if name == ".git" and entry.is_file():
                out += _gitdir_of(entry)
    return out


def unprotectable(roots: list[Path]) -> list[str]:
    """Why protected paths in ``roots`` cannot be kept protected — a mount protects what a link
    points to, not the link: a protected name that is a symbolic link; a ``.git`` file whose git
    directory path goes through a link inside a root (a command could re-point it), or names a
    directory inside a root that does not exist yet (a command could create it)."""
    problems = []
    for root in roots:
        for name in PROTECTED_NAMES:
            if (root / name).is_symlink():
                problems.append(f"{root / name} is a symbolic link")
        dotgit = root / ".git"
        if dotgit.is_symlink() or not dotgit.is_file():
            continue
        raw = _gitdir_text(dotgit)
        if raw is None:
            continue
        lexical = Path(os.path.abspath(dotgit.parent / raw))
        for step in (lexical, *lexical.parents):
            if step.is_symlink() and any(_within(step, r) for r in roots):
                problems.append(f"the git directory named in {dotgit} goes through a symbolic link ({step})")
                break
        gitdir = physical(lexical)
        if not gitdir.exists() and any(_within(gitdir, r) for r in roots):
            problems.append(f"the git directory named in {dotgit} ({gitdir}) does not exist")
    return problems


def agent_install(roots: list[Path]) -> list[Path]:
    """codexbro's own interpreter and code where they lie inside a writable root (a project venv, an
    editable install): a command must not change what the agent itself runs — a ``.pth`` file, a
    module it has yet to import."""
    import sys

    found = []
    for entry in {sys.prefix, sys.exec_prefix, *sys.path}:
        if not entry or not os.path.isdir(entry):
            continue
        path = physical(entry)
        if any(_within(path, r) and path != r for r in roots) and path not in found:
            found.append(path)
    return found


def hidden_dirs(home: Path | None) -> list[Path]:
    """Directories sandboxed commands must not read: the agent's home and upstream Codex's, each as
    a whole (credentials, sessions, logs, config). Writable roots inside one stay reachable: the
    backends bind them again over the cover. A directory is covered, not each credential file — a
    file cover would not survive the file being replaced by rename (as a token refresh saves it)."""
    dirs: list[Path] = []
    for candidate in (home, Path.home() / ".codex"):
        if candidate is None:
            continue
        path = physical(candidate)
        if path.is_dir() and path not in dirs:
            dirs.append(path)
    return dirs


def _within(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def is_hidden(path: Path, home: Path | None) -> bool:
    """Whether the agent must not read ``path`` on the model's behalf (its credential files)."""
    target = physical(path)
    homes = [physical(home)] if home is not None else []
    homes.append(physical(Path.home() / ".codex"))
    return any(target == h / name for h in homes for name in CREDENTIAL_FILES)


def is_protected(path: Path, roots: list[Path], home: Path | None = None) -> bool:
    """Agent metadata, version control or the agent's home: never written without the user's say."""
    target = physical(path)
    if home is not None and _within(target, physical(home)):
        return True
    return any(_within(target, p) for p in protected_paths(roots))


def is_writable(path: Path, roots: list[Path], home: Path | None = None) -> bool:
    target = physical(path)
    return not is_protected(target, roots, home) and any(_within(target, root) for root in roots)


class PatchDecision(Struct, frozen=True):
    """What the policy decided for one patch, and why."""

    verdict: PatchVerdict
    reason: str = ""


def assess_patch(
    paths: list[Path], *, mode: str, approval: str, roots: list[Path], home: Path | None = None
) -> PatchDecision:
    if not paths:
        return PatchDecision("reject", "empty patch")
    if approval == "untrusted":
        return PatchDecision("ask", "every write needs approval under the untrusted policy")
    if mode == "danger-full-access":
        return PatchDecision("auto")
    protected = [p for p in paths if is_protected(p, roots, home)]
    if protected:
        # Whatever the backend enforces, a protected path is never written on the policy's say-so.
        if approval == "never":
            return PatchDecision(
                "reject",
                f"patch rejected: {protected[0]} is a protected path; rejected by user approval settings",
            )
        return PatchDecision("ask", f"{protected[0]} is a protected path (version control or agent metadata)")
    outside = [p for p in paths if not is_writable(p, roots, home)]
    if not outside or approval == "on-failure":
        return PatchDecision("auto")
    if approval == "never":
        if mode == "read-only":
            return PatchDecision(
                "reject",
                "patch rejected: writing is blocked by read-only sandbox; rejected by user approval settings",
            )
        return PatchDecision(
            "reject",
            f"patch rejected: {outside[0]} is outside the writable roots or protected; "
            "rejected by user approval settings",
        )
    return PatchDecision("ask", f"{outside[0]} is outside the writable roots or protected")


class SandboxSpec(Struct, frozen=True):
    """What a sandboxed process may do. Protected and hidden paths are looked up at each spawn."""

    mode: str
    writable: tuple[str, ...]
    network: bool
    home: str | None = None
    owner: str = ""  # the session: each has its own containers

    @property
    def env_markers(self) -> dict[str, str]:
        return {} if self.network else {"CODEX_SANDBOX_NETWORK_DISABLED": "1"}


def spec_for(
    mode: str, sww: SandboxWorkspaceWrite, cwd: Path, home: Path | None = None, owner: str = ""
) -> SandboxSpec | None:
    """The spec for a policy; None for ``danger-full-access`` (no sandbox)."""
    if mode == "danger-full-access":
        return None
    roots = writable_roots(mode, sww, cwd)
    network = mode == "workspace-write" and sww.network_access
    return SandboxSpec(mode, tuple(str(r) for r in roots), network, str(home) if home else None, owner)

"""Sandbox policy as data: writable roots, protected paths, and the patch-safety decision
(reference tool-side §2.6, §3.1). Enforcement for spawned processes (Landlock, seccomp,
bubblewrap) and interactive approvals are issue 4; this module is what they will consult.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from codexbro.config.types import SandboxWorkspaceWrite

# Inside a writable root these stay read-only (agent metadata and version control).
PROTECTED_NAMES = (".git", ".codex", ".codexbro", ".agents")


def writable_roots(mode: str, sww: SandboxWorkspaceWrite, cwd: Path) -> list[Path]:
    """The roots a ``workspace-write`` sandbox lets the agent write; ``[]`` for read-only."""
    if mode != "workspace-write":
        return []
    roots = [cwd, *(Path(r) for r in sww.writable_roots)]
    if not sww.exclude_slash_tmp:
        roots.append(Path("/tmp"))
    tmpdir = os.environ.get("TMPDIR")
    if tmpdir and not sww.exclude_tmpdir_env_var:
        roots.append(Path(tmpdir))
    return [_norm(r) for r in roots]


def _norm(path: Path) -> Path:
    """Absolute, with ``..`` resolved lexically and symlinks of existing parents followed."""
    path = Path(os.path.abspath(path))
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        return existing.resolve() / path.relative_to(existing)
    except (OSError, ValueError):
        return path


def is_writable(path: Path, roots: list[Path]) -> bool:
    target = _norm(path)
    for root in roots:
        try:
            rel = target.relative_to(root)
        except ValueError:
            continue
        return not (rel.parts and rel.parts[0] in PROTECTED_NAMES)
    return False


@dataclass(frozen=True)
class PatchDecision:
    verdict: str  # auto | ask | reject
    reason: str = ""


def assess_patch(paths: list[Path], *, mode: str, approval: str, roots: list[Path]) -> PatchDecision:
    if not paths:
        return PatchDecision("reject", "empty patch")
    if approval == "untrusted":
        return PatchDecision("ask", "every write needs approval under the untrusted policy")
    if mode == "danger-full-access":
        return PatchDecision("auto")
    outside = [p for p in paths if not is_writable(p, roots)]
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
    return PatchDecision("ask", f"{outside[0]} is outside the writable roots")

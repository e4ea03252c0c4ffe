"""What a sandbox arranges for one spawn: writable roots, read-only (protected) paths, pinned
directories, hidden directories — computed from the policy on the host, then built by a backend.

- **protected** (read-only binds): the names ``policy.protected_paths`` lists, what
  ``gitguard.exposures`` finds (submodules' ``.git``, a ``HEAD`` placeholder, paths git's config
  names), codexbro's own install inside a root, and the directory holding a link on the way to the
  agent's home or code (``link_guards``).
- **pinned** (writable binds of a directory onto itself): every directory between a root and a
  protected or hidden path deeper inside it. A mount point cannot be renamed or removed (EBUSY), so
  ``mv vendor elsewhere`` cannot carry ``vendor/lib/.git`` out from under its cover and leave a
  fresh, unprotected ``vendor/lib/.git`` to create — while the directories stay writable.
- **hidden**: the agent's home and upstream Codex's (``policy.hidden_dirs``), covered as a whole;
  writable roots inside a hidden directory are bound again on top of the cover (the landlock
  backend hides by withholding read rights, and grants them to such roots).

A layout that cannot be kept safe raises ``SandboxUnavailable`` with the reason and the fix.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from msgspec import Struct, field

from codexbro.sandbox import gitguard, placeholders
from codexbro.sandbox.policy import agent_install, hidden_dirs, physical, protected_paths, unprotectable


class SandboxUnavailable(Exception):
    """No backend can enforce the policy on this machine; the message says what to do."""


class Layout(Struct):
    """Existing paths the sandbox must arrange (placeholders made for missing protected names)."""

    writable: list[str]
    protected: list[str]
    hidden_dirs: list[str]
    pinned: list[str] = field(default_factory=list)

    def inside(self, top: str) -> list[str]:
        """The writable roots beneath ``top`` (outermost only): bound again over a hidden cover."""
        prefix = top.rstrip("/") + "/"
        inner = [w for w in self.writable if w.startswith(prefix)]
        return [w for w in inner if not any(w.startswith(o.rstrip("/") + "/") for o in inner if o != w)]


def _within(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def link_guards(paths: list[str], roots: list[Path]) -> tuple[list[Path], list[str]]:
    """For paths as the agent uses them (its home, its ``sys.path``), each symbolic link on the way
    that lies in a writable directory could be re-pointed: the directory holding it is made
    read-only; a link directly in a root cannot be kept (a problem)."""
    protect: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        lexical = Path(os.path.normpath(os.path.abspath(raw)))
        step = Path(lexical.parts[0])
        for part in lexical.parts[1:]:
            step = step / part
            if not step.is_symlink():
                continue
            holder = physical(step.parent)
            root = next((r for r in roots if _within(holder, r)), None)
            if root is None:
                continue
            if holder == root:
                problems.append(
                    f"{raw} goes through the symbolic link {step}, directly in the writable root {root}"
                )
            elif holder not in protect:
                protect.append(holder)
    return protect, problems


def _own_sys_path(roots: list[Path]) -> list[str]:
    """``sys.path`` without entries a command could fill: a root itself, or a directory inside a
    root that does not exist (yet). Raises when codexbro's own code lives directly in a root."""
    import codexbro

    package = physical(Path(codexbro.__file__).parent)
    kept = []
    for entry in sys.path:
        path = physical(entry or os.getcwd())
        if path in roots:
            if package.parent == path:
                raise SandboxUnavailable(
                    f"codexbro's own code is imported from {path}, a writable root: a command could "
                    "replace a module the agent has yet to import. Install codexbro outside the workspace"
                )
            continue
        if not os.path.isdir(path) and any(_within(path, r) for r in roots):
            continue
        kept.append(entry)
    if len(kept) != len(sys.path):
        sys.path[:] = kept
    return kept


def layout(writable: tuple[str, ...], home: str | None) -> Layout:
    roots = [Path(r) for r in writable if os.path.isdir(r)]
    exposure = gitguard.exposures(roots)
    own_path = _own_sys_path(roots)
    agent_paths = [home] if home else []
    agent_paths += [p for p in {sys.prefix, sys.exec_prefix, *own_path} if p]
    link_protect, link_problems = link_guards(agent_paths, roots)
    problems = [*unprotectable(roots), *exposure.problems, *link_problems]
    if problems:
        raise SandboxUnavailable(
            f"{problems[0]}: the sandbox can keep what exists read-only, but not a link (a command "
            "could re-point it) or a path that does not exist yet where it cannot hold a placeholder (a "
            "command could create it) — at stake, git metadata, codexbro's config or its own code. Make it a "
            "real directory or file, or use --sandbox read-only"
        )
    protected: list[str] = []
    for path in protected_paths(roots):
        if path.is_symlink():
            protected.append(str(path))  # its target is in the list too
        elif path.is_dir() or (not path.exists() and path.parent in roots):
            if placeholders.hold(str(path)):
                protected.append(str(path))
        elif path.exists():
            protected.append(str(path))
    for path in exposure.placeholders:
        if not placeholders.hold(str(path)):
            raise SandboxUnavailable(f"could not hold a placeholder at {path}, which git would use")
        protected.append(str(path))
    protected += [str(p) for p in (*exposure.protect, *agent_install(roots), *link_protect)]
    protected = list(dict.fromkeys(protected))
    dirs = hidden_dirs(Path(home) if home else None)
    for hidden in dirs:
        if hidden in roots:
            raise SandboxUnavailable(
                f"{hidden} is both a writable root and a directory the sandbox hides (the agent's home, "
                "with its credentials): set CODEXBRO_HOME elsewhere, or use --sandbox read-only"
            )
    pinned: list[str] = []
    for deep in (*(Path(p) for p in protected), *dirs):
        for root in roots:
            if root not in deep.parents:
                continue
            step = root
            for part in deep.relative_to(root).parts[:-1]:
                step = step / part
                if str(step) not in protected and str(step) not in pinned:
                    pinned.append(str(step))
    pinned.sort(key=lambda p: p.count("/"))
    return Layout([str(r) for r in roots], protected, [str(d) for d in dirs], pinned)

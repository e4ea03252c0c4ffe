"""AGENTS.md discovery: from the project root down to the cwd, the first
of ``AGENTS.override.md``, ``AGENTS.md`` and the configured fallback names in each directory,
joined root-first and capped at ``project_doc_max_bytes`` (default 32 KiB; 0 disables). A global
``$CODEXBRO_HOME/AGENTS.md`` comes first. The result is one user message shaped as upstream's.
"""

from __future__ import annotations

from pathlib import Path

from msgspec import Struct

PRIMARY = ("AGENTS.override.md", "AGENTS.md")
SEPARATOR = "\n\n--- project-doc ---\n\n"


class ProjectDocs(Struct, frozen=True):
    text: str
    sources: tuple[str, ...]
    truncated: bool


def is_git_marker(path: Path) -> bool:
    """A real ``.git``: a directory with a ``HEAD``, or a ``gitdir:`` file (worktrees, submodules).
    An empty ``.git`` directory — a sandbox placeholder, codexbro's or upstream Codex's — is not."""
    if path.is_dir():
        return (path / "HEAD").exists()
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(8) == "gitdir: "
    except OSError:
        return False


def _has_marker(directory: Path, marker: str) -> bool:
    path = directory / marker
    return is_git_marker(path) if marker == ".git" else path.exists()


def project_root(cwd: Path, markers: tuple[str, ...] = (".git",)) -> Path:
    for directory in (cwd, *cwd.parents):
        if any(_has_marker(directory, m) for m in markers):
            return directory
    return cwd


def discover(
    cwd: Path, *, home: Path, max_bytes: int = 32 * 1024, fallback_names: tuple[str, ...] = (),
    markers: tuple[str, ...] = (".git",),
) -> ProjectDocs | None:  # fmt: skip
    if max_bytes <= 0:
        return None
    cwd = cwd.resolve()
    root = project_root(cwd, markers)
    chain = [cwd, *cwd.parents]
    dirs = list(reversed(chain[: chain.index(root) + 1])) if root in chain else [cwd]
    parts: list[str] = []
    sources: list[str] = []
    for directory in dirs:
        for name in (*PRIMARY, *fallback_names):
            candidate = directory / name
            if candidate.is_file():
                try:
                    text = candidate.read_text(encoding="utf-8", errors="replace").strip()
                except OSError:
                    continue
                if text:
                    parts.append(text)
                    sources.append(str(candidate))
                break
    project = "\n\n".join(parts)
    budget = max_bytes
    raw = project.encode()
    truncated = len(raw) > budget
    if truncated:
        project = raw[:budget].decode("utf-8", "ignore")
    global_doc = home / "AGENTS.md"
    user = ""
    if global_doc.is_file():
        user = global_doc.read_text(encoding="utf-8", errors="replace").strip()
        if user:
            sources.insert(0, str(global_doc))
    text = SEPARATOR.join(t for t in (user, project) if t)
    if not text:
        return None
    return ProjectDocs(text, tuple(sources), truncated)


def as_message_text(docs: ProjectDocs, cwd: Path) -> str:
    return f"# AGENTS.md instructions for {cwd}\n\n<INSTRUCTIONS>\n{docs.text}\n</INSTRUCTIONS>"

"""``@`` file mentions: the workspace's files (what git tracks or would, so .gitignore is respected;
outside git a bounded walk that skips hidden and dependency folders) and a fuzzy match over them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SKIP_DIRS = {"node_modules", "__pycache__", ".venv", "venv", "target", "dist", "build"}
WALK_LIMIT = 20_000


def workspace_files(cwd: Path) -> list[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=cwd, capture_output=True, timeout=5, check=True,
        ).stdout  # fmt: skip
        return sorted(name for name in out.decode("utf-8", "replace").split("\0") if name)
    except (OSError, subprocess.SubprocessError):
        pass
    found: list[str] = []
    for root, dirs, files in os.walk(cwd):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        rel = Path(root).relative_to(cwd)
        found += [str(rel / f) if str(rel) != "." else f for f in sorted(files) if not f.startswith(".")]
        if len(found) >= WALK_LIMIT:
            break
    return found[:WALK_LIMIT]


def score(query: str, path: str) -> int | None:
    """How well ``path`` matches ``query`` as a subsequence (higher is better; None: no match).
    Consecutive letters, a match in the file name and a short path all count."""
    q, p = query.lower(), path.lower()
    name_start = p.rfind("/") + 1
    total, at, run = 0, 0, 0
    for ch in q:
        found = p.find(ch, at)
        if found < 0:
            return None
        run = run + 1 if found == at else 0
        total += 1 + 2 * run + (3 if found >= name_start else 0)
        at = found + 1
    if p[name_start:].startswith(q):
        total += 10
    return total * 100 - len(path)


def best(query: str, files: list[str], limit: int = 8) -> list[str]:
    ranked = [(s, f) for f in files if (s := score(query, f)) is not None]
    ranked.sort(key=lambda pair: (-pair[0], pair[1]))
    return [f for _s, f in ranked[:limit]]

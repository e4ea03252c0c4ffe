"""git as the cloud commands run it: hooks, fsmonitor and implicit bare repositories off — a
repository's own config must not run anything because codexbro looked at it or applied a diff."""

from __future__ import annotations

import subprocess
from pathlib import Path

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


def run_git(
    args: list[str], cwd: Path, *, env: dict[str, str] | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """``git ARGS`` in ``cwd`` (output as text, undecodable bytes kept); ``UserError`` when git is
    missing or does not finish in time."""
    try:
        return subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout_s,
                              check=False, env=env, errors="surrogateescape")  # fmt: skip
    except (FileNotFoundError, NotADirectoryError):
        raise UserError("git is not installed (or the directory is gone): it is needed here") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"git {args[0]} did not finish within {timeout_s:g} s") from None

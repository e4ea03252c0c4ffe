"""How the front ends show what the core reports — shared so that exec, the TUI and the servers
show a command the same way."""

from __future__ import annotations

import shlex


def display_command(argv: list[str]) -> str:
    """Shell-joined form for people (``/bin/bash -lc 'echo hi'``), as ``codex exec --json`` shows."""
    return shlex.join(argv)

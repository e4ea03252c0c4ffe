"""How the front ends show what the core reports — shared so that exec, the TUI and the servers
show a command the same way."""

from __future__ import annotations

import shlex


def display_command(argv: list[str]) -> str:
    """Shell-joined form for people (``/bin/bash -lc 'echo hi'``), as ``codex exec --json`` shows."""
    return shlex.join(argv)


def collab_summary(
    tool: str, receivers: list[str], agents_states: dict[str, dict[str, object]], prompt: str | None
) -> str:
    """One line for a finished collaboration call (``spawn_agent``, ``wait``, ``close_agent``…):
    which agents, in which state, and their last message (cut)."""
    parts = []
    for agent in receivers:
        state = agents_states.get(agent) or {}
        message = state.get("message")
        shown = f": {str(message)[:120]}" if message else ""
        parts.append(f"{agent[-8:]} {state.get('status', '?')}{shown}")
    ask = f" — {prompt[:80]}" if prompt else ""
    return f"agents: {tool}{ask} → " + ("; ".join(parts) if parts else "no agent")


_TEAM_VERBS = {"spawn": "spawned", "task": "gave a task to", "message": "sent a message to",
               "interrupt": "interrupted"}  # fmt: skip


def team_summary(kind: str, author: str, recipient: str, text: str | None) -> str:
    """One line for ``multi_agent_v2`` traffic: who did what to whom, and what was sent (cut)."""
    said = " ".join((text or "").split())
    said = f": {said[:117]}…" if len(said) > 120 else (f": {said}" if said else "")
    if kind == "answer":
        return f"agents: {author} answered {recipient}{said}"
    return f"agents: {author} {_TEAM_VERBS.get(kind, kind)} {recipient}{said}"

"""Small things the app needs: rate-limit text, the background's lightness, image paths in a
message, the in-memory trace, the workspace's git diff."""

from __future__ import annotations

from typing import Any


def limits_text(limits: Any) -> str:
    """The rate-limit windows the server reported (the ChatGPT backend sends them), or why none."""
    if not isinstance(limits, dict):
        return "(none reported yet)"
    parts = []
    for name in ("primary", "secondary"):
        window = limits.get(name)
        if isinstance(window, dict):
            minutes = window.get("window_minutes")
            span = f"{minutes / 60:g} h" if isinstance(minutes, int | float) else "window"
            parts.append(f"{name} {window.get('used_percent', 0):.0f}% used ({span})")
    return ", ".join(parts) or "(none reported yet)"


def light_background() -> bool:
    """The terminal says its background is light (``COLORFGBG`` as rxvt, xterm and others set it)."""
    import os

    parts = os.environ.get("COLORFGBG", "").split(";")
    return len(parts) >= 2 and parts[-1].isdigit() and int(parts[-1]) in (7, 15)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


def image_paths(text: str, cwd: Any) -> list[str]:
    """Image files named in a message (typed or pasted paths, quoted or not): attached to it."""
    from pathlib import Path

    found = []
    for word in text.split():
        word = word.strip("'\"")
        if word.lower().endswith(IMAGE_SUFFIXES):
            path = Path(word).expanduser()
            path = path if path.is_absolute() else Path(cwd) / path
            if path.is_file():
                found.append(str(path))
    return found


def memory_trace() -> Any:
    """The session's trace, kept in memory for ``/trace`` (secrets in the environment redacted)."""
    from codexbro.exec.trace import Redactor, TraceWriter

    return TraceWriter.in_memory(Redactor())


async def _git(cwd: Any, *args: str) -> str:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await proc.communicate()
    return out.decode("utf-8", "replace")


async def git_diff(cwd: Any) -> dict[str, dict[str, Any]]:
    """The workspace's changes against HEAD, as ``/diff`` shows them: tracked files' diffs, and
    new files git does not ignore (as added)."""
    from pathlib import Path

    files: dict[str, dict[str, Any]] = {}
    current = ""
    for line in (await _git(cwd, "diff", "HEAD", "--no-color")).splitlines(keepends=True):
        if line.startswith("diff --git "):
            current = line.split(" b/", 1)[-1].strip()
            files[current] = {"type": "update", "unified_diff": ""}
        elif current and not line.startswith("index "):
            files[current]["unified_diff"] += line
    for name in (await _git(cwd, "ls-files", "--others", "--exclude-standard", "-z")).split("\0"):
        if name:
            try:
                content = (Path(cwd) / name).read_text(encoding="utf-8", errors="replace")
            except OSError:
                content = ""
            files[name] = {"type": "add", "content": content}
    return files or {"(no changes)": {"type": "update", "unified_diff": ""}}


def mcp_status_text(servers: list[dict[str, Any]]) -> str:
    """``/mcp``: each server's state and tools (or why it failed)."""
    if not servers:
        return "no MCP servers configured (add one: codexbro mcp add NAME -- COMMAND…; see docs/mcp.md)"
    lines = []
    for server in servers:
        head = f"{server['name']}  {server['state']}  ({server['transport']})"
        if server.get("ready_after_ms") is not None:
            head += f"  started in {server['ready_after_ms']} ms"
        lines.append(head)
        if server.get("error"):
            lines += [f"    {line}" for line in str(server["error"]).splitlines()]
        tools = server.get("tools") or []
        if tools:
            lines.append(f"    tools: {', '.join(tools)}")
    return "\n".join(lines)

"""``codexbro usage``, ``codexbro connectors list|workspace|active``: the ChatGPT backend ecosystem,
with readable tables by default and ``--json`` for scripts (``cloud``: cli/cloud.py; ``plugin``:
cli/plugins.py)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from codexbro.config.loader import Overrides, load_config
from codexbro.errors import CodexbroError


async def _with_backend(fn: Callable[[Any], Awaitable[str]], overrides: list[str]) -> str:
    from codexbro.composition.chatgpt import chatgpt_backend

    async with chatgpt_backend(load_config(Overrides(cli_overrides=overrides))) as backend:
        return await fn(backend)


def run(command: str, action: str | None, args: list[str], as_json: bool, overrides: list[str]) -> int:
    async def go(backend: Any) -> str:
        if command == "usage":
            usage = await backend.usage()
            if as_json:
                return json.dumps(usage.raw, indent=2)
            lines = [f"plan: {usage.plan_type or 'unknown'}"]
            for w in usage.windows:
                hours = f"{w.window_seconds / 3600:g}h window" if w.window_seconds else "window"
                from codexbro.api.classify import local_time

                reset = local_time(w.resets_at) if w.resets_at else "-"
                lines.append(f"  {w.name:<22} {w.used_percent:5.1f}% used  ({hours}, resets {reset})")
            if usage.credits:
                lines.append(f"credits: {json.dumps(usage.credits)}")
            return "\n".join(lines)
        items = await backend.connectors(workspace=action == "workspace")
        if as_json:
            return json.dumps(items, indent=2)
        rows = [f"  {i.get('name') or i.get('id')!s:<30} {i.get('description') or ''}"[:120] for i in items]
        return "\n".join([f"{len(items)} connectors", *rows])

    try:
        from codexbro.textsafe import for_terminal

        if command == "connectors" and action == "active":
            print(for_terminal(asyncio.run(_active_connectors(as_json, overrides))))
            return 0
        print(for_terminal(asyncio.run(_with_backend(go, overrides))))  # titles, names: others' text
    except CodexbroError as err:
        print(f"Error: {for_terminal(err.message)}", file=sys.stderr)
        return 1
    return 0


async def _active_connectors(as_json: bool, overrides: list[str]) -> str:
    """The connectors the account has enabled: the apps MCP gateway's tools, grouped by connector."""
    import os

    from codexbro.auth import storage
    from codexbro.errors import AuthError
    from codexbro.mcp.apps import apps_server, connectors_of, gateway
    from codexbro.mcp.manager import McpManager

    config = load_config(Overrides(cli_overrides=overrides))
    auth = storage.load(config.codexbro_home)
    if auth is None or auth.tokens is None:
        raise AuthError(
            "this needs a ChatGPT login (auth.json with ChatGPT tokens); an API key is not enough"
        )
    server = apps_server(
        config, token=auth.tokens.access_token, account_id=auth.tokens.account_id, env=os.environ
    )
    if server is None:
        raise CodexbroError("connectors are switched off ([features] apps = false)")
    manager = McpManager(
        {server.name: server}, cwd=config.cwd, env=dict(os.environ), home=config.codexbro_home
    )
    manager.start()
    try:
        await manager.wait_started()
        conn = manager.connections[server.name]
        if conn.state != "ready":
            raise CodexbroError(f"the apps MCP gateway did not answer: {conn.error}")
        connectors = connectors_of(conn.tools)
    finally:
        await manager.aclose()
    url, route_name = gateway(config)
    if as_json:
        return json.dumps({"gateway": url, "route": route_name, "connectors": connectors}, indent=2)
    rows = [f"gateway: {url} (route {route_name})", f"{len(connectors)} active connectors"]
    rows += [f"  {c['name']:<24} {len(c['tools'])} tools: {', '.join(c['tools'])}"[:160] for c in connectors]
    return "\n".join(rows)

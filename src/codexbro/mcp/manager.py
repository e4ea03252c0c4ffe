"""``McpManager``: a session's MCP servers — started together when the session starts, waited for
before a turn's first request (each at most its ``startup_timeout_sec``), their tools named for
the model, and every failure reported once (which server, why, its stderr tail).

Events (upstream's): ``mcp_startup_update`` per server (starting → ready | failed) and one
``mcp_startup_complete``; a server that dies later gets one warning, and its tools leave the menu
from the next request on. The session goes on without a failed server unless it is ``required``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from msgspec import Struct

from codexbro import protocol as p
from codexbro.config.mcp_servers import HttpTransport, McpServerConfig
from codexbro.mcp import names
from codexbro.mcp.connection import Elicit, McpConnection

log = logging.getLogger(__name__)


class McpToolInfo(Struct, frozen=True):
    """One server tool as the model sees it (``qualified``) and as the server knows it (``tool``)."""

    server: str
    tool: str
    qualified: str
    description: str
    input_schema: dict[str, Any]
    annotations: dict[str, Any]
    parallel: bool


class McpManager:
    """The configured, enabled servers of one session."""

    def __init__(
        self, servers: Mapping[str, McpServerConfig], *, cwd: Path, env: Mapping[str, str], home: Path,
        extra: Mapping[str, McpConnection] | None = None,
    ) -> None:  # fmt: skip
        self.configs = {name: cfg for name, cfg in servers.items() if cfg.enabled}
        self.cwd, self.env, self.home = cwd, env, home
        self.connections: dict[str, McpConnection] = dict(extra or {})
        self.emit: Callable[[p.EventMsg], None] = lambda _msg: None
        self.elicit: Elicit | None = None
        self.approved_for_session: set[tuple[str, str]] = set()
        self._startup: asyncio.Task[None] | None = None
        self._reported: set[str] = set()
        self._asking: set[str] = set()  # servers with an elicitation waiting for the user
        self._schemas: dict[tuple[str, str], bool] = {}
        self._tools_cache: tuple[tuple[tuple[str, str, int], ...], list[McpToolInfo]] | None = (
            None  # (server, tool) → its input schema is valid
        )

    @property
    def has_servers(self) -> bool:
        return bool(self.configs or self.connections)

    def start(self) -> None:
        """Start every server now (needs a running loop); idempotent."""
        if self._startup is not None:
            return
        for name, cfg in self.configs.items():
            self.connections[name] = McpConnection(
                cfg,
                cwd=self.cwd,
                env=self.env,
                elicit=self._elicit,
                http_headers=functools.partial(self._headers, cfg),
                http_auth=functools.partial(self._auth, cfg),
            )
        for name, conn in self.connections.items():
            self.emit(p.McpStartupUpdate(name, {"state": "starting"}))
            conn.start()
        self._startup = asyncio.get_running_loop().create_task(self._watch_startup(), name="mcp-startup")

    async def _elicit(
        self, server: str, message: str, schema: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any] | None]:
        """One question per server at a time: a server asking again while the user has not answered
        is declined (a server cannot stack dialogs)."""
        if self.elicit is None or server in self._asking:
            return "decline", None
        self._asking.add(server)
        try:
            return await self.elicit(server, message, schema)
        finally:
            self._asking.discard(server)

    def _headers(self, cfg: McpServerConfig) -> dict[str, str]:
        """An HTTP server's headers: ``http_headers``, ``env_http_headers`` (from the environment),
        then the bearer token from ``bearer_token_env_var`` (a stored OAuth login is ``_auth``)."""
        t = cfg.transport
        assert isinstance(t, HttpTransport)
        headers = dict(t.http_headers)
        headers |= {h: self.env[var] for h, var in t.env_http_headers.items() if self.env.get(var)}
        if t.bearer_token_env_var:
            token = self.env.get(t.bearer_token_env_var) or None
            if token is None:
                log.warning("MCP server %s: $%s is not set", cfg.name, t.bearer_token_env_var)
            else:
                headers["Authorization"] = f"Bearer {token}"
        return headers

    def _auth(self, cfg: McpServerConfig) -> Any:
        """A stored OAuth login (``codexbro mcp login``), refreshed by the SDK; None without one."""
        t = cfg.transport
        if not isinstance(t, HttpTransport) or t.bearer_token_env_var or "Authorization" in t.http_headers:
            return None
        from codexbro.mcp.oauth import session_auth

        return session_auth(self.home, cfg)

    async def _watch_startup(self) -> None:
        async def one(name: str, conn: McpConnection) -> None:
            await conn.wait_started()
            if conn.state == "ready":
                self.emit(p.McpStartupUpdate(name, {"state": "ready"}))
            else:
                self._reported.add(name)
                error = conn.error or "stopped during start-up"
                self.emit(p.McpStartupUpdate(name, {"state": "failed", "error": error}))
                self.emit(p.WarningEvent(f"MCP server `{name}` failed to start: {error}"))

        await asyncio.gather(*(one(n, c) for n, c in self.connections.items()))
        ready = [n for n, c in self.connections.items() if c.state == "ready"]
        failed = [
            {"server": n, "error": c.error or ""} for n, c in self.connections.items() if c.state != "ready"
        ]
        self.emit(p.McpStartupComplete(ready, failed, []))

    async def wait_started(self) -> None:
        """Until every server is ready or has failed (each within its own start-up timeout)."""
        if self._startup is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._startup)

    def required_failures(self) -> list[str]:
        return [
            f"required MCP server `{n}` failed to start: {c.error}"
            for n, c in self.connections.items()
            if c.config.required and c.state == "failed"
        ]

    def report_deaths(self) -> None:
        """A server that failed after start-up: said once, as a warning."""
        for name, conn in self.connections.items():
            if conn.state == "failed" and name not in self._reported:
                self._reported.add(name)
                self.emit(p.WarningEvent(f"MCP server `{name}` stopped; going on without it: {conn.error}"))

    def tools(self) -> list[McpToolInfo]:
        """The ready servers' tools, filtered by ``enabled_tools``/``disabled_tools``, named for the
        model, sorted by that name; a name already taken is skipped (logged). Computed again only
        when a server's state changes (the router asks several times per request)."""
        key = tuple((n, c.state, id(c.tools)) for n, c in sorted(self.connections.items()))
        if self._tools_cache is not None and self._tools_cache[0] == key:
            return self._tools_cache[1]
        out: list[McpToolInfo] = []
        seen: set[str] = set()
        for name in sorted(self.connections):
            conn = self.connections[name]
            if conn.state != "ready":
                continue
            for raw in conn.tools:
                tool = str(raw.get("name") or "")
                if not tool or not conn.config.allows(tool):
                    continue
                if not self._schema_ok(name, tool, raw.get("inputSchema")):
                    continue
                qualified = names.qualified_name(name, tool)
                if qualified in seen:
                    log.warning("MCP tool %s/%s skipped: the name %s is taken", name, tool, qualified)
                    continue
                seen.add(qualified)
                annotations = raw.get("annotations")
                out.append(
                    McpToolInfo(
                        server=name, tool=tool, qualified=qualified,
                        description=str(raw.get("description") or raw.get("title") or ""),
                        input_schema=names.model_schema(raw.get("inputSchema")),
                        annotations=annotations if isinstance(annotations, dict) else {},
                        parallel=conn.config.supports_parallel_tool_calls,
                    )
                )  # fmt: skip
        tools = sorted(out, key=lambda info: info.qualified)  # stable across starts: the prompt cache keeps
        self._tools_cache = (key, tools)
        return tools

    def _schema_ok(self, server: str, tool: str, schema: Any) -> bool:
        """A tool whose input schema is not valid JSON Schema is left off the menu (said once): the
        API could refuse every request that carried it."""
        key = (server, tool)
        if key not in self._schemas:
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(schema if isinstance(schema, dict) else {})
                self._schemas[key] = True
            except (SchemaError, RecursionError) as exc:
                self._schemas[key] = False
                reason = str(getattr(exc, "message", exc))[:200]
                self.emit(
                    p.WarningEvent(
                        f"MCP tool `{server}/{tool}` left out: its input schema is invalid ({reason})"
                    )
                )
        return self._schemas[key]

    def status(self) -> list[dict[str, Any]]:
        """Each server: state, error, tools (for ``/mcp``, inspection and the app server)."""
        return [
            {"name": n, "state": c.state, "error": c.error, "transport": c.config.transport.kind,
             "tools": [str(t.get("name")) for t in c.tools if c.config.allows(str(t.get("name")))],
             "ready_after_ms": round(c.ready_after_s * 1000) if c.ready_after_s is not None else None}
            for n, c in sorted(self.connections.items())
        ]  # fmt: skip

    def connection(self, server: str) -> McpConnection | None:
        return self.connections.get(server)

    async def aclose(self) -> None:
        if self._startup is not None and not self._startup.done():
            self._startup.cancel()
        await asyncio.gather(*(c.close() for c in self.connections.values()), return_exceptions=True)

"""Tool state that lives as long as a session, not a turn: unified-exec processes, the js_repl
kernel, MCP servers and the shell snapshot. The session owns one ``ToolResources`` and closes it on
shutdown. Members are created on first use, so a session that never runs them never imports them (PTY/termios, the Node kernel)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codexbro.mcp.manager import McpManager
    from codexbro.tools.exec_sessions import ExecSessions
    from codexbro.tools.handlers.agents import AgentControl
    from codexbro.tools.handlers.js_repl import JsRepl
    from codexbro.tools.shell_snapshot import ShellSnapshot


class ToolResources:
    """What outlives a turn but not the session: unified-exec processes, the js_repl kernel, MCP servers."""

    def __init__(
        self, owner: str = "", mcp: McpManager | None = None, shell_snapshot: ShellSnapshot | None = None
    ) -> None:
        self.owner = owner  # the session: its sandbox containers are its own
        self.mcp = mcp  # the session's MCP servers (None: none configured, `mcp` never imported)
        # the login environment restored in each shell command (None: login shells, as configured)
        self.shell_snapshot = shell_snapshot
        # The session's sub-agents (``multi_agent_v1`` tools), made by ``agents_factory`` (set by the
        # composition root) when a menu first offers them; None: this session cannot spawn any (a
        # child session, or a front end without them).
        self._agents: AgentControl | None = None
        self.agents_factory: Callable[[], AgentControl] | None = None
        self.agent_models: list[tuple[str, str]] = []  # (slug, description) listed by spawn_agent
        self._exec: ExecSessions | None = None
        self._js: JsRepl | None = None

    @property
    def agents(self) -> AgentControl | None:
        if self._agents is None and self.agents_factory is not None:
            self._agents = self.agents_factory()
        return self._agents

    @agents.setter
    def agents(self, value: AgentControl | None) -> None:
        self._agents = value

    @property
    def exec_sessions(self) -> ExecSessions:
        if self._exec is None:
            from codexbro.tools.exec_sessions import ExecSessions

            self._exec = ExecSessions()
        return self._exec

    @property
    def js_repl(self) -> JsRepl:
        if self._js is None:
            from codexbro.tools.handlers.js_repl import JsRepl

            self._js = JsRepl()
        return self._js

    async def aclose(self) -> None:
        if self.mcp is not None:
            await self.mcp.aclose()
        if self._exec is not None:
            await self._exec.aclose()
        if self.shell_snapshot is not None:
            await self.shell_snapshot.aclose()
        if self._js is not None:
            await self._js.aclose()
        linux = sys.modules.get("codexbro.sandbox.linux")
        if linux is not None:  # only when this session ran something sandboxed
            await linux.end_session(self.owner)

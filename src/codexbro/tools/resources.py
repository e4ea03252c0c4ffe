"""Tool state that lives as long as a session, not a turn: unified-exec processes, the js_repl
kernel, MCP servers and the shell snapshot. The session owns one ``ToolResources`` and closes it on
shutdown. Members are created on first use, so a session that never runs them never imports them (PTY/termios, the Node kernel)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codexbro.mcp.manager import McpManager
    from codexbro.sandbox.policy import SandboxSpec
    from codexbro.tools.codemode.handlers import CodeModeState
    from codexbro.tools.exec_sessions import ExecSessions
    from codexbro.tools.handlers.agents import AgentControl
    from codexbro.tools.handlers.js_repl import JsRepl
    from codexbro.tools.shell_snapshot import ShellSnapshot

# The tools whose calls start a process (or write through the sandbox): worth warming up for.
COMMAND_TOOLS = frozenset({"shell", "shell_command", "local_shell", "exec_command", "apply_patch"})
log = logging.getLogger(__name__)


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
        self.agent_path = "/root"  # the session's path in its tree of multi_agent_v2 agents
        self._exec: ExecSessions | None = None
        self._js: JsRepl | None = None
        self._code: CodeModeState | None = None
        self._warming: asyncio.Task[None] | None = None

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

    @property
    def code_mode(self) -> CodeModeState:
        """Code mode's cells and stored values (``tools/codemode``)."""
        if self._code is None:
            from codexbro.tools.codemode.handlers import CodeModeState

            self._code = CodeModeState()
        return self._code

    def stop_scripts(self) -> None:
        """The turn was interrupted: every code-mode cell still running is stopped (as an exec call
        interrupted stops its own); nothing when code mode never ran."""
        if self._code is not None and self._code.cells:
            asyncio.get_running_loop().create_task(self._code.aclose())

    def warm_up(self, tool: str, sandbox: SandboxSpec | None, backend: str, home: Path | None) -> None:
        """The model has begun a call of ``tool``: when it starts a command, start what the command
        would otherwise wait for — the shell snapshot and, for the namespace backend, the session's
        sandbox container (configuring the spare server booted when the session opened, or
        booting one: ~80 ms) — while the call's arguments stream in. Once per session; a text-only
        session starts nothing more than that spare. Failures are left for the command to report."""
        if self._warming is not None or tool not in COMMAND_TOOLS:
            return
        if self.shell_snapshot is not None:
            self.shell_snapshot.start()
        self._warming = asyncio.get_running_loop().create_task(_prestart(sandbox, backend, home))

    async def aclose(self) -> None:
        if self._warming is not None and not self._warming.done():
            self._warming.cancel()
            with contextlib.suppress(BaseException):
                await self._warming
        if self._code is not None:  # first: a script's nested calls would start more
            await self._code.aclose()
        if self.mcp is not None:
            await self.mcp.aclose()
        if self._exec is not None:
            await self._exec.aclose()
        if self.shell_snapshot is not None:
            await self.shell_snapshot.aclose()
        if self._js is not None:
            await self._js.aclose()
        spare = sys.modules.get("codexbro.sandbox.spare")
        if spare is not None:  # a server booted for this session that no command used
            await spare.discard(self.owner)
        linux = sys.modules.get("codexbro.sandbox.linux")
        if linux is not None:  # only when this session ran something sandboxed
            await linux.end_session(self.owner)


async def _prestart(sandbox: SandboxSpec | None, backend: str, home: Path | None) -> None:
    """Choose the backend (its probe verdict is usually kept in the home) and start the session's
    container, the one the first command's spawn will find (same owner, same view)."""
    if sandbox is None:
        return
    from codexbro.sandbox.linux import SandboxUnavailable, choose_backend, prepare
    from codexbro.sandbox.probes import backend_report

    try:
        if backend == "auto":
            backend = await asyncio.to_thread(choose_backend, home)
        if backend != "namespaces" or not (await asyncio.to_thread(backend_report, backend, home)).ok:
            return
        prepared = prepare(sandbox, backend)
        try:
            if prepared.container is not None:
                await prepared.container.start()
        finally:
            prepared.release()
    except (SandboxUnavailable, OSError) as exc:
        log.debug("sandbox warm-up: %s", exc)

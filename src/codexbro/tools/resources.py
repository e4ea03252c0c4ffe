"""Tool state that lives as long as a session, not a turn: unified-exec processes and the js_repl
kernel. The session owns one ``ToolResources`` and closes it on shutdown."""

from __future__ import annotations

from dataclasses import dataclass, field

from codexbro.tools.exec_sessions import ExecSessions
from codexbro.tools.handlers.js_repl import JsRepl


@dataclass
class ToolResources:
    exec_sessions: ExecSessions = field(default_factory=ExecSessions)
    js_repl: JsRepl = field(default_factory=JsRepl)

    async def aclose(self) -> None:
        await self.exec_sessions.aclose()
        await self.js_repl.aclose()

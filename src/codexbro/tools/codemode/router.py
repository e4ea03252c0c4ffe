"""The router of a code-mode session: the model's menu is ``exec`` + ``wait`` (+ tools called
directly, such as ``request_user_input``), carried by an ``additional_tools`` input item; every other
tool is *nested*, reached only from a script. Nested calls have a lock of their own (a script's
``Promise.all`` overlaps parallel-capable tools; the others run alone), so they never wait on the
``exec`` call that made them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from codexbro.protocol import ToolCallEnd
from codexbro.tools.base import RespondToModel, ToolCall, ToolContext, ToolHandler, ToolOutput
from codexbro.tools.codemode import declare
from codexbro.tools.codemode.handlers import CodeModeState, CurrTimeHandler, ExecHandler, WaitHandler, js_name
from codexbro.tools.router import DispatchResult, RWLock, ToolRouter

log = logging.getLogger(__name__)
DIRECT = ("request_user_input",)  # called by the model itself, in the functions namespace (0.169)
LEFT_OUT = ("update_plan",)
# namespaces of direct tools, after `functions` (clock.sleep, multi_agent_v2): not among 0.169's
# nested tools (captured)
NAMESPACES = ("clock", "collaboration")


class CodeModeRouter(ToolRouter):
    def __init__(self, handlers: Sequence[ToolHandler], state: CodeModeState,
                 dynamic: Callable[[], Sequence[ToolHandler]] | None = None) -> None:  # fmt: skip
        self.state = state
        self._all = ToolRouter([*handlers, CurrTimeHandler()], dynamic)
        self._nested_lock = RWLock()
        self._built: tuple[tuple[str, ...], ExecHandler] | None = None
        self._wait = WaitHandler(state, declare.specs()["wait"])
        super().__init__([])

    def _nested(self) -> dict[str, ToolHandler]:
        return {
            js_name(name): h for name, h in self._all.handlers.items()
            if name not in DIRECT and name not in LEFT_OUT and not getattr(h, "deferred", False) and not getattr(h, "hidden", False)
            and h.spec().get("type") in ("function", "custom")
        }  # fmt: skip

    def _exec(self) -> ExecHandler:
        nested = self._nested()
        key = tuple(nested)
        if self._built is None or self._built[0] != key:
            spec, all_tools = declare.exec_spec({name: h.spec() for name, h in nested.items()})
            self._built = (key, ExecHandler(self.state, nested, spec, all_tools, self.dispatch_nested))
        return self._built[1]

    @property
    def handlers(self) -> dict[str, ToolHandler]:
        direct = {
            n: h for n, h in self._all.handlers.items() if n in DIRECT or n.split("::")[0] in NAMESPACES
        }
        return {"exec": self._exec(), "wait": self._wait, **direct}

    def specs(self) -> list[dict[str, Any]]:
        return []  # the menu travels in the input (``preamble``)

    def preamble(self) -> list[dict[str, Any]]:
        handlers = self.handlers.values()
        functions = [
            h.spec()
            for h in handlers
            if h.spec().get("type") != "namespace" and not getattr(h, "hidden", False)
        ]
        namespaces = [h.spec() for h in handlers if h.spec().get("type") == "namespace"]
        return [declare.additional_tools(functions, namespaces)]

    code_mode = True

    async def dispatch(self, call: ToolCall, ctx: ToolContext) -> DispatchResult:
        if call.name.startswith("functions::"):  # a call naming its namespace
            call = ToolCall(call.call_id, call.name.removeprefix("functions::"), call.kind, call.arguments,
                            call.input, call.action)  # fmt: skip
        return await super().dispatch(call, ctx)

    async def dispatch_nested(self, call: ToolCall, ctx: ToolContext) -> tuple[ToolOutput, bool]:
        """Run a script's call: (output, refused) — refused when the handler turned the call down
        (bad arguments, policy), which the script sees as a thrown error."""
        handler = self._nested().get(call.name)
        if handler is None:  # it left the menu while the script ran (an MCP server went away)
            return ToolOutput(f"tool `{call.name}` is no longer available", success=False), True
        started = time.monotonic()
        exclusive = not handler.supports_parallel
        await self._nested_lock.acquire(exclusive)
        refused = False
        try:
            output = await handler.handle(call, ctx)
        except RespondToModel as exc:
            output, refused = ToolOutput(str(exc), success=False), True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a handler bug must not kill the turn
            log.exception("tool %s failed", call.name)
            output, refused = (
                ToolOutput(f"tool {call.name} failed: {type(exc).__name__}: {exc}", success=False),
                True,
            )
        finally:
            await asyncio.shield(self._nested_lock.release(exclusive))
        size = len(output.content) if isinstance(output.content, str) else len(str(output.content))
        ctx.emit(
            ToolCallEnd(
                call.call_id, call.name, output.success, int((time.monotonic() - started) * 1000), size
            )
        )
        return output, refused

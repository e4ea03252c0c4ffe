"""``ToolRouter``: the model-visible menu for a turn, and dispatch of each call to its handler.

Dispatch never raises into the turn (except cancellation): unknown tools answer
``unsupported call: NAME``, bad arguments and handler failures become output text the model reads.
Parallel-capable tools share a read lock; the others take it exclusively, so a non-parallel tool
never overlaps anything else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from msgspec import Struct

from codexbro.protocol import ToolCallEnd
from codexbro.tools.base import RespondToModel, ToolCall, ToolContext, ToolHandler, ToolOutput

log = logging.getLogger(__name__)


class RWLock:
    """Many readers or one writer (asyncio)."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._readers = 0
        self._writer = False

    async def acquire(self, exclusive: bool) -> None:
        async with self._cond:
            if exclusive:
                await self._cond.wait_for(lambda: not self._writer and self._readers == 0)
                self._writer = True
            else:
                await self._cond.wait_for(lambda: not self._writer)
                self._readers += 1

    async def release(self, exclusive: bool) -> None:
        async with self._cond:
            if exclusive:
                self._writer = False
            else:
                self._readers -= 1
            self._cond.notify_all()


class DispatchResult(Struct, frozen=True):
    """A call's output item and whether it succeeded."""

    output: ToolOutput
    duration_ms: int


class ToolRouter:
    """Builds a turn's tool menu and dispatches each call to its handler; always returns an output item, never raises into the turn (parallel-capable tools overlap, the rest take a lock)."""

    def __init__(
        self, handlers: Sequence[ToolHandler], dynamic: Callable[[], Sequence[ToolHandler]] | None = None
    ) -> None:
        self.static = {h.name: h for h in handlers}
        # Tools whose set changes during a turn (MCP servers that finish starting or die): asked
        # again for every request; a built-in tool's name always wins.
        self.dynamic = dynamic
        self._lock = RWLock()

    @property
    def handlers(self) -> dict[str, ToolHandler]:
        if self.dynamic is None:
            return self.static
        extra = {h.name: h for h in self.dynamic() if h.name not in self.static}
        return {**self.static, **extra}

    def specs(self) -> list[dict[str, Any]]:
        """The menu: every handler but the deferred ones (reached through ``tool_search``) and the
        hidden ones (functions of a namespace, on the menu through the namespace's entry)."""
        return [
            h.spec() for h in self.handlers.values()
            if not getattr(h, "deferred", False) and not getattr(h, "hidden", False)
        ]  # fmt: skip

    code_mode = False  # ``CodeModeRouter``: the menu travels in the input, see ``preamble``

    def preamble(self) -> list[dict[str, Any]]:
        """Items a request puts before the history (code mode's ``additional_tools``)."""
        return []

    def names(self) -> list[str]:
        return list(self.handlers)

    def supports_parallel(self, name: str) -> bool:
        handler = self.handlers.get(name)
        return bool(handler and handler.supports_parallel)

    async def dispatch(self, call: ToolCall, ctx: ToolContext) -> DispatchResult:
        started = time.monotonic()
        handler = self.handlers.get(call.name)
        if handler is None:
            return DispatchResult(ToolOutput(f"unsupported call: {call.name}", success=False), 0)
        exclusive = not handler.supports_parallel
        await self._lock.acquire(exclusive)
        try:
            output = await handler.handle(call, ctx)
        except RespondToModel as exc:
            output = ToolOutput(str(exc), success=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a handler bug must not kill the turn
            log.exception("tool %s failed", call.name)
            output = ToolOutput(f"tool {call.name} failed: {type(exc).__name__}: {exc}", success=False)
        finally:
            await asyncio.shield(self._lock.release(exclusive))
        duration = int((time.monotonic() - started) * 1000)
        size = len(output.content) if isinstance(output.content, str) else len(str(output.content))
        ctx.emit(ToolCallEnd(call.call_id, call.name, output.success, duration, size))
        return DispatchResult(output, duration)

"""`tool_search` with hostile arguments (src/codexbro/mcp/search.py).

Findings:
- `rank()` re-tokenises the query for every document (`set(_words(query))` inside the loop): time
  is documents × query length, on the event loop. A 1 MB query over 1 000 deferred tools blocked
  the whole session for ~24 s (no events, no Ctrl-C handling). Expected: tokenise the query once
  (and cap it, e.g. the first 64 distinct words).
- `limit: Infinity` (Python's JSON accepts it) → `int(inf)` raises OverflowError, which the router
  turns into "tool tool_search failed: OverflowError…" plus a logged traceback. Expected: treat a
  non-finite limit like a missing one (`math.isfinite`), or answer with a RespondToModel message."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, ClassVar

from codexbro.mcp.manager import McpToolInfo
from codexbro.mcp.search import ToolSearchHandler
from codexbro.tools.base import ToolCall, ToolContext
from codexbro.tools.router import ToolRouter


class FakeManager:
    connections: ClassVar[dict[str, Any]] = {}

    def __init__(self, n: int) -> None:
        self._tools = [
            McpToolInfo("srv", f"tool_{i}", f"mcp__srv__tool_{i}", f"does thing number {i} with files",
                        {"type": "object", "properties": {"path": {"type": "string"}}}, {}, False)
            for i in range(n)
        ]  # fmt: skip

    def tools(self) -> list[McpToolInfo]:
        return self._tools


def _ctx() -> ToolContext:
    return ToolContext(cwd=Path("/"), turn_id="t", sandbox_mode="read-only", approval_policy="never",
                       sandbox_workspace_write=None, env_policy=None)  # type: ignore[arg-type]  # fmt: skip


async def _search(n: int, arguments: str) -> tuple[Any, float]:
    router = ToolRouter([ToolSearchHandler(FakeManager(n))])  # type: ignore[arg-type]
    started = time.monotonic()
    result = await router.dispatch(ToolCall("c1", "tool_search", "tool_search", arguments=arguments), _ctx())
    return result.output, time.monotonic() - started


async def test_a_long_query_does_not_block_the_session() -> None:
    query = "files " * 40_000  # 240 KB: well within one model reply
    output, elapsed = await _search(1000, json.dumps({"query": query}))
    assert output.success
    assert elapsed < 1.0, f"tool_search blocked the event loop for {elapsed:.1f} s"


async def test_an_infinite_limit_is_handled() -> None:
    output, _elapsed = await asyncio.wait_for(_search(10, '{"query": "files", "limit": Infinity}'), 10)
    assert "OverflowError" not in str(output.content), output.content

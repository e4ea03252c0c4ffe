"""0.169's ``clock`` namespace (models whose catalog entry lists ``clock`` in
``experimental_supported_tools``, e.g. gpt-6-sol): ``sleep``, called by the model directly (in code
mode too, beside ``exec``). Captured from the real 0.169 (``fixtures/codex-0.169/clock-sleep.json``):
the spec, ``Wall time: 1.2024 seconds\\nSleep completed.``, ``duration_ms must be between 1 and
43200000``. When input for the turn arrives the sleep ends early (0.169's description); the wording
of that answer (``Sleep ended early: new input arrived.``) is codexbro's, not captured. Arguments
that are not a whole number are refused in codexbro's words (0.169 passes serde's on).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from codexbro.tools.base import RespondToModel, ToolCall, ToolContext, ToolOutput, parse_arguments
from codexbro.tools.namespace import Namespace, NamespaceFunction

MAX_MS = 43_200_000


class Sleep(NamespaceFunction):
    namespace = "clock"
    function = "sleep"
    supports_parallel = True

    def spec(self) -> dict[str, Any]:
        return {
            "type": "function", "name": "sleep",
            "description": "Pause execution for a specified duration. The sleep ends early when new input "
            "arrives for the active turn. Returns the elapsed wall-clock time.",
            "strict": False,
            "parameters": {"type": "object", "properties": {"duration_ms": {
                "type": "number", "description": f"How long to sleep in milliseconds. Must be between 1 and {MAX_MS}."}},
                "required": ["duration_ms"], "additionalProperties": False},
        }  # fmt: skip

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        args = parse_arguments(call, self.spec()["parameters"])
        ms = args["duration_ms"]
        if isinstance(ms, float) and not ms.is_integer():
            raise RespondToModel("failed to parse function arguments: `duration_ms` must be a whole number")
        if not 1 <= ms <= MAX_MS:
            raise RespondToModel(f"duration_ms must be between 1 and {MAX_MS}")
        started = time.monotonic()
        try:
            await asyncio.wait_for(ctx.wait_steered(), ms / 1000)
            early = True
        except TimeoutError:
            early = False
        wall = time.monotonic() - started
        end = "Sleep ended early: new input arrived." if early else "Sleep completed."
        return ToolOutput(f"Wall time: {wall:.4f} seconds\n{end}")


def clock_handlers() -> list[Any]:
    return Namespace("clock", "Tools for reading and waiting on time.", [Sleep()]).handlers()

"""``ScriptedModelClient``: a ``ModelClient`` that answers from a script, in process — for tests
of the turn loop and of the Op protocol that need no sockets (the end-to-end tests still go over
loopback HTTP to the fake server). Each request takes the next reply: a list of items the "model"
outputs (assistant text, tool calls); the prompts it was sent are kept for assertions. A reply may
also be an exception instance, raised instead (a failed request), or an ``asyncio.Event`` the
reply waits for first (a long answer an interrupt can land in)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from codexbro.api import events as ev
from codexbro.api.model_client import Prompt, RequestPreview
from codexbro.protocol.items import ResponseItem

Reply = list[ResponseItem] | BaseException | tuple[asyncio.Event, list[ResponseItem]]


def says(text: str) -> ResponseItem:
    """An assistant message item."""
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


def calls(name: str, arguments: dict[str, Any], call_id: str = "call_1") -> ResponseItem:
    """A function call item."""
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": json.dumps(arguments)}


class ScriptedModelClient:
    """Replies in order; running out of replies is an error in the test, said plainly."""

    def __init__(self, replies: list[Reply], *, base_instructions: str = "scripted instructions") -> None:
        self.replies = list(replies)
        self.prompts: list[Prompt] = []
        self.base_url = "scripted://model"
        self.base_instructions = base_instructions
        self.on_wait: Callable[[str], None] | None = None
        self.closed = False

    async def stream(self, prompt: Prompt, subagent: str | None = None) -> AsyncIterator[ev.ResponseEvent]:
        self.prompts.append(prompt)
        if not self.replies:
            raise AssertionError(f"the script has no reply left for request {len(self.prompts)}")
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, tuple):
            gate, reply = reply
            await gate.wait()
        yield ev.Created(f"resp_{len(self.prompts)}")
        for item in reply:
            yield ev.OutputItemDone(item)
        yield ev.Completed(f"resp_{len(self.prompts)}", ev.TokenUsage(10, 0, 5, 0, 15))

    async def compact_remote(
        self, items: list[ResponseItem], tools: list[dict[str, Any]]
    ) -> list[ResponseItem]:
        raise NotImplementedError("the scripted client does no remote compaction")

    def preview(self, prompt: Prompt) -> RequestPreview:
        return RequestPreview(
            f"{self.base_url}/responses", {"input": prompt.input, "tools": prompt.tools}, {}
        )

    async def aclose(self) -> None:
        self.closed = True

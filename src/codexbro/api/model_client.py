"""The model-client seam: what the session and the turn loop need from "a model", whatever runs it.

Implemented side by side by the Responses client (``api/responses_client.py``: HTTP + SSE to any
Responses endpoint), the embedded client (``embedded/provider.py``: llama.cpp in this process) and
the scripted client tests use (``api/scripted.py``). The session owns a ``RequestLog``; every
client reports each request it makes (an HTTP attempt, a local generation) to it, so traces and
inspection see both the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from msgspec import Struct, field

from codexbro.api.events import ResponseEvent
from codexbro.api.http import RequestRecord
from codexbro.protocol.items import ResponseItem


class Prompt(Struct, frozen=True):
    """One request's variable part: the input items, the tool menu, and the output schema."""

    input: list[ResponseItem]
    tools: list[dict[str, Any]] = field(default_factory=list)
    parallel_tool_calls: bool = False
    output_schema: dict[str, Any] | None = None
    code_mode: bool = False  # no top-level ``tools``: the menu is an ``additional_tools`` input item


class RequestPreview(Struct, frozen=True):
    """The request a prompt would make, built and never sent (``codexbro debug request``)."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str]
    local: dict[str, Any] | None = None  # the embedded model: the prompt text and grammar it reads


class RequestLog:
    """Every request a session's model client makes, reported as it ends; the session subscribes."""

    def __init__(self) -> None:
        self.observers: list[Callable[[RequestRecord], None]] = []

    def __call__(self, record: RequestRecord) -> None:
        for observer in self.observers:
            observer(record)


class ModelClient(Protocol):
    """A session-scoped model client: knows the model, the credential and the thread; streams one
    response per ``Prompt``."""

    base_url: str
    base_instructions: str
    on_wait: Callable[[str], None] | None  # told about long waits before a retry (a warning)

    def stream(self, prompt: Prompt, subagent: str | None = None) -> AsyncIterator[ResponseEvent]:
        """One response's events; ``subagent`` marks helper traffic (``compact``) as upstream does."""
        ...

    async def compact_remote(
        self, items: list[ResponseItem], tools: list[dict[str, Any]]
    ) -> list[ResponseItem]:
        """The provider's own compaction of ``items`` (``UserError`` where there is none)."""
        ...

    def preview(self, prompt: Prompt) -> RequestPreview: ...

    async def aclose(self) -> None: ...

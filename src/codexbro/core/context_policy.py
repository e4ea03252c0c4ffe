"""When and how a session's context is made smaller: the auto-compaction limit, the estimate
before each request, compaction (remote / inline / local, ``core/compact.py``) with trimming of old
tool outputs as the fallback, and the reaction to a server's context-overflow error.

The policy: compact when the next request's estimate reaches the limit (configured, the model's, or
90 % of its window); never twice without a model response between (that would loop); keep a
compaction only if it shrinks the context; else empty the oldest tool outputs until it fits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from codexbro import protocol as p
from codexbro.api.model_client import ModelClient, Prompt
from codexbro.config.types import Config
from codexbro.core.compact import estimate_tokens
from codexbro.core.history import History
from codexbro.errors import ApiError
from codexbro.models.catalog import ModelInfo
from codexbro.protocol.items import ResponseItem

if TYPE_CHECKING:
    from codexbro.core.turn import TurnContext


class ContextHost(Protocol):
    """What the policy needs from its session."""

    config: Config
    model: ModelInfo
    client: ModelClient
    history: History

    def emit(self, msg: p.EventMsg) -> None: ...

    def record_compacted(self, value: dict[str, Any]) -> None: ...

    def initial_context(self) -> list[ResponseItem]: ...


class ContextPolicy:
    """One per session; the turn loop asks it before each request and on an overflow error."""

    def __init__(self, host: ContextHost) -> None:
        self.host = host
        self.compacted_since_response = False  # never compact twice without a model response between

    def context_window(self) -> int | None:
        window = self.host.model.context_window
        return window * self.host.model.effective_context_window_percent // 100 if window else None

    def auto_compact_limit(self) -> int | None:
        cfg, model = self.host.config, self.host.model
        if cfg.model_auto_compact_token_limit:
            return cfg.model_auto_compact_token_limit
        if model.auto_compact_token_limit:
            return model.auto_compact_token_limit
        return int(model.context_window * 0.9) if model.context_window else None

    def estimate_next_request(self) -> int:
        return estimate_tokens(self.host.history.for_prompt(), self.host.client.base_instructions)

    async def before_sample(self, ctx: TurnContext) -> None:
        """Before each request: report the estimated size; compact (or trim) past the limit."""
        estimate = self.estimate_next_request()
        limit = self.auto_compact_limit()
        self.host.emit(p.ContextUsage(estimate, self.context_window(), limit))
        if limit is None or estimate < limit:
            return
        if self.compacted_since_response or not await self.compact(ctx.router.specs(), "auto"):
            await self.trim(limit, "auto")

    async def on_context_overflow(self, ctx: TurnContext) -> bool:
        """The server said the context is full: compact (or trim) so the request can be retried once."""
        limit = self.auto_compact_limit() or self.estimate_next_request() // 2
        if not self.compacted_since_response and await self.compact(ctx.router.specs(), "overflow"):
            return True
        return await self.trim(min(limit, self.estimate_next_request() * 7 // 10), "overflow")

    async def compact(self, tools: list[dict[str, Any]], reason: str) -> bool:
        from codexbro.core.compact import choose_strategy, compact_inline, compact_local, compact_remote

        host = self.host
        before = self.estimate_next_request()
        strategy = choose_strategy(host.config.compaction_strategy, host.config.model_provider.is_openai)
        history = host.history.for_prompt()
        initial = host.initial_context()
        parallel = host.model.supports_parallel_tool_calls

        def stream(items: list[ResponseItem], with_tools: bool) -> Any:
            return host.client.stream(
                Prompt(
                    input=items,
                    tools=tools if with_tools else [],
                    parallel_tool_calls=parallel and with_tools,
                ),
                subagent="compact",
            )

        try:
            if strategy == "remote":
                result = await compact_remote(
                    history, initial, lambda items: host.client.compact_remote(items, tools)
                )
            elif strategy == "inline":
                result = await compact_inline(history, initial, stream)
            else:
                result = await compact_local(history, initial, stream, host.config.compact_prompt)
        except ApiError as exc:
            host.emit(p.WarningEvent(f"compaction ({strategy}) failed: {exc.message}"))
            return False
        after = estimate_tokens(result.history, host.client.base_instructions)
        if after >= before:
            host.emit(
                p.WarningEvent(
                    f"compaction discarded: it would not shrink the context ({before} → {after} tokens)"
                )
            )
            return False
        self._replace(result.history, result.summary)
        host.emit(p.ContextCompacted(result.strategy, reason, before, after))
        return True

    async def trim(self, target: int, reason: str) -> bool:
        """Fallback: empty the oldest tool outputs until the history fits ``target`` tokens."""
        from codexbro.core.compact import trim_tool_outputs

        before = self.estimate_next_request()
        overhead = estimate_tokens([], self.host.client.base_instructions)  # the target counts them too
        items, trimmed = trim_tool_outputs(self.host.history.items, max(0, target - overhead))
        if not trimmed:
            return False
        self._replace(items, "")
        self.host.emit(p.ContextCompacted("trim", reason, before, self.estimate_next_request(), trimmed))
        return True

    def _replace(self, items: list[ResponseItem], summary: str) -> None:
        self.host.history.replace(items)
        self.host.record_compacted({"message": summary, "replacement_history": items})
        self.compacted_since_response = True

"""Typed events parsed from a Responses stream (SSE ``data`` JSON, dispatched on ``type``)."""

from __future__ import annotations

from typing import Any

from msgspec import Struct, field

from codexbro.protocol.items import ResponseItem as ResponseItem  # items are the protocol's


class TokenUsage(Struct, frozen=True):
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_output_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_wire(cls, usage: dict[str, Any] | None) -> TokenUsage:
        if not isinstance(usage, dict):
            return cls()

        def num(v: Any) -> int:
            return v if isinstance(v, int) and not isinstance(v, bool) else 0

        inp_details = usage.get("input_tokens_details")
        out_details = usage.get("output_tokens_details")
        inp_details = inp_details if isinstance(inp_details, dict) else {}
        out_details = out_details if isinstance(out_details, dict) else {}
        return cls(
            input_tokens=num(usage.get("input_tokens")),
            cached_input_tokens=num(inp_details.get("cached_tokens")),
            output_tokens=num(usage.get("output_tokens")),
            reasoning_output_tokens=num(out_details.get("reasoning_tokens")),
            total_tokens=num(usage.get("total_tokens")),
        )

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_output_tokens + other.reasoning_output_tokens,
            self.total_tokens + other.total_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_output_tokens": self.reasoning_output_tokens,
            "total_tokens": self.total_tokens,
        }


class RateLimitWindow(Struct, frozen=True):
    used_percent: float
    window_minutes: int | None
    resets_at: int | None


class RateLimitSnapshot(Struct, frozen=True):
    limit_id: str = "codex"
    primary: RateLimitWindow | None = None
    secondary: RateLimitWindow | None = None


class Created(Struct, frozen=True, eq=False):
    response_id: str | None


class OutputItemAdded(Struct, frozen=True, eq=False):
    item: ResponseItem


class OutputItemDone(Struct, frozen=True, eq=False):
    """The authoritative finished item: recorded into history, tool calls dispatched from it."""

    item: ResponseItem


class OutputTextDelta(Struct, frozen=True, eq=False):
    delta: str
    item_id: str | None = None


class ReasoningSummaryDelta(Struct, frozen=True, eq=False):
    delta: str
    summary_index: int = 0


class ReasoningSummaryPartAdded(Struct, frozen=True, eq=False):
    summary_index: int = 0


class ReasoningContentDelta(Struct, frozen=True, eq=False):
    delta: str
    content_index: int = 0


class ToolCallInputDelta(Struct, frozen=True, eq=False):
    call_id: str | None
    delta: str


class RateLimits(Struct, frozen=True, eq=False):
    snapshot: RateLimitSnapshot


class Completed(Struct, frozen=True, eq=False):
    response_id: str | None
    usage: TokenUsage = field(default_factory=TokenUsage)
    end_turn: bool | None = None


ResponseEvent = (
    Created
    | OutputItemAdded
    | OutputItemDone
    | OutputTextDelta
    | ReasoningSummaryDelta
    | ReasoningSummaryPartAdded
    | ReasoningContentDelta
    | ToolCallInputDelta
    | RateLimits
    | Completed
)

"""Typed events parsed from a Responses stream (SSE ``data`` JSON, dispatched on ``type``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codexbro.protocol.items import ResponseItem as ResponseItem  # items are the protocol's


@dataclass(frozen=True)
class TokenUsage:
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


@dataclass(frozen=True)
class RateLimitWindow:
    used_percent: float
    window_minutes: int | None
    resets_at: int | None


@dataclass(frozen=True)
class RateLimitSnapshot:
    limit_id: str = "codex"
    primary: RateLimitWindow | None = None
    secondary: RateLimitWindow | None = None


@dataclass(frozen=True, eq=False, repr=False)
class Created:
    response_id: str | None


@dataclass(frozen=True, eq=False, repr=False)
class OutputItemAdded:
    item: ResponseItem


@dataclass(frozen=True, eq=False, repr=False)
class OutputItemDone:
    """The authoritative finished item: recorded into history, tool calls dispatched from it."""

    item: ResponseItem


@dataclass(frozen=True, eq=False, repr=False)
class OutputTextDelta:
    delta: str
    item_id: str | None = None


@dataclass(frozen=True, eq=False, repr=False)
class ReasoningSummaryDelta:
    delta: str
    summary_index: int = 0


@dataclass(frozen=True, eq=False, repr=False)
class ReasoningSummaryPartAdded:
    summary_index: int = 0


@dataclass(frozen=True, eq=False, repr=False)
class ReasoningContentDelta:
    delta: str
    content_index: int = 0


@dataclass(frozen=True, eq=False, repr=False)
class ToolCallInputDelta:
    call_id: str | None
    delta: str


@dataclass(frozen=True, eq=False, repr=False)
class RateLimits:
    snapshot: RateLimitSnapshot


@dataclass(frozen=True, eq=False, repr=False)
class Completed:
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

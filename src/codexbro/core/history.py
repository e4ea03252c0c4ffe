"""Conversation history: an append-only list of wire items, normalized before every request.

Normalization (upstream's ``for_prompt``): every tool call gets exactly one output (a missing one
becomes ``"aborted"`` right after the call), outputs without a call are dropped, images are removed
for text-only models, and internal item kinds never reach the wire.
"""

from __future__ import annotations

from codexbro.protocol.items import (
    CALL_TYPES,
    OUTPUT_TYPES,
    WIRE_TYPES,
    ResponseItem,
    developer_message,
    message_text,
    output_item_for,
    reasoning_text,
    user_message,
)

__all__ = [
    "History",
    "developer_message",
    "message_text",
    "output_item_for",
    "reasoning_text",
    "user_message",
]


class History:
    """The conversation as wire items, append-only; ``for_prompt`` is what a request sends."""

    def __init__(self, items: list[ResponseItem] | None = None) -> None:
        self.items: list[ResponseItem] = list(items or [])

    def append(self, item: ResponseItem) -> None:
        self.items.append(item)

    def replace(self, items: list[ResponseItem]) -> None:
        self.items = list(items)

    def pending_calls(self) -> list[ResponseItem]:
        """Tool calls that have no output yet (in order)."""
        answered = {i.get("call_id") for i in self.items if i.get("type") in OUTPUT_TYPES}
        return [i for i in self.items if i.get("type") in CALL_TYPES and i.get("call_id") not in answered]

    def for_prompt(self, *, images: bool = True) -> list[ResponseItem]:
        calls = {i.get("call_id") for i in self.items if i.get("type") in CALL_TYPES}
        answered = {i.get("call_id") for i in self.items if i.get("type") in OUTPUT_TYPES}
        out: list[ResponseItem] = []
        for item in self.items:
            kind = item.get("type")
            if kind not in WIRE_TYPES:
                continue
            if kind in OUTPUT_TYPES and item.get("call_id") not in calls:
                continue
            if not images:
                item = _strip_images(item)
            out.append(item)
            if kind in CALL_TYPES and item.get("call_id") not in answered:
                out.append(output_item_for(item, "aborted"))
        return out


def is_user_turn(item: ResponseItem) -> bool:
    """A message the user typed (the start of a turn) — not context codexbro added in the user's
    role (environment context, AGENTS.md, a turn-aborted note, a compaction summary)."""
    from codexbro.core.compact import CONTEXT_MARKERS

    if item.get("type") != "message" or item.get("role") != "user":
        return False
    return not message_text(item).lstrip().startswith(CONTEXT_MARKERS)


def drop_last_turns(items: list[ResponseItem], count: int) -> list[ResponseItem] | None:
    """``items`` without the last ``count`` user turns (each from its user message on); ``None``
    when there are fewer turns than that (upstream: ``thread_rollback_failed``). Turns before the
    last compaction are not turns any more — their messages live on in its summary — so a
    rollback never reaches into it."""
    from codexbro.core.compact import SUMMARY_PREFIX

    floor = max(
        (i for i, item in enumerate(items)
         if item.get("type") == "compaction" or (item.get("type") == "message" and message_text(item).startswith(SUMMARY_PREFIX))),
        default=-1,
    )  # fmt: skip
    starts = [i for i, item in enumerate(items) if i > floor and is_user_turn(item)]
    if count < 1 or count > len(starts):
        return None
    return items[: starts[-count]]


def _strip_images(item: ResponseItem) -> ResponseItem:
    key = "content" if item.get("type") == "message" else "output"
    parts = item.get(key)
    if not isinstance(parts, list) or not any(
        isinstance(p, dict) and p.get("type") == "input_image" for p in parts
    ):
        return item
    kept = [p for p in parts if not (isinstance(p, dict) and p.get("type") == "input_image")]
    kept.append({"type": "input_text", "text": "[image omitted: this model does not accept images]"})
    return {**item, key: kept}

"""Conversation history: an append-only list of wire items, normalized before every request.

Normalization (upstream's ``for_prompt``): every tool call gets exactly one output (a missing one
becomes ``"aborted"`` right after the call), outputs without a call are dropped, images are removed
for text-only models, and internal item kinds never reach the wire.
"""

from __future__ import annotations

from typing import Any

from codexbro.api.events import ResponseItem

CALL_TYPES = {
    "function_call": "function_call_output",
    "custom_tool_call": "custom_tool_call_output",
    "local_shell_call": "function_call_output",
}
OUTPUT_TYPES = {"function_call_output", "custom_tool_call_output"}
WIRE_TYPES = {
    "message", "reasoning", "function_call", "function_call_output", "custom_tool_call",
    "custom_tool_call_output", "local_shell_call", "web_search_call", "image_generation_call",
    "tool_search_call", "tool_search_output", "compaction",
}  # fmt: skip


def user_message(text: str) -> ResponseItem:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def developer_message(text: str) -> ResponseItem:
    return {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": text}]}


def message_text(item: ResponseItem) -> str:
    """Concatenated text of a message item (input_text / output_text parts)."""
    parts = item.get("content") or []
    if isinstance(parts, str):
        return parts
    return "".join(
        str(p.get("text") or "")
        for p in parts
        if isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "text")
    )


def reasoning_text(item: ResponseItem) -> str:
    summary = item.get("summary") or []
    return "\n\n".join(str(s.get("text") or "") for s in summary if isinstance(s, dict))


def output_item_for(call: ResponseItem, output: str | list[dict[str, Any]]) -> ResponseItem:
    kind = CALL_TYPES.get(str(call.get("type")), "function_call_output")
    item: ResponseItem = {"type": kind, "call_id": call.get("call_id"), "output": output}
    if kind == "custom_tool_call_output" and call.get("name"):
        item["name"] = call["name"]
    return item


class History:
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

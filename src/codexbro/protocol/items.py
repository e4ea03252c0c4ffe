"""Response items: the conversation's units, as the Responses API sends and takes them.

Items stay plain JSON objects (``ResponseItem``): the model's own format is the most faithful
representation and round-trips to rollouts and follow-up requests byte for byte, unknown fields
included. The ``TypedDict``s below name the shapes codexbro reads and builds (they cost nothing at
run time); the constructors build them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

if TYPE_CHECKING:
    from codexbro.protocol import UserInput

ResponseItem = dict[str, Any]


class InputText(TypedDict):
    type: Literal["input_text", "output_text"]
    text: str


class MessageItem(TypedDict):
    type: Literal["message"]
    role: Literal["user", "developer", "assistant", "system"]
    content: list[InputText]
    id: NotRequired[str]


class FunctionCallItem(TypedDict):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    namespace: NotRequired[str]


class CustomToolCallItem(TypedDict):
    type: Literal["custom_tool_call"]
    call_id: str
    name: str
    input: str


class ToolOutputItem(TypedDict):
    type: Literal["function_call_output", "custom_tool_call_output"]
    call_id: str
    output: str | list[dict[str, Any]]
    name: NotRequired[str]


class ReasoningItem(TypedDict):
    type: Literal["reasoning"]
    summary: list[dict[str, Any]]
    encrypted_content: NotRequired[str | None]


CALL_TYPES = {
    "function_call": "function_call_output",
    "custom_tool_call": "custom_tool_call_output",
    "local_shell_call": "function_call_output",
    "tool_search_call": "tool_search_output",
}
OUTPUT_TYPES = {"function_call_output", "custom_tool_call_output", "tool_search_output"}
WIRE_TYPES = {
    "message", "reasoning", "function_call", "function_call_output", "custom_tool_call",
    "custom_tool_call_output", "local_shell_call", "web_search_call", "image_generation_call",
    "tool_search_call", "tool_search_output", "compaction",
    "agent_message",  # multi_agent_v2's messages between agents (0.169)
}  # fmt: skip


def user_message(text: str) -> ResponseItem:
    item: MessageItem = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return dict(item)


def developer_message(text: str) -> ResponseItem:
    item: MessageItem = {
        "type": "message", "role": "developer", "content": [{"type": "input_text", "text": text}]
    }  # fmt: skip
    return dict(item)


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
    """The output item answering ``call`` (a function call's or a custom tool call's kind)."""
    kind = CALL_TYPES.get(str(call.get("type")), "function_call_output")
    if kind == "tool_search_output":  # the namespaces found (0.169's client-executed tool_search)
        tools = output if isinstance(output, list) else []
        return {"type": kind, "call_id": call.get("call_id"), "status": "completed", "execution": "client",
                "tools": tools}  # fmt: skip
    item: ResponseItem = {"type": kind, "call_id": call.get("call_id"), "output": output}
    if kind == "custom_tool_call_output" and call.get("name") not in (None, "", "exec"):
        item["name"] = call["name"]  # (0.169 answers code mode's `exec` without one: captured)
    return item


def user_input_item(inputs: tuple[UserInput, ...]) -> ResponseItem:
    """The user message for a turn's inputs; a local image is read and sent as a data URL."""
    content: list[dict[str, Any]] = []
    for piece in inputs:
        if piece.type == "text":
            content.append({"type": "input_text", "text": piece.text})
        elif piece.type == "image":
            content.append({"type": "input_image", "image_url": piece.image_url})
        elif piece.type == "local_image":
            content.append({"type": "input_image", "image_url": _data_url(Path(piece.path))})
    return {"type": "message", "role": "user", "content": content}


def first_text(item: ResponseItem) -> str:
    for part in item.get("content") or []:
        if isinstance(part, dict) and part.get("type") == "input_text":
            return str(part.get("text") or "")
    return ""


def _data_url(path: Path) -> str:
    import base64
    import mimetypes

    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"

"""Builders for Responses SSE events (``ev_*``), as the real API frames them, and request checks."""

from __future__ import annotations

import itertools
import json
from typing import Any

_ids = itertools.count(1)


def sse_frame(event: dict[str, Any]) -> bytes:
    return f"event: {event.get('type', 'message')}\ndata: {json.dumps(event)}\n\n".encode()


def ev_created(resp_id: str = "resp_1") -> dict[str, Any]:
    return {"type": "response.created", "response": {"id": resp_id}}


def ev_message(text: str, item_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "response.output_item.done",
        "item": {
            "type": "message",
            "role": "assistant",
            "id": item_id or f"msg_{next(_ids)}",
            "content": [{"type": "output_text", "text": text}],
        },
    }


def ev_text_delta(delta: str) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "delta": delta}


def ev_reasoning(text: str) -> dict[str, Any]:
    return {
        "type": "response.output_item.done",
        "item": {
            "type": "reasoning",
            "id": f"rs_{next(_ids)}",
            "summary": [{"type": "summary_text", "text": text}],
            "encrypted_content": "opaque",
        },
    }


def ev_function_call(call_id: str, name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {
        "type": "response.output_item.done",
        "item": {"type": "function_call", "id": f"fc_{next(_ids)}", "call_id": call_id, "name": name,
                 "arguments": args},
    }  # fmt: skip


def ev_shell_command(call_id: str, command: str, **extra: Any) -> dict[str, Any]:
    return ev_function_call(call_id, "shell_command", {"command": command, **extra})


def ev_custom_tool_call(call_id: str, name: str, input_text: str) -> dict[str, Any]:
    return {
        "type": "response.output_item.done",
        "item": {"type": "custom_tool_call", "id": f"ctc_{next(_ids)}", "call_id": call_id, "name": name,
                 "input": input_text, "status": "completed"},
    }  # fmt: skip


def ev_local_shell_call(call_id: str, command: list[str]) -> dict[str, Any]:
    return {
        "type": "response.output_item.done",
        "item": {"type": "local_shell_call", "id": f"lsh_{next(_ids)}", "call_id": call_id,
                 "status": "completed", "action": {"type": "exec", "command": command}},
    }  # fmt: skip


def ev_completed(resp_id: str = "resp_1", input_tokens: int = 10, output_tokens: int = 5,
                 cached: int = 0, reasoning: int = 0) -> dict[str, Any]:  # fmt: skip
    return {
        "type": "response.completed",
        "response": {
            "id": resp_id,
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": reasoning},
                "total_tokens": input_tokens + output_tokens,
            },
        },
    }


def ev_failed(code: str, message: str = "") -> dict[str, Any]:
    return {
        "type": "response.failed",
        "response": {"id": "resp_f", "error": {"code": code, "message": message}},
    }


def message_turn(text: str) -> list[dict[str, Any]]:
    return [ev_created(), ev_message(text), ev_completed()]


def check_invariants(body: dict[str, Any]) -> None:
    """Every call has exactly one output, right after the calls of its response; no orphans."""
    calls = [i["call_id"] for i in body["input"] if i.get("type") in ("function_call", "custom_tool_call",
                                                                     "local_shell_call")]  # fmt: skip
    outputs = [i["call_id"] for i in body["input"] if i.get("type") in ("function_call_output",
                                                                       "custom_tool_call_output")]  # fmt: skip
    assert sorted(calls) == sorted(outputs), f"calls {calls} vs outputs {outputs}"
    assert len(set(outputs)) == len(outputs), f"duplicate outputs {outputs}"
    for cid in outputs:
        ci = next(i for i, it in enumerate(body["input"]) if it.get("call_id") == cid)
        oi = next(
            i for i, it in enumerate(body["input"])
            if it.get("call_id") == cid and it.get("type", "").endswith("_output")
        )  # fmt: skip
        assert ci < oi, f"output of {cid} precedes its call"

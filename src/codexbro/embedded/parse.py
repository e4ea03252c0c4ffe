"""Tolerant parsing of what a small model wrote: a tool call in any of the shapes small models
produce — bare JSON, a ```json fence, Qwen's ``<tool_call>`` tags — or plain text."""

from __future__ import annotations

import json
import re
from typing import Any

from msgspec import Struct

_FENCE = re.compile(r"```(?:json|tool_call)?\s*(\{.*?\})\s*```", re.DOTALL)
_TAG = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


class ParsedCall(Struct, frozen=True):
    name: str
    arguments: dict[str, Any]


def parse_output(text: str, tool_names: set[str]) -> ParsedCall | str:
    """A call to one of ``tool_names``, or the text itself (stripped) when it is not a call."""
    stripped = text.strip()
    candidates = [m.group(1) for m in _TAG.finditer(stripped)] + [
        m.group(1) for m in _FENCE.finditer(stripped)
    ]
    if stripped.startswith("{"):
        candidates.insert(0, stripped)
    for raw in candidates:
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        name = doc.get("name") or doc.get("tool")
        args = doc.get("arguments", doc.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                args = {"input": args}
        if isinstance(name, str) and name in tool_names and isinstance(args, dict):
            return ParsedCall(name, args)
    return stripped

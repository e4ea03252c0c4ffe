"""What a code-mode request carries instead of a top-level ``tools`` list: one ``additional_tools``
input item whose ``functions`` namespace holds ``exec`` (its description declares every nested tool
in TypeScript, as 0.169 generates it from the tools' JSON schemas) and ``wait``, plus the tools the
model calls directly (``request_user_input``). The fixed part of ``exec``'s description and both
specs are 0.169's own (``specs/code_mode.json``, ``exec_header.md``; Apache-2.0, openai/codex).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent
# 0.169 declares these results; other tools resolve to ``unknown`` (the text the model would read).
_RESULTS: dict[str, dict[str, Any]] = {}
_UNIFIED_RESULT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "chunk_id": {"type": "string", "description": "Chunk identifier included when the response reports one."},
        "exit_code": {"type": "number", "description": "Process exit code when the command finished during this call."},
        "original_token_count": {"type": "number", "description": "Approximate token count before output truncation."},
        "output": {"type": "string", "description": "Command output text, possibly truncated."},
        "session_id": {"type": "number", "description": "Session identifier to pass to write_stdin when the process is still running."},
        "wall_time_seconds": {"type": "number", "description": "Elapsed wall time spent waiting for output in seconds."},
    },
    "required": ["output", "wall_time_seconds"],
}  # fmt: skip
_RESULTS["exec_command"] = _RESULTS["write_stdin"] = _UNIFIED_RESULT
_RESULTS["view_image"] = {
    "type": "object",
    "properties": {"image_url": {"type": "string", "description": "Data URL for the loaded image."}},
    "required": ["image_url"],
}


# 0.169 describes these nested tools in its own words in code mode (its grammar-free freeform tools).
_DESCRIPTIONS = {
    "apply_patch": "The `apply_patch` tool can be used to edit files. This is a FREEFORM tool, so do not "
    "wrap the patch in JSON.",
}


def specs() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_HERE.parent / "specs" / "code_mode.json").read_text(encoding="utf-8"))
    return data


def ts_type(schema: Any, indent: str = "") -> str:
    """A JSON schema as a TypeScript type, members sorted, each led by its description."""
    if not isinstance(schema, dict):
        return "unknown"
    if "enum" in schema and isinstance(schema["enum"], list):
        return " | ".join(json.dumps(v) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return " | ".join(ts_type(s, indent) for s in schema[key])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(ts_type({**schema, "type": k}, indent) for k in kind)
    if kind == "string":
        return "string"
    if kind in ("number", "integer"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "null":
        return "null"
    if kind == "array":
        return f"Array<{ts_type(schema.get('items'), indent)}>"
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        if not isinstance(props, dict) or not props:
            extra = schema.get("additionalProperties")
            return f"Record<string, {ts_type(extra, indent)}>" if isinstance(extra, dict) else "{}"
        required = set(schema.get("required") or [])
        inner = indent + "  "
        lines = ["{"]
        for name in sorted(props):
            sub = props[name]
            desc = sub.get("description") if isinstance(sub, dict) else None
            if isinstance(desc, str) and desc:
                lines.extend(f"{inner}// {line}" for line in desc.splitlines())
            mark = "" if name in required else "?"
            key = name if name.replace("_", "a").isalnum() else json.dumps(name)
            lines.append(f"{inner}{key}{mark}: {ts_type(sub, inner)};")
        lines.append(indent + "}")
        return "\n".join(lines)
    return "unknown"


def declaration(name: str, spec: dict[str, Any]) -> str:
    """One nested tool's section: its description and its ``declare const tools`` line."""
    if spec.get("type") == "custom":
        signature = f"{name}(input: string): Promise<unknown>"
    else:
        params = spec.get("parameters") or {"type": "object", "properties": {}}
        result = ts_type(_RESULTS[name]) if name in _RESULTS else "unknown"
        signature = f"{name}(args: {ts_type(params)}): Promise<{result}>"
    return (
        f"{_DESCRIPTIONS.get(name, spec.get('description', ''))}\n\nexec tool declaration:\n```ts\n"
        f"declare const tools: {{ {signature}; }};\n```"
    )


def exec_spec(nested: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """``exec``'s spec (description listing ``nested`` by JavaScript name) and ``ALL_TOOLS``."""
    header = (_HERE / "exec_header.md").read_text(encoding="utf-8")
    sections, all_tools = [], []
    for name in sorted(nested):
        text = declaration(name, nested[name])
        sections.append(f"### `{name}`\n{text}")
        all_tools.append({"name": name, "description": text})
    spec = dict(specs()["exec"])
    spec["description"] = header + "\n\n".join(sections)
    return spec, all_tools


def additional_tools(
    top: list[dict[str, Any]], namespaces: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The input item carrying the menu (0.169 puts it first in ``input``): the ``functions``
    namespace, then the other namespaces of direct tools (``collaboration``)."""
    functions = {"type": "namespace", "name": "functions", "description": "", "tools": top}
    return {"type": "additional_tools", "role": "developer", "tools": [functions, *(namespaces or [])]}

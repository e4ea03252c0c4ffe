"""How an MCP tool appears to the model: its name and its parameters schema.

Names: the seed's flat form ``mcp__SERVER__TOOL`` (upstream ≤ early 2026), each part sanitised to
``[a-zA-Z0-9_]`` (0.169's sanitiser maps every other character, ``-`` included, to ``_``); a name
over 64 characters keeps a prefix and ends with the 40-hex SHA-1 of the full name, so it is 64
long and still unique. Two tools that land on the same name: the later one is skipped (logged).

Schemas: the Responses API takes a JSON-Schema subset; upstream's sanitiser infers a missing
``type`` (properties/required/additionalProperties → object, items/prefixItems → array,
enum/const/format → string, the numeric keywords → number, else string), takes the first supported
member of a ``type`` list, turns boolean schemas into ``{"type":"string"}``, gives objects
``properties`` and arrays ``items`` when missing, and recurses into ``oneOf``/``anyOf``/``allOf``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

PREFIX = "mcp"
DELIMITER = "__"
MAX_NAME = 64
_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_SUPPORTED = ("object", "array", "string", "number", "integer", "boolean", "null")
_NUMERIC = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def sanitize(part: str) -> str:
    return _INVALID.sub("_", part) or "_"


def qualified_name(server: str, tool: str) -> str:
    """``mcp__SERVER__TOOL``, sanitised and at most 64 characters."""
    full = DELIMITER.join((PREFIX, sanitize(server), sanitize(tool)))
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha1(full.encode("utf-8")).hexdigest()
    return full[: MAX_NAME - len(digest)] + digest


def namespace(server: str) -> str:
    """The deferred form's namespace (0.169 with ``tool_search``): ``mcp__SERVER``."""
    return DELIMITER.join((PREFIX, sanitize(server)))


def model_schema(schema: Any) -> dict[str, Any]:
    """A tool's ``inputSchema`` as the Responses API accepts it (always an object schema)."""
    out = _sanitize(schema if isinstance(schema, dict) else {})
    if out.get("type") != "object":
        out = {"type": "object", "properties": {}}
    out.setdefault("properties", {})
    return out


def _infer_type(schema: dict[str, Any]) -> str:
    if any(k in schema for k in ("properties", "required", "additionalProperties")):
        return "object"
    if any(k in schema for k in ("items", "prefixItems")):
        return "array"
    if any(k in schema for k in ("enum", "const", "format")):
        return "string"
    if any(k in schema for k in _NUMERIC):
        return "number"
    return "string"


def _sanitize(schema: Any) -> dict[str, Any]:
    if isinstance(schema, bool) or not isinstance(schema, dict):
        return {"type": "string"}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("$schema", "$id", "title", "examples", "default"):
            continue  # noise for the model, and `default` may not validate under the subset
        out[key] = value
    kind = out.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k in _SUPPORTED and k != "null"), None)
    if not isinstance(kind, str) or kind not in _SUPPORTED:
        has_union = any(k in out for k in ("oneOf", "anyOf", "allOf"))
        kind = None if has_union else _infer_type(out)
    if kind is not None:
        out["type"] = kind
    if kind == "object":
        props = out.get("properties")
        out["properties"] = {k: _sanitize(v) for k, v in props.items()} if isinstance(props, dict) else {}
        extra = out.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = _sanitize(extra)
    elif kind == "array":
        items = out.get("items")
        out["items"] = _sanitize(items) if items is not None else {"type": "string"}
        if isinstance(out.get("prefixItems"), list):
            out["prefixItems"] = [_sanitize(s) for s in out["prefixItems"]]
    for key in ("oneOf", "anyOf", "allOf"):
        if isinstance(out.get(key), list):
            out[key] = [_sanitize(s) for s in out[key]]
    for key in ("$defs", "definitions"):
        if isinstance(out.get(key), dict):
            out[key] = {k: _sanitize(v) for k, v in out[key].items()}
    return out

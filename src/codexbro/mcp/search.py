"""``tool_search`` (upstream 0.169, for models whose catalog entry has ``supports_search_tool``):
the MCP servers' tools are not on the menu; the developer message lists their namespaces
(``mcp__SERVER``: the server's instructions, else "Tools in the mcp__SERVER namespace."), the model
searches them, and the matching tools come back grouped by namespace with ``defer_loading: true``;
the model then calls ``{namespace: "mcp__SERVER", name: TOOL}``. Ranking is BM25 over each tool's
name, server, description and parameter names, as upstream's (the exact tokenisation and parameters are codexbro's:
k1 = 1.2, b = 0.75, lower-cased alphanumeric words, ``_``/``-`` split)."""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from codexbro.mcp import names
from codexbro.tools.base import RespondToModel, ToolCall, ToolContext, ToolOutput

if TYPE_CHECKING:
    from codexbro.mcp.manager import McpManager, McpToolInfo

DESCRIPTION = (
    "# Tool discovery\n\nSearches over deferred tool metadata with BM25 and exposes matching tools for the next "
    "model call.\n\nSome of the tools may not have been provided to you upfront, and you should use this tool "
    "(`tool_search`) to search for the required tools. For MCP tool discovery, always use `tool_search` instead "
    "of `list_mcp_resources` or `list_mcp_resource_templates`."
)
DEFAULT_LIMIT = 8
MAX_QUERY_CHARS = 4_000
MAX_QUERY_WORDS = 64
_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def rank(query: str, docs: list[str], limit: int) -> list[int]:
    """Indexes of ``docs`` by BM25 score for ``query`` (scores above zero only), best first. The
    query is read once and capped at ``MAX_QUERY_WORDS`` distinct words: a huge one costs nothing."""
    tokenised = [_words(d) for d in docs]
    if not tokenised:
        return []
    query_words = list(dict.fromkeys(_words(query[:MAX_QUERY_CHARS])))[:MAX_QUERY_WORDS]
    avg = sum(len(t) for t in tokenised) / len(tokenised) or 1.0
    df: Counter[str] = Counter(w for t in tokenised for w in set(t))
    n = len(tokenised)
    scores = []
    for index, tokens in enumerate(tokenised):
        tf = Counter(tokens)
        score = 0.0
        for word in query_words:
            if word not in tf:
                continue
            idf = math.log(1 + (n - df[word] + 0.5) / (df[word] + 0.5))
            score += idf * tf[word] * 2.2 / (tf[word] + 1.2 * (0.25 + 0.75 * len(tokens) / avg))
        if score > 0:
            scores.append((score, index))
    scores.sort(key=lambda pair: (-pair[0], pair[1]))
    return [index for _score, index in scores[:limit]]


def namespace_descriptions(manager: McpManager) -> dict[str, str]:
    """Each ready server's namespace and its description (its instructions' first line, as the
    developer message shows them)."""
    out = {}
    for name in sorted(manager.connections):
        conn = manager.connections[name]
        if conn.state == "ready":
            ns = names.namespace(name)
            text = (conn.instructions or "").strip().splitlines()
            out[ns] = text[0] if text else f"Tools in the {ns} namespace."
    return out


def deferred_developer_text(manager: McpManager) -> str | None:
    described = namespace_descriptions(manager)
    if not described:
        return None
    lines = "\n".join(f"- {ns}: {text}" for ns, text in described.items())
    return f"<tools>\nDeferred tool namespaces:\n{lines}\n</tools>"


def deferred_name(info: McpToolInfo) -> str:
    """How a deferred tool is dispatched: ``NAMESPACE::TOOL`` (a call names both)."""
    return f"{names.namespace(info.server)}::{names.sanitize(info.tool)}"


class ToolSearchHandler:
    """The ``tool_search`` tool: BM25 over the deferred MCP tools."""

    name = "tool_search"
    supports_parallel = True

    def __init__(self, manager: McpManager) -> None:
        self.manager = manager

    def spec(self) -> dict[str, Any]:
        return {"type": "tool_search", "execution": "client", "description": DESCRIPTION, "parameters": {
            "type": "object",
            "properties": {
                "limit": {"type": "number", "description": "Maximum number of tools to return. Defaults to 8."},
                "query": {"type": "string", "description": "Search query for deferred tools."},
            },
            "required": ["query"], "additionalProperties": False,
        }}  # fmt: skip

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        import json

        try:
            args = json.loads(call.arguments or "{}")
        except ValueError as exc:
            raise RespondToModel(f"failed to parse tool_search arguments: {exc}") from None
        query = args.get("query") if isinstance(args, dict) else None
        if not isinstance(query, str) or not query.strip():
            raise RespondToModel("tool_search needs a non-empty `query`")
        limit = args.get("limit", DEFAULT_LIMIT)
        ok = (
            isinstance(limit, int | float)
            and not isinstance(limit, bool)
            and math.isfinite(limit)
            and limit >= 1
        )
        limit = min(int(limit), 100) if ok else DEFAULT_LIMIT
        tools = self.manager.tools()
        docs = [
            f"{t.tool} {t.server} {t.description} {' '.join(t.input_schema.get('properties') or {})}"
            for t in tools
        ]
        found = [tools[i] for i in rank(query, docs, limit)]
        described = namespace_descriptions(self.manager)
        grouped: dict[str, list[dict[str, Any]]] = {}
        for info in found:
            grouped.setdefault(names.namespace(info.server), []).append({
                "type": "function", "name": names.sanitize(info.tool), "description": info.description,
                "strict": False, "defer_loading": True, "parameters": info.input_schema,
            })  # fmt: skip
        namespaces = [{"type": "namespace", "name": ns, "description": described.get(ns, f"Tools in the {ns} namespace."),
                       "tools": entries} for ns, entries in grouped.items()]  # fmt: skip
        return ToolOutput(namespaces)

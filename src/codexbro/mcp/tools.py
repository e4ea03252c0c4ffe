"""MCP tools on the menu: one function tool per server tool (``mcp__SERVER__TOOL``), and the three
resource tools (``list_mcp_resources``, ``list_mcp_resource_templates``, ``read_mcp_resource``).

A call is decided as upstream 0.169 decides it (``approval_mode`` of the tool, else the server's
``default_tools_approval_mode``, else ``auto``): ``approve`` never asks, ``prompt`` always asks,
``writes`` asks unless the tool says it is read-only, ``auto`` asks for destructive tools and for
tools that neither say they are read-only nor that they are closed-world and non-destructive.
Asking goes to the user as a question (upstream asks through ``request_user_input`` too). Under
approval policy ``never`` nobody is asked and the call runs — as shell commands do in ``exec``
(upstream 0.169 refuses instead; codexbro follows the seed: ``never`` means run without asking).

Output, as 0.169: with ``structuredContent`` the model reads ``Wall time: S seconds\\nOutput:\\n``
plus that JSON; otherwise a list of content items — that header as text, then each MCP content
block (text → ``input_text``, image → ``input_image`` when the model takes images, resources as
their text). ``isError`` results keep their content and are marked failed.
"""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING, Any

from codexbro import protocol as p
from codexbro.mcp.connection import McpCallError
from codexbro.protocol.images import MAX_IMAGE_BYTES, image_mime
from codexbro.tools.base import FunctionTool, RespondToModel, ToolCall, ToolContext, ToolOutput, function_spec
from codexbro.tools.output import truncate_text

if TYPE_CHECKING:
    from codexbro.mcp.manager import McpManager, McpToolInfo

ACCEPT, ACCEPT_SESSION, DECLINE, CANCEL = "Accept", "Accept for session", "Decline", "Cancel"


def requires_approval(annotations: dict[str, Any], mode: str) -> bool:
    read_only = annotations.get("readOnlyHint") is True
    if mode == "approve":
        return False
    if mode == "prompt":
        return True
    if mode == "writes":
        return not read_only
    destructive = annotations.get("destructiveHint")
    if destructive is True:
        return True
    if read_only:
        return False
    return destructive is not False or annotations.get("openWorldHint") is not False


def _duration(seconds: float) -> dict[str, int]:
    whole = int(seconds)
    return {"secs": whole, "nanos": int((seconds - whole) * 1e9)}


def model_output(result: dict[str, Any], seconds: float, *, images: bool, mode: str = "bytes",
                 limit: int = 10_000) -> ToolOutput:  # fmt: skip
    """A ``CallToolResult`` as the model reads it (0.169's shape), its text cut to the turn's
    output budget (``mode``/``limit``, as every tool's output is) — a server cannot flood the context."""
    header = f"Wall time: {seconds:.4f} seconds\nOutput:"
    failed = bool(result.get("isError"))
    structured = result.get("structuredContent")
    if structured is not None and not failed:
        text = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
        return ToolOutput(f"{header}\n{truncate_text(text, mode, limit)}")
    blocks = [_content_item(block, images) for block in result.get("content") or []]
    texts = sum(1 for b in blocks if b["type"] == "input_text")
    share = max(1, limit // max(1, texts))
    for block in blocks:
        if block["type"] == "input_text":
            block["text"] = truncate_text(block["text"], mode, share)
    return ToolOutput([{"type": "input_text", "text": header}, *blocks], success=not failed)


def _image(block: dict[str, Any]) -> dict[str, Any]:
    """An image block as an ``input_image`` — only when its bytes are an image the API takes (a bad
    one in the history would fail every later request of the session): the type is sniffed, not
    taken from the server."""
    data = str(block.get("data", ""))
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raw = b""
    mime = image_mime(raw[:16]) if raw and len(raw) <= MAX_IMAGE_BYTES else None
    if mime is None:
        return {
            "type": "input_text",
            "text": f"<image from the server omitted: not a valid PNG, JPEG, GIF or WebP under 20 MiB ({len(data)} base64 characters)>",
        }
    return {
        "type": "input_image",
        "image_url": f"data:{mime};base64,{base64.b64encode(raw).decode()}",
        "detail": "original",
    }


def _content_item(block: Any, images: bool) -> dict[str, Any]:
    if not isinstance(block, dict):
        return {"type": "input_text", "text": str(block)}
    kind = block.get("type")
    if kind == "text":
        return {"type": "input_text", "text": str(block.get("text", ""))}
    if kind == "image":
        if images:
            return _image(block)
        mime = str(block.get("mimeType") or "image")
        return {"type": "input_text", "text": f"<image ({mime}) omitted: this model does not take images>"}
    if kind == "resource":
        res = block.get("resource") or {}
        text = res.get("text")
        if text is None:
            text = f"<binary resource {res.get('uri', '')} ({res.get('mimeType', 'unknown type')})>"
        return {"type": "input_text", "text": str(text)}
    if kind == "resource_link":
        return {"type": "input_text", "text": f"resource: {block.get('uri', '')} ({block.get('name', '')})"}
    if kind == "audio":
        return {"type": "input_text", "text": f"<audio ({block.get('mimeType', 'unknown type')}) omitted>"}
    return {"type": "input_text", "text": json.dumps(block, ensure_ascii=False)}


class McpToolHandler:
    """One server tool."""

    def __init__(
        self, manager: McpManager, info: McpToolInfo, *, images: bool, deferred: bool = False
    ) -> None:
        self.manager, self.info, self.images = manager, info, images
        self.deferred = deferred  # found through tool_search and called by namespace, never on the menu
        if deferred:
            from codexbro.mcp.search import deferred_name

            self.name = deferred_name(info)
        else:
            self.name = info.qualified
        self.supports_parallel = info.parallel

    def spec(self) -> dict[str, Any]:
        return {"type": "function", "name": self.name, "description": self.info.description, "strict": False,
                "parameters": self.info.input_schema}  # fmt: skip

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        info = self.info
        if call.kind != "function":
            raise RespondToModel(f"{self.name} handler received unsupported payload")
        try:
            from codexbro import textsafe

            arguments = textsafe.loads(call.arguments) if call.arguments.strip() else {}
        except ValueError as exc:
            raise RespondToModel(f"failed to parse function arguments: {exc}") from None
        if not isinstance(arguments, dict):
            raise RespondToModel("failed to parse function arguments: expected a JSON object")
        invocation = {"server": info.server, "tool": info.tool, "arguments": arguments}
        ctx.emit(p.McpToolCallBegin(call.call_id, invocation))
        refusal = await self._approve(call, ctx)
        if refusal is not None:
            ctx.emit(p.McpToolCallEnd(call.call_id, invocation, _duration(0), {"Err": refusal}))
            return ToolOutput(refusal, success=False)
        conn = self.manager.connection(info.server)
        started = time.monotonic()
        try:
            if conn is None:
                raise McpCallError(f"MCP server `{info.server}` is not running")
            result = await conn.call_tool(info.tool, arguments, conn.config.tool_timeout_s)
        except McpCallError as exc:
            seconds = time.monotonic() - started
            message = f"tool call failed for `{info.server}/{info.tool}`: {exc}"
            ctx.emit(p.McpToolCallEnd(call.call_id, invocation, _duration(seconds), {"Err": message}))
            self.manager.report_deaths()
            return ToolOutput(message, success=False)
        seconds = time.monotonic() - started
        ctx.emit(p.McpToolCallEnd(call.call_id, invocation, _duration(seconds), {"Ok": result}))
        return model_output(
            result, seconds, images=self.images, mode=ctx.truncation_mode, limit=ctx.truncation_limit
        )

    async def _approve(self, call: ToolCall, ctx: ToolContext) -> str | None:
        """None when the call may run; otherwise the text the model reads."""
        info = self.info
        conn = self.manager.connection(info.server)
        mode = conn.config.approval_mode(info.tool) if conn is not None else "auto"
        if not requires_approval(info.annotations, mode) or ctx.approval_policy == "never":
            return None
        if (info.server, info.tool) in self.manager.approved_for_session:
            return None
        if ctx.ask_user is None:
            return (
                "MCP tool call requires approval, but nobody can approve it here (no interactive front end)"
            )
        question = {
            "id": f"mcp_tool_call_approval_{call.call_id}",
            "header": "Approve MCP tool call?",
            "question": f"Allow the `{info.server}` MCP server to run tool `{info.tool}`?",
            "options": [
                {"label": ACCEPT, "description": "Run the tool and continue."},
                {"label": ACCEPT_SESSION, "description": "Run it and don't ask again for this tool in this session."},
                {"label": DECLINE, "description": "Decline this tool call and continue."},
                {"label": CANCEL, "description": "Cancel this tool call."},
            ],
        }  # fmt: skip
        answers = await ctx.ask_user(p.RequestUserInput(call.call_id, ctx.turn_id, [question]))
        choice = answers.get(question["id"]) if isinstance(answers, dict) else None
        if choice == ACCEPT_SESSION:
            self.manager.approved_for_session.add((info.server, info.tool))
            return None
        if choice == ACCEPT:
            return None
        if choice == CANCEL:
            return "user cancelled MCP tool call"
        return "user rejected MCP tool call"


# ---- resource tools ------------------------------------------------------------------------------

_SERVER_ANY = "Optional MCP server name. When omitted, {what} from every configured server."
_CURSOR = "Opaque cursor returned by a previous {tool} call for the same server."


class _ResourceTool(FunctionTool):
    supports_parallel = True
    LIST_KEY = ""

    def __init__(self, manager: McpManager) -> None:
        self.manager = manager

    async def _listing(self, call: ToolCall, ctx: ToolContext, method: str) -> ToolOutput:
        args = self.args(call)
        server, cursor = args.get("server") or None, args.get("cursor") or None
        if cursor and not server:
            raise RespondToModel("cursor can only be used when a server is specified")
        invocation = {"server": "codex", "tool": self.name, "arguments": args}
        ctx.emit(p.McpToolCallBegin(call.call_id, invocation))
        started = time.monotonic()
        out: dict[str, Any] = {self.LIST_KEY: []}
        try:
            names = [server] if server else sorted(self.manager.connections)
            for name in names:
                conn = self.manager.connection(name)
                if conn is None:
                    raise McpCallError(f"unknown MCP server `{name}`")
                if not server and conn.state != "ready":
                    continue
                page = await getattr(conn, method)(cursor)
                out[self.LIST_KEY] += [{"server": name, **item} for item in page.get(self.LIST_KEY, [])]
                if server and page.get("nextCursor"):
                    out["nextCursor"] = page["nextCursor"]
        except McpCallError as exc:
            return self._end(call, ctx, invocation, started, error=f"{self.name} failed: {exc}")
        return self._end(call, ctx, invocation, started, result=out)

    def _end(self, call: ToolCall, ctx: ToolContext, invocation: dict[str, Any], started: float, *,
             result: dict[str, Any] | None = None, error: str | None = None) -> ToolOutput:  # fmt: skip
        duration = _duration(time.monotonic() - started)
        if error is not None:
            ctx.emit(p.McpToolCallEnd(call.call_id, invocation, duration, {"Err": error}))
            return ToolOutput(error, success=False)
        text = json.dumps(result, ensure_ascii=False)
        wire = {"content": [{"type": "text", "text": text}]}
        ctx.emit(p.McpToolCallEnd(call.call_id, invocation, duration, {"Ok": wire}))
        return ToolOutput(truncate_text(text, ctx.truncation_mode, ctx.truncation_limit))


class ListMcpResources(_ResourceTool):
    name = "list_mcp_resources"
    LIST_KEY = "resources"
    SPEC = function_spec(
        name,
        "Lists resources provided by MCP servers. Resources allow servers to share data that provides context to "
        "language models, such as files, database schemas, or application-specific information. Prefer resources "
        "over web search when possible.",
        {"server": {"type": "string", "description": _SERVER_ANY.format(what="lists resources")},
         "cursor": {"type": "string", "description": _CURSOR.format(tool=name)}},
        [],
    )  # fmt: skip

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        return await self._listing(call, ctx, "list_resources")


class ListMcpResourceTemplates(_ResourceTool):
    name = "list_mcp_resource_templates"
    LIST_KEY = "resourceTemplates"
    SPEC = function_spec(
        name,
        "Lists resource templates provided by MCP servers. Parameterized resource templates allow servers to share "
        "data that takes parameters and provides context to language models, such as files, database schemas, or "
        "application-specific information. Prefer resource templates over web search when possible.",
        {"server": {"type": "string", "description": _SERVER_ANY.format(what="lists resource templates")},
         "cursor": {"type": "string", "description": _CURSOR.format(tool=name)}},
        [],
    )  # fmt: skip

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        return await self._listing(call, ctx, "list_resource_templates")


class ReadMcpResource(_ResourceTool):
    name = "read_mcp_resource"
    SPEC = function_spec(
        name,
        "Read a specific resource from an MCP server given the server name and resource URI.",
        {"server": {"type": "string", "description": "MCP server name exactly as configured. Must match the "
                    "'server' field returned by list_mcp_resources."},
         "uri": {"type": "string", "description": "Resource URI to read. Must be one of the URIs returned by "
                 "list_mcp_resources."}},
        ["server", "uri"],
    )  # fmt: skip

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        args = self.args(call)
        invocation = {"server": "codex", "tool": self.name, "arguments": args}
        ctx.emit(p.McpToolCallBegin(call.call_id, invocation))
        started = time.monotonic()
        conn = self.manager.connection(str(args["server"]))
        try:
            if conn is None:
                raise McpCallError(f"unknown MCP server `{args['server']}`")
            result = await conn.read_resource(str(args["uri"]))
        except McpCallError as exc:
            return self._end(call, ctx, invocation, started, error=f"read_mcp_resource failed: {exc}")
        return self._end(call, ctx, invocation, started, result={"server": args["server"], **result})

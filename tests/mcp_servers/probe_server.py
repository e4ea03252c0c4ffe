"""A test MCP server written with the official SDK: text, structured, image, error, slow and
crashing tools, a resource and a template, an elicitation. Run as
``python probe_server.py [stdio|http PORT]``; ``PROBE_LOG`` names a file each call is appended to.

Tools: echo (text), add (structured), pixel (an image), fail (isError), slow (sleeps), crash (the
process exits), ask (elicits a confirmation), env (a variable's value), write_note (no annotations)."""

from __future__ import annotations

import base64
import os
import sys
import time

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel

server = MCPServer("probe", instructions="a test server")
READ_ONLY = ToolAnnotations(readOnlyHint=True)
PNG_1x1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _log(line: str) -> None:
    path = os.environ.get("PROBE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


@server.tool(description="Echo the text back.", annotations=READ_ONLY)
def echo(text: str) -> str:
    _log(f"echo {text}")
    return f"echo: {text}"


class Sum(BaseModel):
    sum: int


@server.tool(name="add-numbers.v2", description="Add two integers.", annotations=READ_ONLY)
def add(a: int, b: int) -> Sum:
    _log(f"add {a} {b}")
    return Sum(sum=a + b)


@server.tool(description="A one-pixel PNG and a caption.", annotations=READ_ONLY)
def pixel() -> list[TextContent | ImageContent]:
    return [
        TextContent(type="text", text="a red pixel"),
        ImageContent(type="image", data=base64.b64encode(PNG_1x1).decode(), mimeType="image/png"),
    ]


@server.tool(description="Always fails.", annotations=READ_ONLY)
def fail(reason: str = "it broke") -> str:
    raise ToolError(reason)


@server.tool(description="Sleep for some seconds, then answer.", annotations=READ_ONLY)
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return f"slept {seconds}"


@server.tool(description="Kill the server process.", annotations=READ_ONLY)
def crash() -> str:
    print("probe: crashing on purpose", file=sys.stderr, flush=True)
    os._exit(3)


class Confirm(BaseModel):
    ok: bool


@server.tool(description="Ask the user to confirm.", annotations=READ_ONLY)
async def ask(question: str, ctx: Context) -> str:
    result = await ctx.elicit(question, Confirm)
    return f"elicitation: {result.action}"


@server.tool(description="A variable of the server's environment.", annotations=READ_ONLY)
def env(name: str) -> str:
    return f"{name}={os.environ.get(name, '<unset>')}"


@server.tool(description="Write a note (no annotations: needs approval in auto mode).")
def write_note(text: str) -> str:
    _log(f"write_note {text}")
    return "noted"


@server.resource("probe://readme", name="readme", description="The probe's readme", mime_type="text/plain")
def readme() -> str:
    return "probe readme text"


@server.resource("probe://items/{item}", name="item", description="One item", mime_type="text/plain")
def item(item: str) -> str:
    return f"item {item}"


if __name__ == "__main__":
    print("probe: starting", file=sys.stderr, flush=True)
    if os.environ.get("PROBE_FAIL_START"):
        print("probe: refusing to start (PROBE_FAIL_START)", file=sys.stderr, flush=True)
        sys.exit(2)
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        import anyio

        anyio.run(lambda: server.run_streamable_http_async(host="127.0.0.1", port=int(sys.argv[2])))
    else:
        server.run("stdio")

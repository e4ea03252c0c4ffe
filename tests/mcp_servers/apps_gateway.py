"""A loopback fake of the ChatGPT apps MCP gateway (``…/backend-api/wham/apps``): real
streamable-HTTP MCP (the official SDK), tools of two "connectors" marked in their ``_meta``, and a
check of the account headers — a request without ``Authorization: Bearer <GATEWAY_TOKEN>`` and
``ChatGPT-Account-ID`` gets 401. Every request's headers of interest go to ``GATEWAY_LOG``.

    python apps_gateway.py PORT"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("codex_apps", instructions="ChatGPT connectors")
READ_ONLY = ToolAnnotations(readOnlyHint=True)


@server.tool(description="Search the user's GitHub issues.", annotations=READ_ONLY,
             meta={"connector_id": "connector_github", "connector_name": "GitHub"})  # fmt: skip
def github_search_issues(query: str) -> str:
    return f"2 issues match {query!r}"


@server.tool(description="Find calendar events.", annotations=READ_ONLY,
             meta={"connector_id": "connector_gcal", "connector_name": "Google Calendar"})  # fmt: skip
def calendar_find_events(day: str) -> str:
    return f"standup on {day}"


def checked(app: Any) -> Any:
    expected = f"Bearer {os.environ['GATEWAY_TOKEN']}"

    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            with open(os.environ["GATEWAY_LOG"], "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"path": scope["path"], "authorization": headers.get("authorization"),
                                     "account": headers.get("chatgpt-account-id")}) + "\n")  # fmt: skip
            if headers.get("authorization") != expected or not headers.get("chatgpt-account-id"):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"text/plain")],
                    }
                )
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await app(scope, receive, send)

    return middleware


if __name__ == "__main__":
    import uvicorn

    app = server.streamable_http_app(streamable_http_path="/backend-api/wham/apps")
    uvicorn.run(checked(app), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")

"""``POST {base}/responses/compact``: remote compaction (upstream v1). Unary JSON, normal auth headers.

Request ``{model, input, instructions, tools, parallel_tool_calls[, reasoning][, text]}``;
answer ``{"output": [items]}``. Errors are classified like the main request's.
"""

from __future__ import annotations

from typing import Any

from codexbro import textsafe
from codexbro.api.classify import classify_status
from codexbro.api.http import RouteHttp
from codexbro.api.routes import route
from codexbro.errors import FatalApiError, RetryableApiError, TransportError

COMPACT = route("responses.compact")


async def compact_remote(
    http: RouteHttp,
    base_url: str,
    query: dict[str, str] | None,
    body: dict[str, Any],
    headers: dict[str, str],
) -> list[dict[str, Any]]:
    url = COMPACT.url(base_url, query or None)
    try:
        response = await http.request(
            COMPACT, url, headers={"content-type": "application/json", **headers}, json_body=body
        )
    except TransportError as exc:
        raise RetryableApiError(
            f"could not reach {url}: {exc.detail}",
            kind="http_connection_failed",
            route=COMPACT.name,
        ) from None
    if response.status_code >= 400:
        raise classify_status(
            response.status_code, response.content, {k.lower(): v for k, v in response.headers.items()}, url,
            COMPACT.name,
        )  # fmt: skip
    try:
        doc = textsafe.loads(response.content)
    except ValueError:
        raise FatalApiError(
            f"{url} answered with something other than JSON", kind="other", route=COMPACT.name
        ) from None
    output = doc.get("output") if isinstance(doc, dict) else None
    if not isinstance(output, list):
        raise FatalApiError(f"{url} answered without an `output` array", kind="other", route=COMPACT.name)
    return [i for i in output if isinstance(i, dict)]

"""``POST {base}/responses`` with SSE streaming: the main model request.

Two retry layers, as upstream:

1. Here, per HTTP request: up to ``request_max_retries`` more attempts on 5xx and transport
   failures *before any byte of the stream was used*, with 200 ms × 2^(k-1) × jitter backoff, or the
   server's ``Retry-After``. 429 and other 4xx are not retried here.
2. In the turn (``core.sampling``): up to ``stream_max_retries`` re-sends of the whole request on a
   ``RetryableApiError`` — stream drops, idle timeouts, 429s, exhausted layer-1 failures.

This module knows nothing of sessions or turns: it takes a body and headers and yields events.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from codexbro import textsafe
from codexbro.api import events as ev
from codexbro.api.classify import classify_failed, classify_status
from codexbro.api.http import RouteHttp
from codexbro.api.routes import route
from codexbro.errors import FatalApiError, RetryableApiError, TransportError

log = logging.getLogger(__name__)

RESPONSES = route("responses.create")
Sleep = Callable[[float], Awaitable[None]]


def backoff_s(attempt: int, base_ms: float = 200.0) -> float:
    """Delay before retry ``attempt`` (1-based): 200 ms × 2^(attempt-1) × U(0.9, 1.1)."""
    return base_ms * (2.0 ** (attempt - 1)) * random.uniform(0.9, 1.1) / 1000.0


NOTE_WAITS_FROM_S = 2.0  # shorter waits go unannounced, as upstream's backoff does
ERROR_BODY_BYTES = 1024 * 1024  # an error answer is read this far for its message
ERROR_BODY_S = 30.0


def retry_wait(asked: float | None, fallback: float, cap: float) -> tuple[float, str | None]:
    """How long to wait before a retry, and what to tell the user about it: the server's ask
    (``Retry-After``, or "try again in …") capped at ``cap`` seconds (``retry_wait_max_ms``;
    upstream waits whatever the server asks, an hour included, silently); our own backoff otherwise."""
    if asked is None or math.isnan(asked) or asked < 0:  # nothing usable: our own backoff
        return fallback, None
    if asked > cap:
        wanted = f"{asked:.0f} s" if math.isfinite(asked) else "an unlimited time"
        return cap, (
            f"waiting {cap:g} s before retrying: the server asked for {wanted}, and one wait is "
            "capped (`retry_wait_max_ms`)"
        )
    if asked >= NOTE_WAITS_FROM_S:
        return asked, f"waiting {asked:g} s before retrying, as the server asked"
    return asked, None


class ResponsesClient:
    """Streams one response. Holds no conversation state."""

    def __init__(
        self,
        http: RouteHttp,
        *,
        base_url: str,
        query_params: dict[str, str] | None = None,
        request_max_retries: int = 4,
        idle_timeout_s: float = 300.0,
        sleep: Sleep = asyncio.sleep,
        retry_wait_max_s: float = 60.0,
    ) -> None:
        self.http = http
        self.base_url = base_url
        self.query_params = query_params or {}
        self.request_max_retries = request_max_retries
        self.idle_timeout_s = idle_timeout_s
        self._sleep = sleep
        self.retry_wait_max_s = retry_wait_max_s
        self.on_wait: Callable[[str], None] | None = None  # told about long waits (the session: a warning)

    route = RESPONSES  # the chat bridge's subclass changes the route, the body and the event parsing

    @property
    def url(self) -> str:
        return self.route.url(self.base_url, self.query_params or None)

    def request_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """What is sent for a Responses ``body`` (here: the body itself)."""
        return body

    async def stream(self, body: dict[str, Any], headers: dict[str, str]) -> AsyncIterator[ev.ResponseEvent]:
        url, route = self.url, self.route
        headers = {"accept": "text/event-stream", "content-type": "application/json", **headers}
        payload = textsafe.json_bytes(self.request_body(body))
        attempts = self.request_max_retries + 1
        for attempt in range(1, attempts + 1):
            stack = AsyncExitStack()
            try:
                response = await stack.enter_async_context(
                    self.http.stream(route, url, attempt=attempt, headers=headers, content=payload)
                )
            except TransportError as exc:
                await stack.aclose()
                if attempt < attempts:
                    await self._sleep(backoff_s(attempt))
                    continue
                raise RetryableApiError(
                    f"could not reach {url} after {attempt} attempt(s): {exc.detail}",
                    kind="http_connection_failed",
                    route=route.name,
                ) from None
            async with stack:
                if response.status_code >= 400:
                    raw = await self._error_body(response)
                    error = classify_status(
                        response.status_code,
                        raw,
                        {k.lower(): v for k, v in response.headers.items()},
                        url,
                        route.name,
                    )
                    if (
                        isinstance(error, RetryableApiError)
                        and response.status_code >= 500
                        and attempt < attempts
                    ):
                        delay, note = retry_wait(error.retry_after, backoff_s(attempt), self.retry_wait_max_s)
                        if note is not None and self.on_wait is not None:
                            self.on_wait(f"{note} (HTTP {response.status_code} from {route.name})")
                        await self._sleep(delay)
                        continue
                    raise error
                limits = parse_rate_limits({k.lower(): v for k, v in response.headers.items()})
                if limits is not None:
                    yield ev.RateLimits(limits)
                async for event in self._events(response, body):
                    yield event
                return

    async def _error_body(self, response: Any) -> bytes:
        """An error answer's body, for its message: at most ``ERROR_BODY_BYTES`` of it, within
        ``ERROR_BODY_S`` (a server can make an error page as large and as slow as it likes)."""
        try:
            async with asyncio.timeout(ERROR_BODY_S):
                return bytes(await response.aread(limit=ERROR_BODY_BYTES))
        except (TimeoutError, TransportError):
            return b""

    async def _events(self, response: Any, body: dict[str, Any]) -> AsyncIterator[ev.ResponseEvent]:
        from codexbro.api.sse import SseError, response_events

        source = response_events(response)
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    sse = await anext(source)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise RetryableApiError(
                    "idle timeout waiting for SSE", kind="response_stream_disconnected", route=RESPONSES.name
                ) from None
            except (TransportError, SseError) as exc:
                raise RetryableApiError(
                    f"stream disconnected before completion: {_cause(exc)}",
                    kind="response_stream_disconnected",
                    route=RESPONSES.name,
                ) from None
            try:
                data = textsafe.loads(sse.data)
            except ValueError:
                log.debug("skipping unparseable SSE data line (%d bytes)", len(sse.data))
                continue
            if not isinstance(data, dict):
                continue
            event = stream_event(data, RESPONSES.name)
            if event is not None:
                yield event
                if isinstance(event, ev.Completed):
                    return
        raise RetryableApiError(
            "stream closed before response.completed",
            kind="response_stream_disconnected",
            route=RESPONSES.name,
        )


def stream_event(data: dict[str, Any], route: str) -> ev.ResponseEvent | None:
    """One stream event's JSON (an SSE ``data`` line or a WebSocket text frame) → a typed event;
    ``response.failed`` and ``response.incomplete`` raise, as the request's error."""
    kind = data.get("type")
    raw_resp = data.get("response")
    resp: dict[str, Any] = raw_resp if isinstance(raw_resp, dict) else {}  # a server's odd shapes: ignored
    if kind == "response.completed":
        return ev.Completed(
            response_id=resp.get("id") if isinstance(resp.get("id"), str) else None,
            usage=ev.TokenUsage.from_wire(resp.get("usage")),
            end_turn=resp.get("end_turn") if isinstance(resp.get("end_turn"), bool) else None,
        )
    if kind == "response.failed":
        err = resp.get("error")
        raise classify_failed(err if isinstance(err, dict) else None, route)
    if kind == "response.incomplete":
        details = resp.get("incomplete_details") or {}
        reason = details.get("reason") if isinstance(details, dict) else None
        raise FatalApiError(
            f"Incomplete response returned, reason: {reason or 'unknown'}", kind="other", route=route
        )
    return _parse_event(kind, data)


def _parse_event(kind: Any, data: dict[str, Any]) -> ev.ResponseEvent | None:
    item = data.get("item")
    if kind == "response.created":
        resp = data.get("response")
        rid = resp.get("id") if isinstance(resp, dict) else None
        return ev.Created(rid if isinstance(rid, str) else None) if isinstance(resp, dict) else None
    if kind == "response.output_item.added" and isinstance(item, dict):
        return ev.OutputItemAdded(item)
    if kind == "response.output_item.done" and isinstance(item, dict):
        return ev.OutputItemDone(item)
    if kind == "response.output_text.delta":
        return ev.OutputTextDelta(str(data.get("delta") or ""), data.get("item_id"))
    if kind == "response.reasoning_summary_text.delta":
        return ev.ReasoningSummaryDelta(str(data.get("delta") or ""), _int(data.get("summary_index")))
    if kind == "response.reasoning_summary_part.added":
        return ev.ReasoningSummaryPartAdded(_int(data.get("summary_index")))
    if kind == "response.reasoning_text.delta":
        return ev.ReasoningContentDelta(str(data.get("delta") or ""), _int(data.get("content_index")))
    if kind == "response.custom_tool_call_input.delta":
        return ev.ToolCallInputDelta(data.get("call_id") or data.get("item_id"), str(data.get("delta") or ""))
    return None  # in_progress, *.done, function_call_arguments.delta, …: nothing to do


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_rate_limits(headers: dict[str, str]) -> ev.RateLimitSnapshot | None:
    """The ``x-codex-primary-*`` / ``secondary-*`` family; None when the server sent none."""

    def window(prefix: str) -> ev.RateLimitWindow | None:
        used = _float(headers.get(f"x-codex-{prefix}-used-percent"))
        minutes = _maybe_int(headers.get(f"x-codex-{prefix}-window-minutes"))
        resets = _maybe_int(headers.get(f"x-codex-{prefix}-reset-at"))
        if not used and not minutes and resets is None:
            return None
        return ev.RateLimitWindow(used or 0.0, minutes, resets)

    primary, secondary = window("primary"), window("secondary")
    if primary is None and secondary is None:
        return None
    return ev.RateLimitSnapshot(primary=primary, secondary=secondary)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _maybe_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _cause(exc: Exception) -> str:
    return exc.detail if isinstance(exc, TransportError) else f"{type(exc).__name__}: {exc}"

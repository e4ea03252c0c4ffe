"""The one HTTP client every wire module uses: each request is made *by route*, never by raw URL.

``RouteHttp`` speaks HTTP/1.1 through ``api/transport.py`` (``h11`` over asyncio streams, kept-alive
connections, proxies and TLS as httpx read them) and reports every attempt to its observers as a
``RequestRecord`` (route, bucket, status, timing) — traces and the inspection commands subscribe
here, so nothing model-facing can happen off the record.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from msgspec import Struct, field

from codexbro.api.routes import Route, bucket_for
from codexbro.api.transport import Headers, Response, StreamResponse, Transport, TransportFailure
from codexbro.errors import TransportError

__all__ = ["Headers", "RequestRecord", "Response", "RouteHttp", "StreamResponse", "redact_headers"]


class RequestRecord(Struct):
    route: str
    bucket: str
    method: str
    url: str
    attempt: int
    status: int | None = None
    error: str | None = None
    duration_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Observer = Callable[[RequestRecord], None]

MAX_UNARY_BYTES = 16 * 1024 * 1024  # a JSON API answer; the model catalog is ~200 KiB
_DECODED_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class _TooLarge(Exception):
    pass


SECRET_HEADERS = frozenset(
    {"authorization", "chatgpt-account-id", "openai-organization", "openai-project", "cookie"}
)


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers safe to print: credentials replaced by a short fingerprint-free marker."""
    out = {}
    for key, value in headers.items():
        if key.lower() in SECRET_HEADERS:
            scheme = value.split(" ", 1)[0] if key.lower() == "authorization" and " " in value else ""
            out[key] = f"{scheme} <redacted>".strip()
        else:
            out[key] = value
    return out


class RouteHttp:
    """Route-tagged HTTP. Construct once per session; close with ``aclose``."""

    def __init__(
        self, *, timeout_s: float = 30.0, read_timeout_s: float | None = None, tls: bool = True
    ) -> None:
        self.observers: list[Observer] = []
        # A client that only ever talks plain http (a local server, the loopback fake) refuses
        # https URLs (see _check), so it never builds a TLS context (a CA bundle costs ~50 ms).
        self.tls = tls
        self.timeout_s = read_timeout_s if read_timeout_s is not None else timeout_s
        self._transport = Transport(timeout_s=timeout_s, read_timeout_s=read_timeout_s)

    def _check(self, url: str) -> None:
        if not self.tls and not url.startswith("http://"):
            raise ValueError(f"this HTTP client was built without TLS and cannot request {url}")

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _emit(self, record: RequestRecord) -> None:
        for observer in self.observers:
            observer(record)

    @asynccontextmanager
    async def stream(
        self,
        route: Route,
        url: str,
        *,
        attempt: int,
        headers: dict[str, str],
        json_body: Any = None,
        content: bytes | None = None,
    ) -> AsyncIterator[StreamResponse]:
        """Open a streaming request. The record is emitted once the status is known (or it failed).
        No answer — or a body that stops arriving while it is read — raises ``TransportError``."""
        self._check(url)
        if json_body is not None:
            content, headers = _json_content(json_body, headers)
        record = RequestRecord(route.name, bucket_for(route, url), route.method, url, attempt)
        started = time.monotonic()
        stack = AsyncExitStack()
        try:
            response = await stack.enter_async_context(
                self._transport.open(route.method, url, list(headers.items()), content or b"")
            )
        except TransportFailure as exc:
            record.error = describe_transport_error(exc)
            record.duration_ms = (time.monotonic() - started) * 1000
            self._emit(record)
            raise TransportError(record.error, route=route.name) from None
        record.status = response.status_code
        record.duration_ms = (time.monotonic() - started) * 1000
        self._emit(record)
        async with stack:
            yield StreamResponse(
                response.status_code, response.headers, _mapped(response.aiter_bytes(), route.name)
            )

    async def request(
        self,
        route: Route,
        url: str,
        *,
        headers: dict[str, str],
        json_body: Any = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        attempt: int = 1,
        timeout_s: float | None = None,
        max_bytes: int = MAX_UNARY_BYTES,
        deadline_s: float | None = None,
    ) -> Response:
        """A unary request (JSON APIs), its body read; no answer raises ``TransportError``. The
        body is read up to ``max_bytes`` after decoding (a larger one — or a compression bomb — is
        a ``TransportError``), and the whole exchange must end within ``deadline_s`` (default: four
        times the read timeout, at least a minute): a server that trickles a byte now and then,
        each within the read timeout, is cut off all the same."""
        import asyncio

        self._check(url)
        content = b""
        if json_body is not None:
            content, headers = _json_content(json_body, headers)
        elif files:
            from codexbro.api.bodies import multipart

            content, kind = multipart(data or {}, files)
            headers = {
                **{k: v for k, v in headers.items() if k.lower() != "content-type"},
                "content-type": kind,
            }
        elif data is not None:
            from urllib.parse import urlencode

            content = urlencode(data).encode()
            if not any(k.lower() == "content-type" for k in headers):
                headers = {**headers, "content-type": "application/x-www-form-urlencoded"}
        record = RequestRecord(route.name, bucket_for(route, url), route.method, url, attempt)
        started = time.monotonic()
        limit = deadline_s if deadline_s is not None else max(60.0, 4 * (timeout_s or self.timeout_s))
        try:
            async with asyncio.timeout(limit):
                async with self._transport.open(
                    route.method, url, list(headers.items()), content, read_s=timeout_s
                ) as response:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise _TooLarge
        except (TransportFailure, TimeoutError, _TooLarge) as exc:
            if isinstance(exc, TimeoutError):
                record.error = f"no complete answer within {limit:g} s"
            elif isinstance(exc, _TooLarge):
                record.error = f"the answer is over {max_bytes // 1024} KiB"
            else:
                record.error = describe_transport_error(exc)
            record.duration_ms = (time.monotonic() - started) * 1000
            self._emit(record)
            raise TransportError(record.error, route=route.name) from None
        record.status = response.status_code
        record.duration_ms = (time.monotonic() - started) * 1000
        self._emit(record)
        # the body is decoded already: the copy says so (no content-encoding)
        kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _DECODED_HEADERS]
        return Response(response.status_code, Headers(kept), bytes(body))


async def _mapped(chunks: AsyncIterator[bytes], route: str) -> AsyncIterator[bytes]:
    """A body's chunks with its transport failures raised as ``TransportError``."""
    try:
        async for chunk in chunks:
            yield chunk
    except TransportFailure as exc:
        raise TransportError(describe_transport_error(exc), route=route) from None


def describe_transport_error(exc: BaseException) -> str:
    kind = exc.kind if isinstance(exc, TransportFailure) else type(exc).__name__
    text = str(exc) or kind
    if "header" in text.lower() and ("illegal" in text.lower() or "invalid" in text.lower()):
        # h11 quotes the refused header, value and all: a credential must never reach a message
        text = "a request header has an invalid value (it is not shown: it may hold a credential)"
    return f"{kind}: {text}"


def _json_content(value: Any, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    from codexbro import textsafe

    if not any(k.lower() == "content-type" for k in headers):
        headers = {**headers, "content-type": "application/json"}
    return textsafe.json_bytes(value), headers

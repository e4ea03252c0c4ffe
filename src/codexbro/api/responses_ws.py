"""Responses over WebSocket, as upstream 0.169 (``docs`` in ../shared/reference §3.1; codex-rs
``core/src/client.rs`` and ``codex-api/src/endpoint/responses_websocket.rs``).

Two objects, as the seed names them:

- ``WsTransport`` (session-scoped, owned by the ``ResponsesModelClient``): the one socket a session
  keeps across turns, and the sticky fallback to HTTP/SSE.
- ``ModelClientSession`` (turn-scoped, ``ResponsesModelClient.start_turn``): the turn's transport
  state — its incremental baseline (the last request and the output items it produced, for
  ``previous_response_id``), the sticky-routing ``x-codex-turn-state`` header the handshake
  returned, and the counts of failed handshakes and dropped streams.

A turn's first request is preceded by upstream's prewarm (``generate: false``, the first developer
message only); each request after that is a ``response.create`` frame that carries only the new
input items with ``previous_response_id`` when upstream's rule allows it — every field but
``input`` unchanged, and the new input starting with the previous input plus the previous
response's output items — and the whole request otherwise. Server frames are the SSE events'
JSON, parsed by the same code (``responses.stream_event``); an ``error`` frame is an HTTP error
with that status; a close before ``response.completed`` is a retryable disconnect (the turn loop
retries as for SSE, and the socket and baseline are dropped).

Fallback to HTTP/SSE for the rest of the session: at once when the handshake is answered with an
HTTP status that says "no WebSocket here" (426 as upstream; also 400, 404, 405 — a gateway that
does not speak it, where upstream would retry six times first), or after ``stream_max_retries``
failed handshakes or dropped streams in a row. Each fallback says why once (a warning) and every
handshake is a trace record on the ``responses.websocket`` route.

Not verified against a live server (marked as such): the exact set of handshake headers beyond
those the reference lists, and whether the server closes idle sockets between turns (a closed
socket is simply opened again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from codexbro import textsafe
from codexbro.api import events as ev
from codexbro.api.classify import classify_status
from codexbro.api.http import RequestRecord
from codexbro.api.model_client import Prompt
from codexbro.api.responses import stream_event
from codexbro.api.routes import bucket_for, route
from codexbro.errors import ApiError, FatalApiError, RetryableApiError

if TYPE_CHECKING:
    from codexbro.api.responses_client import ResponsesModelClient

log = logging.getLogger(__name__)
WS_ROUTE = route("responses.websocket")
BETA = "responses_websockets=2026-02-06"
# Handshake answers that mean "this endpoint has no WebSocket": fall back at once.
NO_WEBSOCKET = frozenset({400, 404, 405, 426})
# Fields a request may differ in and still be sent incrementally (everything else must be equal).
_VARIABLE = frozenset({"input", "previous_response_id", "generate", "type"})


def ws_url(http_url: str) -> str:
    """``http(s)://…/responses`` → ``ws(s)://…/responses``."""
    if http_url.startswith("https://"):
        return "wss://" + http_url.removeprefix("https://")
    return "ws://" + http_url.removeprefix("http://")


class WsUnavailable(Exception):
    """The session uses HTTP/SSE from now on (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WsTransport:
    """The session's socket and whether WebSocket is still in use."""

    def __init__(self, url: str, *, connect_timeout_s: float, max_failures: int,
                 record: Callable[[RequestRecord], None] | None = None) -> None:  # fmt: skip
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.max_failures = max_failures
        self.record = record
        self.disabled: str | None = None  # why the session fell back to HTTP/SSE
        self.failures = 0  # failed handshakes and dropped streams in a row
        self.conn: Any = None
        self.handshakes = 0
        self._closing: set[asyncio.Task[None]] = set()

    def fall_back(self, reason: str) -> None:
        if self.disabled is None:
            self.disabled = reason
            log.warning("Responses over WebSocket off for this session: %s", reason)

    async def connect(self, headers: dict[str, str]) -> tuple[Any, dict[str, str]]:
        """The open socket (opened now if needed) and the handshake's response headers. A reused
        socket holding frames nobody asked for (sent after a response completed) is not reused:
        they would be read as the next request's answer."""
        if self.conn is not None and self.conn.state.name == "OPEN":
            if not await _has_pending(self.conn):
                return self.conn, {}
            log.warning("the Responses WebSocket sent frames after a completed response; opening a new one")
            self.discard()
        self.conn = None
        from websockets.exceptions import InvalidStatus, WebSocketException

        from codexbro.api.ws_connect import open_ws

        self.handshakes += 1
        rec = RequestRecord(WS_ROUTE.name, bucket_for(WS_ROUTE, self.url), "GET", self.url, self.handshakes)
        started = time.monotonic()
        try:
            conn = await open_ws(self.url, headers, open_timeout=self.connect_timeout_s)
        except InvalidStatus as exc:
            status = exc.response.status_code
            self._record(rec, started, status=status)
            if status == 401:
                # A stale credential, not a broken transport: the client refreshes the login and
                # opens the socket again with the new token (not counted towards the fallback).
                raise FatalApiError(f"the WebSocket handshake was answered HTTP 401 from {self.url}",
                                    kind="unauthorized", status=401, route=WS_ROUTE.name) from None  # fmt: skip
            if status in NO_WEBSOCKET:
                self.fall_back(f"the WebSocket handshake was answered HTTP {status}")
                raise WsUnavailable(self.disabled or "") from None
            self._failed(f"the WebSocket handshake was answered HTTP {status}")
            raise RetryableApiError(f"WebSocket handshake failed: HTTP {status} from {self.url}",
                                    kind="response_stream_disconnected", route=WS_ROUTE.name) from None  # fmt: skip
        except (OSError, TimeoutError, WebSocketException) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            self._record(rec, started, error=detail)
            self._failed(f"the WebSocket handshake failed ({detail})")
            raise RetryableApiError(f"could not open a WebSocket to {self.url}: {detail}",
                                    kind="http_connection_failed", route=WS_ROUTE.name) from None  # fmt: skip
        self._record(rec, started, status=101)
        self.conn = conn
        response = conn.response
        return conn, {k.lower(): v for k, v in response.headers.raw_items()} if response else {}

    def _record(
        self, rec: RequestRecord, started: float, *, status: int | None = None, error: str | None = None
    ) -> None:
        rec.status, rec.error = status, error
        rec.duration_ms = (time.monotonic() - started) * 1000
        if self.record is not None:
            self.record(rec)

    def _failed(self, reason: str) -> None:
        self.failures += 1
        if self.failures > self.max_failures:
            self.fall_back(f"{reason}; {self.failures} failures in a row")

    def dropped(self, reason: str) -> None:
        """The socket broke mid-stream: it is discarded (a new one next time)."""
        self.discard()
        self._failed(reason)

    def discard(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            task = asyncio.ensure_future(_close_quietly(conn))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await _close_quietly(conn)


async def _has_pending(conn: Any) -> bool:
    """Whether a frame is already waiting on ``conn`` (``recv`` may be cancelled safely)."""
    try:
        await asyncio.wait_for(conn.recv(), 0.001)
    except TimeoutError:
        return False
    except Exception:
        return True
    return True


async def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):  # closing a broken socket: nothing to report
        await asyncio.wait_for(conn.close(), 2.0)


class _Baseline(Struct):
    body: dict[str, Any]  # the last request, whole (input included)
    output: list[ev.ResponseItem] = field(default_factory=list)
    response_id: str | None = None


class ModelClientSession:
    """One turn's model transport: WebSocket with an incremental baseline while it works, the
    client's HTTP/SSE stream otherwise. ``stream`` has the client's signature."""

    def __init__(self, client: ResponsesModelClient, transport: WsTransport | None, turn_id: str) -> None:
        self.client = client
        self.transport = transport
        self.turn_id = turn_id
        self.turn_state: str | None = None  # x-codex-turn-state from the handshake (sticky routing)
        self.baseline: _Baseline | None = None
        self.prewarmed = False
        self.noted = False

    async def stream(self, prompt: Prompt, subagent: str | None = None) -> AsyncIterator[ev.ResponseEvent]:
        transport = self.transport
        if transport is None or transport.disabled is not None or subagent is not None:
            self._note()
            async for event in self.client.stream(prompt, subagent):
                yield event
            return
        try:
            await self.client.ensure_auth()
            conn, answer = await self._connect(transport)
            if answer.get("x-codex-turn-state"):
                self.turn_state = answer["x-codex-turn-state"]
            body = self.client.build_body(prompt)
            if not self.prewarmed:
                self.prewarmed = True
                await self._prewarm(conn, body)
            async for event in self._request(conn, body):
                yield event
            transport.failures = 0
        except WsUnavailable:
            self._note()
            async for event in self.client.stream(prompt, subagent):
                yield event

    async def _connect(self, transport: WsTransport) -> tuple[Any, dict[str, str]]:
        """Open (or reuse) the socket; a handshake answered 401 under a ChatGPT login refreshes the
        login and opens it again with the new token, as an HTTP request's 401 does."""
        for attempt in range(3):
            try:
                return await transport.connect(self._headers())
            except FatalApiError as err:
                manager = self.client.auth_manager
                if err.kind != "unauthorized" or manager is None or attempt == 2:
                    raise
                if not await manager.recover_unauthorized(attempt):
                    raise
                self.client._sync_auth()
        raise AssertionError("unreachable")

    def _note(self) -> None:
        transport = self.transport
        if (
            transport is not None
            and transport.disabled
            and not self.noted
            and self.client.on_wait is not None
        ):
            self.noted = True
            self.client.on_wait(f"Responses over WebSocket is off for this session ({transport.disabled}); "
                                "using HTTP/SSE")  # fmt: skip

    def _headers(self) -> dict[str, str]:
        headers = {**self.client.build_headers(), "openai-beta": BETA}
        if self.turn_state:
            headers["x-codex-turn-state"] = self.turn_state
        return headers

    async def _prewarm(self, conn: Any, body: dict[str, Any]) -> None:
        """Upstream's turn-start request: the first developer message, ``generate: false``."""
        first = body.get("input") or []
        if not first or first[0].get("type") != "message" or first[0].get("role") != "developer":
            return
        warm = {**body, "input": [first[0]], "generate": False}
        async for _event in self._request(conn, warm):
            pass

    def _frame(self, body: dict[str, Any]) -> dict[str, Any]:
        """The ``response.create`` frame: incremental on the baseline when upstream's rule allows."""
        base = self.baseline
        frame = {"type": "response.create", **body}
        if base is None or base.response_id is None:
            return frame
        same = {k: v for k, v in body.items() if k not in _VARIABLE} == {
            k: v for k, v in base.body.items() if k not in _VARIABLE
        }
        sent = [*(base.body.get("input") or []), *base.output]
        new = body.get("input") or []
        if same and len(new) >= len(sent) and new[: len(sent)] == sent:
            frame["input"] = new[len(sent) :]
            frame["previous_response_id"] = base.response_id
        return frame

    async def _request(self, conn: Any, body: dict[str, Any]) -> AsyncIterator[ev.ResponseEvent]:
        from websockets.exceptions import ConnectionClosed

        assert self.transport is not None
        frame = self._frame(body)
        output: list[ev.ResponseItem] = []
        response_id: str | None = None
        self.baseline = None  # until this request completes, nothing to build on
        try:
            await conn.send(textsafe.json_bytes(frame).decode("utf-8"))
            while True:
                async with asyncio.timeout(self.client.idle_timeout_s):
                    raw = await conn.recv()
                if isinstance(raw, bytes):
                    raise RetryableApiError("the server sent a binary WebSocket frame",
                                            kind="response_stream_disconnected", route=WS_ROUTE.name)  # fmt: skip
                try:
                    data = textsafe.loads(raw)
                except ValueError:
                    log.debug("skipping an unparseable WebSocket frame (%d chars)", len(raw))
                    continue
                if not isinstance(data, dict):
                    continue
                if data.get("type") == "error":
                    raise self._error(data)
                event = stream_event(data, WS_ROUTE.name)
                if event is None:
                    continue
                if isinstance(event, ev.Created):
                    response_id = event.response_id
                elif isinstance(event, ev.OutputItemDone):
                    output.append(event.item)
                if (
                    isinstance(event, ev.Completed)
                    and response_id
                    and event.response_id not in (None, response_id)
                ):
                    self.transport.discard()
                    raise RetryableApiError(f"the WebSocket completed response {event.response_id!r} while "
                                            f"{response_id!r} was running", kind="response_stream_disconnected",
                                            route=WS_ROUTE.name)  # fmt: skip
                yield event
                if isinstance(event, ev.Completed):
                    self.baseline = _Baseline(body, output, event.response_id or response_id)
                    return
        except ConnectionClosed as exc:
            self.transport.dropped(f"the WebSocket closed mid-response ({exc})")
            raise RetryableApiError(f"stream disconnected before completion: WebSocket closed ({exc})",
                                    kind="response_stream_disconnected", route=WS_ROUTE.name) from None  # fmt: skip
        except TimeoutError:
            self.transport.dropped("idle timeout on the WebSocket")
            raise RetryableApiError("idle timeout waiting for the WebSocket",
                                    kind="response_stream_disconnected", route=WS_ROUTE.name) from None  # fmt: skip
        except ApiError:
            self.transport.discard()  # upstream: the connection is discarded after any error
            raise
        except BaseException:
            self.transport.discard()  # cancelled mid-response: the socket holds a half-read stream
            raise

    def _error(self, data: dict[str, Any]) -> ApiError:
        status = data.get("status_code") or data.get("status") or 500
        body = json.dumps({"error": data.get("error") or {}}).encode()
        headers = data.get("headers") if isinstance(data.get("headers"), dict) else {}
        lowered = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
        return classify_status(int(status) if isinstance(status, int) else 500, body, lowered, self.transport.url
                               if self.transport else "", WS_ROUTE.name)  # fmt: skip

    async def aclose(self) -> None:
        """End of turn: the socket stays with the session (the next turn reuses it)."""

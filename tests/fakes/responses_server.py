"""A scripted fake of the paid APIs on 127.0.0.1: real HTTP/1.1, real chunked SSE framing.

Each ``POST /v1/responses`` takes the next ``Reply`` from the script; every request (method, path,
headers, JSON body) is recorded. Replies can inject the faults the client must survive: an HTTP
error with headers, a connection reset or a clean close mid-stream, an idle stall, raw malformed
bytes. Other paths can be served by ``server.route(method, path, handler)``.

It runs in a thread, so both in-process async tests and ``codexbro`` subprocesses can use it.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.events import sse_frame


@dataclass
class Reply:
    events: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # non-SSE reply body (e.g. an error JSON)
    close_after: int | None = None  # clean close after N events (no response.completed)
    reset_after: int | None = None  # TCP reset after N events
    stall_after: int | None = None  # stop sending after N events and hold the connection
    stall_s: float = 3.0
    raw: bytes | None = None  # raw bytes sent as the SSE body
    event_delay_s: float = 0.0
    before: Callable[[], None] | None = None  # runs when the request arrives (e.g. set an Event)
    # events computed from the request body (e.g. to answer with an id the client just sent)
    dynamic: Callable[[Any], list[dict[str, Any]]] | None = None


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


RouteHandler = Callable[[Recorded], tuple[int, dict[str, str], bytes]]


class FakeResponsesServer:
    def __init__(self, script: list[Reply] | None = None) -> None:
        self.script: list[Reply] = list(script or [])
        self.requests: list[Recorded] = []
        self.routes: dict[tuple[str, str], RouteHandler] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ---- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> FakeResponsesServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- scripting ---------------------------------------------------------------------------

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def route(self, method: str, path: str, handler: RouteHandler) -> None:
        self.routes[(method, path)] = handler

    def responses_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.split("?")[0].endswith("/responses")]

    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.responses_requests()]

    def _next(self) -> Reply | None:
        with self._lock:
            return self.script.pop(0) if self.script else None


def _make_handler(server: FakeResponsesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()
            # Small SSE chunks must not wait on Nagle + delayed ACK (~40 ms stalls per response).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (BrokenPipeError, ConnectionResetError):
                # The client may stop reading once it has response.completed: that is allowed.
                self.close_connection = True

        def _record(self) -> Recorded:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            rec = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with server._lock:
                server.requests.append(rec)
            return rec

        def do_GET(self) -> None:
            self._dispatch()

        def do_POST(self) -> None:
            self._dispatch()

        def _dispatch(self) -> None:
            rec = self._record()
            path = self.path.split("?")[0]
            handler = server.routes.get((self.command, path))
            if handler is not None:
                status, headers, body = handler(rec)
                self._plain(status, headers, body)
                return
            if self.command == "POST" and path.endswith("/responses"):
                reply = server._next()
                if reply is None:
                    n = len(server.responses_requests())
                    msg = {"error": {"message": f"fake server: no scripted reply for request {n}"}}
                    self._plain(500, {"content-type": "application/json"}, json.dumps(msg).encode())
                    return
                if reply.before is not None:
                    reply.before()
                if reply.dynamic is not None:
                    reply = dataclasses.replace(reply, events=reply.dynamic(rec.body))
                self._reply(reply)
                return
            self._plain(404, {"content-type": "application/json"}, b'{"error":{"message":"not found"}}')

        def _plain(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _reply(self, reply: Reply) -> None:
            if reply.status != 200 or reply.body is not None:
                headers = {"content-type": "application/json", **reply.headers}
                self._plain(reply.status, headers, reply.body or b"")
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            if reply.raw is not None:
                self._chunk(reply.raw)
            for i, event in enumerate(reply.events):
                if reply.reset_after is not None and i == reply.reset_after:
                    self._reset()
                    return
                if reply.close_after is not None and i == reply.close_after:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if reply.stall_after is not None and i == reply.stall_after:
                    time.sleep(reply.stall_s)
                    self.close_connection = True
                    return
                if reply.event_delay_s:
                    time.sleep(reply.event_delay_s)
                self._chunk(sse_frame(event))
            if reply.reset_after is not None and reply.reset_after >= len(reply.events):
                self._reset()
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _reset(self) -> None:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

    return Handler

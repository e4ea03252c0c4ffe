"""A loopback fake of an OpenAI-compatible ``/v1/chat/completions`` server (vLLM, llama.cpp server,
gateways): scripted replies streamed as real chunked SSE — one ``data:`` line per chunk, flushed
one by one, then ``data: [DONE]`` — and every request recorded. For the chat bridge's tests."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ChatReply:
    chunks: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    body: bytes = b""  # for an error status
    done: bool = True  # end with `data: [DONE]`
    cut: bool = False  # drop the connection after the chunks (no finish, no [DONE])


def chunk(delta: dict[str, Any], finish: str | None = None, cid: str = "chatcmpl-1") -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip


def usage_chunk(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": cached}}}  # fmt: skip


def text_reply(*pieces: str) -> ChatReply:
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": p}) for p in pieces]
    return ChatReply([*chunks, chunk({}, "stop"), usage_chunk(50, len(pieces))])


def tool_reply(call_id: str, name: str, arguments: str, *, split: int = 3) -> ChatReply:
    """One tool call whose arguments arrive in ``split`` fragments, as servers stream them."""
    size = max(1, len(arguments) // split)
    frags = [arguments[i : i + size] for i in range(0, len(arguments), size)]
    chunks = [chunk({"role": "assistant", "tool_calls": [
        {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]})]  # fmt: skip
    chunks += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": f}}]}) for f in frags]
    return ChatReply([*chunks, chunk({}, "tool_calls"), usage_chunk(80, 20, cached=64)])


class FakeChatServer:
    def __init__(self) -> None:
        self.script: list[ChatReply] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def add(self, *replies: ChatReply) -> None:
        with self._lock:
            self.script.extend(replies)


def _handler(server: FakeChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            with server._lock:
                server.paths.append(self.path)
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                server.requests.append(json.loads(raw) if raw else {})
                reply = server.script.pop(0) if server.script else None
            if not self.path.split("?")[0].endswith("/chat/completions") or reply is None:
                self._plain(404, b'{"error": {"message": "not found"}}')
                return
            if reply.status != 200:
                self._plain(reply.status, reply.body)
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for c in reply.chunks:
                self._chunk(f"data: {json.dumps(c)}\n\n".encode())
                time.sleep(0.002)
            if reply.cut:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if reply.done:
                self._chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _plain(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler

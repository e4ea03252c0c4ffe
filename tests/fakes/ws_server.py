"""A loopback fake of the Responses WebSocket endpoint (``GET …/responses`` upgraded), built on the
``websockets`` library: it records every handshake (path, headers) and every client frame, answers
each ``response.create`` with a scripted list of event JSON frames (the SSE events' shapes), and
can drop the connection mid-response, send an ``error`` frame, or refuse the handshake."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WsReply:
    events: list[dict[str, Any]] = field(default_factory=list)
    drop_after: int | None = None  # close the connection after this many events
    error: dict[str, Any] | None = None  # send this `error` frame instead


class FakeWsServer:
    def __init__(self, *, refuse_status: int | None = None, turn_state: str | None = None) -> None:
        self.script: list[WsReply] = []
        self.frames: list[dict[str, Any]] = []
        self.handshakes: list[dict[str, str]] = []
        self.refuse_status = refuse_status
        self.turn_state = turn_state
        self.redirect_to = "ws://127.0.0.1:9/collect"  # where a refusal with a 3xx points
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._warm = 0

    def __enter__(self) -> FakeWsServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def add(self, *replies: WsReply) -> None:
        with self._lock:
            self.script.extend(replies)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def process_request(connection: Any, request: Any) -> Any:
            with self._lock:
                self.handshakes.append(
                    {"path": request.path, **{k.lower(): v for k, v in request.headers.raw_items()}}
                )
            if self.refuse_status is not None:
                response = connection.respond(self.refuse_status, "no websocket here\n")
                if self.refuse_status in (301, 302, 307, 308):
                    response.headers["Location"] = self.redirect_to
                return response
            return None

        def process_response(connection: Any, request: Any, response: Any) -> Any:
            if self.turn_state is not None:
                response.headers["x-codex-turn-state"] = self.turn_state
            return response

        async with serve(self._handle, "127.0.0.1", 0, process_request=process_request,
                         process_response=process_response, max_size=None) as server:  # fmt: skip
            self.port = server.sockets[0].getsockname()[1] if hasattr(server, "sockets") else 0
            if not self.port:
                self.port = next(iter(server.server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def _handle(self, connection: Any) -> None:
        async for message in connection:
            frame = json.loads(message)
            with self._lock:
                self.frames.append(frame)
            if frame.get("generate") is False:  # the prewarm: an empty response
                self._warm += 1
                rid = f"resp_warm{self._warm}"
                await connection.send(json.dumps({"type": "response.created", "response": {"id": rid}}))
                await connection.send(json.dumps({"type": "response.completed", "response": {
                    "id": rid, "usage": {"input_tokens": 10, "output_tokens": 0, "total_tokens": 10}}}))  # fmt: skip
                continue
            with self._lock:
                reply = self.script.pop(0) if self.script else WsReply(error={"type": "error", "status_code": 500,
                                                                               "error": {"message": "script empty"}})  # fmt: skip
            if reply.error is not None:
                await connection.send(json.dumps(reply.error))
                continue
            for i, event in enumerate(reply.events):
                if reply.drop_after is not None and i >= reply.drop_after:
                    await connection.close(code=1011, reason="dropped by the test")
                    return
                await connection.send(json.dumps(event))

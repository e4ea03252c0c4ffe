"""A loopback fake of the Responses WebSocket endpoint (``GET …/responses`` upgraded), built on the
``websockets`` library: it records every handshake (path, headers) and every client frame, answers
each ``response.create`` with a scripted list of event JSON frames (the SSE events' shapes), and
can drop the connection mid-response, send an ``error`` frame, or refuse the handshake."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.ws_base import ThreadedWsServer


@dataclass
class WsReply:
    events: list[dict[str, Any]] = field(default_factory=list)
    drop_after: int | None = None  # close the connection after this many events
    error: dict[str, Any] | None = None  # send this `error` frame instead


class FakeWsServer(ThreadedWsServer):
    def __init__(self, *, refuse_status: int | None = None, turn_state: str | None = None,
                 bearer: str | None = None) -> None:  # fmt: skip
        super().__init__()
        self.bearer = bearer  # when set, a handshake with another Authorization is answered 401
        self.script: list[WsReply] = []
        self.frames: list[dict[str, Any]] = []
        self.refuse_status = refuse_status
        self.turn_state = turn_state
        self.redirect_to = "ws://127.0.0.1:9/collect"  # where a refusal with a 3xx points
        self._warm = 0

    def add(self, *replies: WsReply) -> None:
        with self._lock:
            self.script.extend(replies)

    def _refuse(self, connection: Any) -> Any:
        if self.bearer is not None:
            with self._lock:
                seen = self.handshakes[-1].get("authorization") if self.handshakes else None
            if seen != f"Bearer {self.bearer}":
                return connection.respond(401, "token expired\n")
        if self.refuse_status is None:
            return None
        response = connection.respond(self.refuse_status, "no websocket here\n")
        if self.refuse_status in (301, 302, 307, 308):
            response.headers["Location"] = self.redirect_to
        return response

    def _decorate(self, response: Any) -> None:
        if self.turn_state is not None:
            response.headers["x-codex-turn-state"] = self.turn_state

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

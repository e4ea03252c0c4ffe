"""A loopback fake of the Realtime API's WebSocket (``GET /v1/realtime?model=…``): it records the
handshake and every client event, and answers each ``response.create`` with the next scripted list
of server events (the GA dialect's shapes; a test may use the beta names too)."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.ws_base import ThreadedWsServer


class FakeRealtimeServer(ThreadedWsServer):
    def __init__(self) -> None:
        super().__init__()
        self.script: list[list[dict[str, Any]]] = []
        self.received: list[dict[str, Any]] = []

    def add(self, *responses: list[dict[str, Any]]) -> None:
        with self._lock:
            self.script.extend(responses)

    async def _handle(self, connection: Any) -> None:
        await connection.send(json.dumps({"type": "session.created", "session": {"id": "sess_1"}}))
        async for message in connection:
            event = json.loads(message)
            with self._lock:
                self.received.append(event)
            if event.get("type") == "session.update":
                await connection.send(
                    json.dumps({"type": "session.updated", "session": event.get("session")})
                )
            elif event.get("type") == "response.create":
                with self._lock:
                    events = (
                        self.script.pop(0)
                        if self.script
                        else [{"type": "error", "error": {"message": "script empty"}}]
                    )
                for out in events:
                    await connection.send(json.dumps(out))

"""A loopback fake of the Realtime API's WebSocket (``GET /v1/realtime?model=…``): it records the
handshake and every client event, and answers each ``response.create`` with the next scripted list
of server events (the GA dialect's shapes; a test may use the beta names too)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any


class FakeRealtimeServer:
    def __init__(self) -> None:
        self.script: list[list[dict[str, Any]]] = []
        self.received: list[dict[str, Any]] = []
        self.handshakes: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    def __enter__(self) -> FakeRealtimeServer:
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

    def add(self, *responses: list[dict[str, Any]]) -> None:
        with self._lock:
            self.script.extend(responses)

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def process_request(connection: Any, request: Any) -> None:
            with self._lock:
                self.handshakes.append(
                    {"path": request.path, **{k.lower(): v for k, v in request.headers.raw_items()}}
                )

        async with serve(
            self._handle, "127.0.0.1", 0, process_request=process_request, max_size=None
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

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

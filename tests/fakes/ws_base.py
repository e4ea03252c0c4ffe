"""What the loopback WebSocket fakes share: a ``websockets`` server on 127.0.0.1 in a thread of its
own, started by ``with``, recording handshakes; subclasses answer connections (``_handle``) and may
refuse or decorate handshakes (``_refuse``, ``_decorate``)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class ThreadedWsServer:
    def __init__(self) -> None:
        self.handshakes: list[dict[str, str]] = []
        self.port = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    def __enter__(self) -> Any:
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

    def _refuse(self, connection: Any) -> Any:
        """A handshake answer instead of the upgrade, or None."""
        return None

    def _decorate(self, response: Any) -> None:
        """Headers added to the upgrade answer."""

    async def _handle(self, connection: Any) -> None:
        raise NotImplementedError

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def process_request(connection: Any, request: Any) -> Any:
            with self._lock:
                self.handshakes.append(
                    {"path": request.path, **{k.lower(): v for k, v in request.headers.raw_items()}}
                )
            return self._refuse(connection)

        def process_response(connection: Any, request: Any, response: Any) -> Any:
            self._decorate(response)
            return response

        async with serve(self._handle, "127.0.0.1", 0, process_request=process_request,
                         process_response=process_response, max_size=None) as server:  # fmt: skip
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

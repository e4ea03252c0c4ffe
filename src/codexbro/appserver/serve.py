"""Where ``codexbro app-server`` listens: stdio (``stdio://``, the default — one client, JSON lines
on stdin/stdout) or a WebSocket listener (``ws://127.0.0.1:PORT``, one text frame a message, each
connection a client of its own).

The WebSocket listener is for local tools only: it binds loopback addresses only, refuses any
request that carries an ``Origin`` header (a browser page on any site could otherwise open a
WebSocket to localhost and drive the agent), and requires the token printed on stderr at start
(``Authorization: Bearer TOKEN``, or ``?token=TOKEN`` for clients that cannot set headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from codexbro.appserver.rpc import Connection
from codexbro.appserver.server import AppServer
from codexbro.config.loader import Overrides
from codexbro.errors import UserError

log = logging.getLogger(__name__)
MAX_LINE = 64 * 1024 * 1024  # one message (a turn's input with images) may be large, not unbounded


def parse_listen(value: str) -> tuple[str, str | None, int | None]:
    """``stdio://`` or ``ws://HOST:PORT`` (loopback hosts only)."""
    if value in ("stdio://", "stdio", ""):
        return "stdio", None, None
    parts = urlsplit(value)
    if parts.scheme != "ws":
        raise UserError(f"--listen {value!r}: expected stdio:// or ws://127.0.0.1:PORT")
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise UserError(f"--listen {value!r}: the WebSocket listener binds loopback only (127.0.0.1, ::1)")
    return "ws", parts.hostname, parts.port or 0


def serve(base: Overrides, home: Path, listen: str) -> int:
    kind, host, port = parse_listen(listen)
    try:
        asyncio.run(
            _stdio(base, home) if kind == "stdio" else _websocket(base, home, host or "127.0.0.1", port or 0)
        )
    except KeyboardInterrupt:
        return 130
    return 0


async def _stdio(base: Overrides, home: Path) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer

    async def write(line: str) -> None:
        out.write(line.encode("utf-8") + b"\n")
        out.flush()

    server = AppServer(base, home)
    conn = Connection(write, server.handle, server.on_notification)
    server.conn = conn
    try:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # a line over the limit: said, and skipped
                await conn.send(
                    {"id": None, "error": {"code": -32700, "message": "Parse error: message too large"}}
                )
                continue
            if not line:
                break
            conn.feed(line.decode("utf-8", "replace"))
    finally:
        conn.close()  # the client is gone: what waits on it is declined; threads are closed
        await server.close()


async def _websocket(base: Overrides, home: Path, host: str, port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.datastructures import Headers
    from websockets.http11 import Request, Response

    token = secrets.token_urlsafe(24)

    def check(connection: ServerConnection, request: Request) -> Response | None:
        headers: Headers = request.headers
        if "Origin" in headers:
            return connection.respond(403, "browser origins are refused\n")
        given = headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not given:
            given = (parse_qs(urlsplit(request.path).query).get("token") or [""])[0]
        if not hmac.compare_digest(given.encode(), token.encode()):
            return connection.respond(401, "a token is required (printed by codexbro app-server at start)\n")
        return None

    async def handler(ws: ServerConnection) -> None:
        async def write(line: str) -> None:
            await ws.send(line)

        server = AppServer(base, home)
        conn = Connection(write, server.handle, server.on_notification)
        server.conn = conn
        try:
            async for message in ws:
                conn.feed(message if isinstance(message, str) else message.decode("utf-8", "replace"))
        except Exception as exc:  # a dropped connection
            log.info("websocket client gone: %s", exc)
        finally:
            conn.close()
            await server.close()

    async with serve(handler, host, port, process_request=check, max_size=MAX_LINE) as listener:
        bound = next(iter(listener.sockets)).getsockname()[1]
        print(
            f"codexbro app-server listening on ws://{host}:{bound}\ntoken: {token}",
            file=sys.stderr,
            flush=True,
        )
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Future()

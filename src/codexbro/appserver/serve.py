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
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from codexbro.appserver.rpc import Connection
from codexbro.appserver.server import AppServer
from codexbro.config.loader import Overrides
from codexbro.errors import UserError
from codexbro.textsafe import for_terminal

log = logging.getLogger(__name__)
MAX_LINE = 64 * 1024 * 1024  # one message (a turn's input with images) may be large, not unbounded


def parse_listen(value: str) -> tuple[str, str | None, int | None]:
    """``stdio://`` or ``ws://HOST:PORT`` (loopback hosts only)."""
    if value in ("stdio://", "stdio", ""):
        return "stdio", None, None
    parts = urlsplit(value)
    if parts.scheme != "ws":
        raise UserError(f"--listen {value!r}: expected stdio:// or ws://127.0.0.1:PORT")
    if parts.hostname not in ("127.0.0.1", "localhost", "::1") or parts.username or parts.password:
        raise UserError(f"--listen {value!r}: the WebSocket listener binds loopback only (127.0.0.1, ::1)")
    try:
        port = parts.port or 0
    except ValueError:
        raise UserError(f"--listen {value!r}: the port must be a number from 0 to 65535") from None
    return "ws", "127.0.0.1" if parts.hostname == "localhost" else parts.hostname, port


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
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer

    async def write(line: str) -> None:
        out.write(line.encode("utf-8", "replace") + b"\n")
        out.flush()

    server = AppServer(base, home)
    conn = Connection(write, server.handle, server.on_notification)
    conn.on_skip = lambda note: print(for_terminal(note), file=sys.stderr, flush=True)
    server.conn = conn
    try:
        async for line in _lines(reader, conn):
            _feed(conn, line)
    finally:
        conn.cancel_requests()
        conn.close()  # the client is gone: what waits on it is declined; threads are closed
        await server.close()


async def _lines(reader: asyncio.StreamReader, conn: Connection) -> AsyncIterator[str]:
    """Lines of stdin; a line over ``MAX_LINE`` is skipped whole (said once), never read as the
    start of another message."""
    buffer = bytearray()
    skipping = False
    while chunk := await reader.read(1 << 16):
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            line, buffer = bytes(buffer[:end]), buffer[end + 1 :]
            if skipping:
                skipping = False
                continue
            yield line.decode("utf-8", "replace")
        if len(buffer) > MAX_LINE:
            if not skipping:
                conn.feed_skip(f"a message over {MAX_LINE // (1024 * 1024)} MiB")
            skipping = True
            buffer.clear()
    if buffer and not skipping:
        yield buffer.decode("utf-8", "replace")


def _feed(conn: Connection, line: str) -> None:
    """No single message can end the server: whatever ``feed`` raises is logged and skipped."""
    try:
        conn.feed(line)
    except Exception:
        log.exception("a message could not be read")


async def _websocket(base: Overrides, home: Path, host: str, port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.datastructures import Headers
    from websockets.http11 import Request, Response

    token = secrets.token_urlsafe(24)
    live: dict[str, object] = {}  # thread id → the connection's server that has it loaded (one at a time)

    def check(connection: ServerConnection, request: Request) -> Response | None:
        headers: Headers = request.headers
        if "Origin" in headers:
            return connection.respond(403, "browser origins are refused\n")
        given = ""
        if len(headers.get_all("Authorization")) > 1:
            return connection.respond(401, "one Authorization header, please\n")
        for value in headers.get_all("Authorization"):
            scheme, _, credential = value.strip().partition(" ")
            if scheme.lower() == "bearer":
                given = credential.strip()
        if not given:
            given = (parse_qs(urlsplit(request.path).query).get("token") or [""])[0]
        if not hmac.compare_digest(given.encode("utf-8", "replace"), token.encode()):
            return connection.respond(401, "a token is required (printed by codexbro app-server at start)\n")
        return None

    async def handler(ws: ServerConnection) -> None:
        async def write(line: str) -> None:
            await ws.send(line)

        server = AppServer(base, home, shared=live)
        conn = Connection(write, server.handle, server.on_notification)
        server.conn = conn
        try:
            async for message in ws:
                _feed(conn, message if isinstance(message, str) else message.decode("utf-8", "replace"))
        except Exception as exc:  # a dropped connection
            log.info("websocket client gone: %s", exc)
        finally:
            conn.cancel_requests()
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

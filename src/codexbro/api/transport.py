"""HTTP/1.1 over asyncio streams, spoken with ``h11``: the bytes under :class:`~codexbro.api.http.RouteHttp`.

Why not httpx (which codexbro used until stop 33): importing httpx with httpcore and anyio — what an
asyncio program needs to make one request with it — cost ~100 ms of every ``codexbro exec`` on the
2-core machine the benchmarks run on (``import asyncio`` ~70 ms, ``+ httpx stack`` ~170 ms,
``+ h11`` ~88 ms; medians of 21 interleaved runs), about 40 % of a one-message turn. ``h11`` is the
protocol library httpx itself speaks HTTP/1.1 with (parsing, framing, keep-alive rules); what is
here is the I/O around it, which is small for a client that only ever makes one request per
connection at a time:

- connections are opened with ``asyncio.open_connection`` (TLS through the standard ``ssl`` module:
  certifi's CA bundle as httpx used it, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` as httpx read them),
  kept alive per origin (one that received bytes while idle, or bytes past an answer, is dropped),
  and a GET on a kept connection that the server had closed meanwhile is sent once more on a new one
  when no byte of an answer came back (a POST never is: the server may have acted on it);
- proxies from the environment as httpx read them (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and
  ``NO_PROXY``, any case): an ``http://`` or ``https://`` proxy (TLS to the proxy, and to the origin
  inside it), with a ``CONNECT`` tunnel for ``https`` origins and its user info as
  ``Proxy-Authorization``; a SOCKS proxy is refused with a clear message (httpx
  needed an extra package for it, which codexbro never installed) — the settings are read in
  ``api/netenv.py``;
- timeouts as ``httpx.Timeout(timeout_s, read=read_s)``: connect and each write within
  ``timeout_s``, each read within ``read_s``;
- bodies are decoded (``gzip``, ``deflate``: what the requests advertise; ``api/bodies.py``) as
  they arrive, so a caller's size limit applies to the decoded bytes; an event stream read up to
  its last event keeps its connection when the body's end came with it;
- failures are :class:`TransportFailure` named as httpx named them (``ConnectError``,
  ``ReadTimeout``, ``RemoteProtocolError``, …), so messages and traces read the same as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import zlib
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

from codexbro.api.bodies import ACCEPT_ENCODING, UnaskedEncoding, decoder
from codexbro.api.netenv import ProxySettingError, proxy_auth, proxy_for, tls_context

if TYPE_CHECKING:
    import h11

CHUNK = 64 * 1024
IDLE_PER_ORIGIN = 4


class TransportFailure(Exception):
    """No answer, or a broken one. ``kind`` is httpx's name for the same failure."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class Headers:
    """Response headers: in order, repeatable, looked up without regard to case."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items = list(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        values = [v for k, v in self._items if k.lower() == name]
        return ", ".join(values) if values else default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


class Response:
    """A unary answer, its body read and decoded."""

    def __init__(self, status_code: int, headers: Headers, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        from codexbro import textsafe

        return textsafe.loads(self.content)


class StreamResponse:
    """An answer whose body is read as it arrives (``aiter_bytes``), decoded."""

    def __init__(self, status_code: int, headers: Headers, body: AsyncIterator[bytes]) -> None:
        self.status_code = status_code
        self.headers = headers
        self._body = body

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for chunk in self._body:
            yield chunk

    async def aread(self, limit: int | None = None) -> bytes:
        """The body; with ``limit``, at most that many bytes of it (the rest is not read: the
        connection is then closed rather than kept)."""
        out = bytearray()
        async for chunk in self._body:
            out += chunk
            if limit is not None and len(out) >= limit:
                return bytes(out[:limit])
        return bytes(out)


def _port(url: SplitResult) -> int:
    try:
        port = url.port
    except ValueError:
        raise TransportFailure("UnsupportedProtocol", "the URL's port is not a number") from None
    return port or (443 if url.scheme == "https" else 80)


def _host_header(url: SplitResult) -> str:
    host = _bracketed(url.hostname or "")
    return host if url.port in (None, 80 if url.scheme == "http" else 443) else f"{host}:{url.port}"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # an IPv6 literal


def _absolute(url: SplitResult) -> str:
    """The request target for a proxy: no user info, no fragment."""
    return f"{url.scheme}://{_host_header(url)}{_target(url)}"


# --- connections -------------------------------------------------------------------------------------


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11

        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.loop = asyncio.get_running_loop()
        self.reused = False
        self.received = 0  # bytes of the current answer read so far

    def usable(self) -> bool:
        """Fit to send the next request on: same loop, not closed, and nothing arrived while it was
        idle — bytes no request asked for (httpcore's rule: readable while idle means expired)."""
        buffered = getattr(self.reader, "_buffer", b"")  # asyncio keeps what it read here
        return (
            self.loop is asyncio.get_running_loop()
            and not self.reader.at_eof()
            and not self.writer.is_closing()
            and not buffered
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def _describe(exc: BaseException) -> str:
    """An OS or TLS error's own text; for anything else, the OS/TLS error it arose from when there is
    one (asyncio's TLS-in-TLS TypeError arises from the certificate or record error that matters)."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__context__
    if cause is not None:
        return str(cause) or type(cause).__name__
    return f"the connection failed ({type(exc).__name__})"  # an internal error's text says nothing useful


async def _within(seconds: float | None, kind: str, awaitable: Any) -> Any:
    try:
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError:
        raise TransportFailure(kind, "timed out") from None


class Transport:
    """Kept-alive HTTP/1.1 connections for one client. Not shared between event loops."""

    def __init__(self, *, timeout_s: float, read_timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self.read_timeout_s = read_timeout_s if read_timeout_s is not None else timeout_s
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    async def _connect(self, url: SplitResult) -> _Conn:
        host, port = url.hostname or "", _port(url)
        proxy = _proxy(url)
        dial_host, dial_port = (proxy.hostname or "", _port(proxy)) if proxy else (host, port)
        # TLS on the first hop: to the origin, or to an https:// proxy (then to the origin inside it)
        first_tls = (proxy.scheme if proxy else url.scheme) == "https"
        try:
            reader, writer = await _within(
                self.timeout_s, "ConnectTimeout",
                asyncio.open_connection(dial_host, dial_port, ssl=tls_context() if first_tls else None,
                                        server_hostname=dial_host if first_tls else None,
                                        happy_eyeballs_delay=0.25),
            )  # fmt: skip
        except (OSError, ssl.SSLError) as exc:
            raise TransportFailure("ConnectError", _describe(exc)) from None
        conn = _Conn(reader, writer)
        if proxy is None or url.scheme != "https":
            return conn
        try:  # the tunnel, then TLS to the origin inside it; on any way out, the socket is closed
            await self._tunnel(conn, proxy, f"{_bracketed(host)}:{port}")
            await _within(
                self.timeout_s, "ConnectTimeout", writer.start_tls(tls_context(), server_hostname=host)
            )
        except TransportFailure:
            conn.close()
            raise
        except Exception as exc:  # OSError, SSLError — and, TLS inside TLS on Python 3.11/3.12, a
            # TypeError from asyncio's own error path (SSLProtocol._abort): a failure all the same
            conn.close()
            raise TransportFailure("ConnectError", _describe(exc)) from None
        except BaseException:  # cancelled mid-way
            conn.close()
            raise
        return _Conn(reader, writer)  # a fresh h11 state for the origin behind the tunnel

    async def _tunnel(self, conn: _Conn, proxy: SplitResult, authority: str) -> None:
        import h11

        headers = [("host", authority), *proxy_auth(proxy)]
        await self._send(conn, h11.Request(method="CONNECT", target=authority, headers=headers), b"")
        answer = await self._head(conn)
        if not 200 <= answer.status_code < 300:
            raise TransportFailure("ProxyError", f"the proxy refused the tunnel: HTTP {answer.status_code}")

    def _take(self, key: tuple[str, str, int]) -> _Conn | None:
        conns = self._idle.get(key, [])
        while conns:
            conn = conns.pop()
            if conn.usable():
                conn.reused = True
                return conn
            conn.close()
        return None

    def _give_back(self, key: tuple[str, str, int], conn: _Conn) -> None:
        import h11

        leftover, closed = conn.h11.trailing_data  # bytes past the answer: the connection is not trusted
        if (
            conn.h11.our_state is h11.DONE
            and conn.h11.their_state is h11.DONE
            and not leftover
            and not closed
        ):
            conn.h11.start_next_cycle()
            idle = self._idle.setdefault(key, [])
            if len(idle) < IDLE_PER_ORIGIN and conn.usable():
                idle.append(conn)
                return
        conn.close()

    async def _send(self, conn: _Conn, request: h11.Request, body: bytes) -> None:
        import h11

        try:
            data = conn.h11.send(request) or b""
            if body:
                data += conn.h11.send(h11.Data(data=body)) or b""
            data += conn.h11.send(h11.EndOfMessage()) or b""
            conn.writer.write(data)
            await _within(self.timeout_s, "WriteTimeout", conn.writer.drain())
        except h11.LocalProtocolError as exc:
            raise TransportFailure("LocalProtocolError", str(exc)) from None
        except OSError as exc:
            raise TransportFailure("WriteError", _describe(exc)) from None

    async def _event(self, conn: _Conn, read_s: float | None = None) -> Any:
        import h11

        while True:
            try:
                event = conn.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise TransportFailure("RemoteProtocolError", str(exc)) from None
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await _within(read_s or self.read_timeout_s, "ReadTimeout", conn.reader.read(CHUNK))
            except TransportFailure:
                raise
            except Exception as exc:  # OSError; asyncio's TLS-in-TLS error path (see _connect)
                raise TransportFailure("ReadError", _describe(exc)) from None
            # a read served from the buffer does not pause: pause anyway, so a cancel (Ctrl-C, a turn
            # stopped) gets in between reads as it did through anyio
            await asyncio.sleep(0)
            if not data and not conn.received and conn.h11.their_state is h11.SEND_RESPONSE:
                raise TransportFailure(
                    "RemoteProtocolError", "Server disconnected without sending a response."
                )
            conn.received += len(data)
            try:
                conn.h11.receive_data(data)
            except h11.RemoteProtocolError as exc:
                raise TransportFailure("RemoteProtocolError", str(exc)) from None

    async def _head(self, conn: _Conn, read_s: float | None = None) -> h11.Response:
        import h11

        while True:
            event = await self._event(conn, read_s)
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.ConnectionClosed):
                raise TransportFailure(
                    "RemoteProtocolError", "Server disconnected without sending a response."
                )
            if not isinstance(event, h11.InformationalResponse):
                raise TransportFailure(
                    "RemoteProtocolError", f"unexpected {type(event).__name__} before the answer"
                )

    @contextlib.asynccontextmanager
    async def open(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        read_s: float | None = None,
    ) -> AsyncIterator[StreamResponse]:
        """Send the request; yield the answer with its body to read. The connection goes back to the
        pool when the body was read to its end, and is closed otherwise. ``read_s``: this request's
        read timeout, when not the client's."""
        import h11

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportFailure("UnsupportedProtocol", "the URL must be http:// or https:// with a host")
        key = (parts.scheme, parts.hostname.lower(), _port(parts))
        proxy = _proxy(parts)
        target = _absolute(parts) if proxy is not None and parts.scheme == "http" else _target(parts)
        sent = [("host", _host_header(parts)), *headers]
        if not any(k.lower() == "accept-encoding" for k, _ in headers):
            sent.append(("accept-encoding", ACCEPT_ENCODING))
        if body or method not in ("GET", "HEAD"):
            sent.append(("content-length", str(len(body))))
        if proxy is not None and parts.scheme == "http":
            sent.extend(proxy_auth(proxy))
        try:
            raw_target = target.encode("ascii", "strict")
        except UnicodeEncodeError:
            raise TransportFailure(
                "UnsupportedProtocol", "the URL has characters that are not ASCII"
            ) from None
        try:
            request = h11.Request(method=method, target=raw_target, headers=sent)
        except h11.LocalProtocolError as exc:
            raise TransportFailure("LocalProtocolError", str(exc)) from None
        except UnicodeEncodeError:  # the value is not shown: it may hold a credential
            raise TransportFailure(
                "LocalProtocolError", "a request header has a value that is not ASCII"
            ) from None
        conn = self._take(key)
        while True:
            if conn is None:
                conn = await self._connect(parts)
            conn.received = 0
            try:
                await self._send(conn, request, body)
                head = await self._head(conn, read_s)
                break
            except TransportFailure as exc:
                conn.close()
                # a kept connection the server closed meanwhile (a race the idle check cannot see):
                # once more on a new one — only a GET or HEAD, and only when no byte of an answer came
                # back; anything else the server may have acted on, so the caller decides (and its
                # next attempt is recorded as one)
                retry = conn.reused and not conn.received and method in ("GET", "HEAD")
                if retry and exc.kind in ("RemoteProtocolError", "ReadError", "WriteError"):
                    conn = None
                    continue
                raise
            except BaseException:
                conn.close()
                raise
        live = conn
        done = False

        async def body_chunks() -> AsyncIterator[bytes]:
            nonlocal done
            inflater = _inflater(Headers(_pairs(head.headers)).get("content-encoding"))
            while True:
                event = await self._event(live, read_s)
                if isinstance(event, h11.Data):
                    out = inflater.decompress(bytes(event.data)) if inflater else bytes(event.data)
                    if out:
                        yield out
                elif isinstance(event, h11.EndOfMessage):
                    if inflater is not None:
                        tail = inflater.flush()
                        if tail:
                            yield tail
                    done = True
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    raise TransportFailure(
                        "RemoteProtocolError", "the server closed the connection mid-answer"
                    )

        response = StreamResponse(head.status_code, Headers(_pairs(head.headers)), _guarded(body_chunks()))
        try:
            yield response
        finally:
            if done or _ends_in_buffer(live):
                self._give_back(key, live)
            else:
                live.close()


def _ends_in_buffer(conn: _Conn) -> bool:
    """Whether the answer's end was already received (the reader stopped early — an event stream read
    up to ``response.completed``, whose chunked terminator came in the same read): then the
    connection is clean and can be kept, saving the next request a TCP and TLS handshake. Only what
    h11 already holds is looked at; nothing is awaited (this runs on the way out, even when
    cancelled)."""
    import h11

    try:
        for _ in range(64):
            event = conn.h11.next_event()
            if isinstance(event, h11.EndOfMessage):
                return True
            if not isinstance(event, h11.Data):
                return False  # NEED_DATA, PAUSED, a closed connection
    except h11.ProtocolError:
        return False
    return False


async def _guarded(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    except zlib.error as exc:
        raise TransportFailure("DecodingError", f"the answer's body does not decode: {exc}") from None


def _proxy(url: SplitResult) -> SplitResult | None:
    try:
        return proxy_for(url)
    except ProxySettingError as exc:
        raise TransportFailure("ProxyError", str(exc)) from None


def _inflater(encoding: str | None) -> Any:
    try:
        return decoder(encoding)
    except UnaskedEncoding as exc:
        raise TransportFailure("DecodingError", str(exc)) from None


def _pairs(raw: Any) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]


def _target(url: SplitResult) -> str:
    return (url.path or "/") + (f"?{url.query}" if url.query else "")

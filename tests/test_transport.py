"""HTTP/1.1 under RouteHttp (api/transport.py), over real loopback sockets: kept-alive connections
(and a kept one the server closed meanwhile), bodies not read to their end, chunked and compressed
answers, failures named as before (ConnectError, ReadTimeout, RemoteProtocolError), proxies from the
environment (plain and CONNECT-tunnelled TLS, NO_PROXY), TLS verified against SSL_CERT_FILE, and
the multipart upload body."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from codexbro.api import bodies, netenv
from codexbro.api.http import RouteHttp
from codexbro.api.routes import route
from codexbro.errors import TransportError

MODELS = route("models.list")
Handler = Callable[[str, dict[str, str], bytes, asyncio.StreamWriter], Awaitable[bool]]


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0], headers, body


@asynccontextmanager
async def server(
    handler: Handler, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[str]]]:
    """A server that answers each request on a connection with ``handler`` (which returns whether to
    keep the connection); yields its origin and a log of "conn N: request line"."""
    log: list[str] = []
    count = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        me = count
        try:
            while (request := await read_request(reader)) is not None:
                line, headers, body = request
                log.append(f"conn {me}: {line}")
                if not await handler(line, headers, body, writer):
                    break
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}", log
    finally:
        srv.close()


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body


async def test_a_connection_is_kept_and_reused() -> None:
    async def handler(line: str, headers: dict[str, str], body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(ok(b"hello " + body))
        return True

    async with server(handler) as (origin, log):
        http = RouteHttp(tls=False)
        try:
            for i in range(3):
                resp = await http.request(MODELS, f"{origin}/v1/models?i={i}", headers={}, json_body={"n": i})
                assert resp.status_code == 200 and resp.content == b'hello {"n":' + str(i).encode() + b"}"
        finally:
            await http.aclose()
    assert log == [f"conn 1: GET /v1/models?i={i} HTTP/1.1" for i in range(3)]


async def test_a_kept_connection_the_server_closed_is_replaced_once() -> None:
    async def handler(line: str, headers: dict[str, str], body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(ok(b"x"))  # says nothing of closing, then closes: the client keeps a dead connection
        return False

    async with server(handler) as (origin, log):
        http = RouteHttp(tls=False)
        try:
            for _ in range(3):
                await asyncio.sleep(0.05)  # the close has arrived (or not: both must work)
                assert (await http.request(MODELS, f"{origin}/v1/models", headers={})).content == b"x"
        finally:
            await http.aclose()
    assert [entry.split(":")[0] for entry in log] == ["conn 1", "conn 2", "conn 3"]


async def test_a_stream_left_unread_closes_its_connection() -> None:
    async def handler(line: str, headers: dict[str, str], body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(ok(b"a" * 100_000, "content-type: text/event-stream\r\n"))
        return True

    async with server(handler) as (origin, log):
        http = RouteHttp(tls=False)
        try:
            async with http.stream(MODELS, f"{origin}/v1/models", attempt=1, headers={}) as resp:
                assert resp.status_code == 200
                async for _chunk in resp.aiter_bytes():
                    break  # stop reading half-way: the rest of the body would be read as the next answer
            async with http.stream(MODELS, f"{origin}/v1/models", attempt=1, headers={}) as resp:
                assert len(await resp.aread()) == 100_000
        finally:
            await http.aclose()
    assert [entry.split(":")[0] for entry in log] == ["conn 1", "conn 2"]


async def test_chunked_and_compressed_answers_are_decoded() -> None:
    text = b"the same text " * 1000
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    encodings = {
        "gzip": gzip.compress(text),
        "deflate": zlib.compress(text),
        "deflate-raw": raw_deflate.compress(text) + raw_deflate.flush(),
    }

    async def handler(line: str, headers: dict[str, str], body: bytes, w: asyncio.StreamWriter) -> bool:
        name = line.split()[1].rsplit("/", 1)[-1]
        encoded = encodings[name]
        w.write(
            f"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-encoding: {name.split('-')[0]}\r\n\r\n".encode()
        )
        for i in range(0, len(encoded), 50):
            piece = encoded[i : i + 50]
            w.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        w.write(b"0\r\n\r\n")
        return True

    async with server(handler) as (origin, log):
        http = RouteHttp(tls=False)
        try:
            for name in encodings:
                resp = await http.request(MODELS, f"{origin}/{name}", headers={})
                assert resp.content == text and "content-encoding" not in resp.headers, name
        finally:
            await http.aclose()
    assert len({entry.split(":")[0] for entry in log}) == 1  # chunked bodies keep the connection too


async def test_an_encoding_not_asked_for_is_an_error() -> None:
    async def handler(line: str, headers: dict[str, str], body: bytes, w: asyncio.StreamWriter) -> bool:
        assert headers["accept-encoding"] == "gzip, deflate"
        w.write(ok(b"\x00\x01", "content-encoding: br\r\n"))
        return True

    async with server(handler) as (origin, _log):
        http = RouteHttp(tls=False)
        try:
            with pytest.raises(TransportError, match=r"DecodingError: .*'br'"):
                await http.request(MODELS, f"{origin}/x", headers={})
        finally:
            await http.aclose()


async def test_failures_are_named_as_before() -> None:
    async def silent(line: str, headers: dict[str, str], body: bytes, w: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    async def garbage(line: str, headers: dict[str, str], body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"NOT HTTP AT ALL\r\n\r\n")
        return False

    async def cut(line: str, headers: dict[str, str], body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly a part")
        return False

    http = RouteHttp(timeout_s=0.3, tls=False)
    try:
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        with pytest.raises(TransportError, match="ConnectError"):
            await http.request(MODELS, f"http://127.0.0.1:{port}/x", headers={})
        for handler, expected in (
            (silent, "ReadTimeout"),
            (garbage, "RemoteProtocolError"),
            (cut, "RemoteProtocolError"),
        ):
            async with server(handler) as (origin, _log):
                with pytest.raises(TransportError, match=expected):
                    await http.request(MODELS, f"{origin}/x", headers={})
    finally:
        await http.aclose()


def test_the_multipart_body_is_well_formed() -> None:
    from email.parser import BytesParser
    from email.policy import HTTP

    body, kind = bodies.multipart(
        {"model": "gpt-4o-transcribe"}, {"file": ('a"b\r\n.wav', b"RIFF\x00\xff", "audio/wav")}
    )
    message = BytesParser(policy=HTTP).parsebytes(f"content-type: {kind}\r\n\r\n".encode() + body)
    parts = list(message.iter_parts())
    assert [p.get_param("name", header="content-disposition") for p in parts] == ["model", "file"]
    assert parts[0].get_payload(decode=True) == b"gpt-4o-transcribe"
    assert parts[1].get_payload(decode=True) == b"RIFF\x00\xff" and parts[1].get_content_type() == "audio/wav"
    assert "\r" not in parts[1].get_filename() and "\n" not in parts[1].get_filename()


# --- proxies and TLS ---------------------------------------------------------------------------------


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return crt, key


def make_cert(tmp_path: Path, name: str, san: str) -> tuple[Path, Path]:
    key, crt = tmp_path / f"{name}-key.pem", tmp_path / f"{name}-cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
         "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return crt, key


@pytest.fixture
def fresh_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netenv, "_TLS", None)  # the context is made once per process


def server_tls(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


async def hello(line: str, headers: dict[str, str], body: bytes, w: asyncio.StreamWriter) -> bool:
    w.write(ok(b"secure hello"))
    return True


async def test_tls_is_verified_against_ssl_cert_file(
    cert: tuple[Path, Path], fresh_tls: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with server(hello, tls=server_tls(cert)) as (origin, _log):
        http = RouteHttp()
        try:
            # control first: the certificate is not trusted by default
            with pytest.raises(TransportError, match=r"ConnectError: .*CERTIFICATE_VERIFY_FAILED"):
                await http.request(MODELS, f"{origin}/x", headers={})
            monkeypatch.setattr(netenv, "_TLS", None)
            monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
            assert (await http.request(MODELS, f"{origin}/x", headers={})).content == b"secure hello"
        finally:
            await http.aclose()


@asynccontextmanager
async def proxy_server(
    *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """An HTTP proxy: absolute-form requests forwarded (one per connection), CONNECT tunnelled."""
    seen: list[tuple[str, dict[str, str]]] = []

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            dst.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if request is None:
            writer.close()
            return
        line, headers, body = request
        seen.append((line, headers))
        method, target, _ = line.split(" ", 2)
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            up_r, up_w = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
            return
        from urllib.parse import urlsplit

        parts = urlsplit(target)
        up_r, up_w = await asyncio.open_connection(parts.hostname, parts.port)
        up_w.write(f"{method} {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\nconnection: close\r\n"
                   f"content-length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
        answer = await up_r.readuntil(b"\r\n\r\n")
        length = int(answer.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        writer.write(answer + await up_r.readexactly(length))
        await writer.drain()
        writer.close()
        up_w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    try:
        yield f"http://user:p%40ss@127.0.0.1:{srv.sockets[0].getsockname()[1]}", seen
    finally:
        srv.close()


async def test_proxies_from_the_environment(
    cert: tuple[Path, Path], fresh_tls: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    async with (
        proxy_server() as (proxy, seen),
        server(hello) as (plain, _l1),
        server(hello, tls=server_tls(cert)) as (
            secure,
            _l2,
        ),
    ):
        http = RouteHttp()
        try:
            # control: no proxy in the environment, straight to the server
            assert (await http.request(MODELS, f"{plain}/a", headers={})).content == b"secure hello"
            assert seen == []
            monkeypatch.setenv("HTTP_PROXY", proxy)
            monkeypatch.setenv("https_proxy", proxy)
            await http.aclose()
            assert (await http.request(MODELS, f"{plain}/b", headers={})).content == b"secure hello"
            assert (await http.request(MODELS, f"{secure}/c", headers={})).content == b"secure hello"
            assert [line for line, _ in seen] == [f"GET {plain}/b HTTP/1.1", f"CONNECT {secure[8:]} HTTP/1.1"]
            assert all(h["proxy-authorization"] == "Basic dXNlcjpwQHNz" for _, h in seen)  # user:p@ss
            monkeypatch.setenv("NO_PROXY", "example.com, 127.0.0.1")
            await http.aclose()
            assert (await http.request(MODELS, f"{plain}/d", headers={})).content == b"secure hello"
            assert len(seen) == 2
            monkeypatch.delenv("NO_PROXY")
            monkeypatch.setenv("HTTP_PROXY", "socks5://127.0.0.1:1")
            with pytest.raises(TransportError, match=r"ProxyError: .*socks5.*not supported"):
                await http.request(MODELS, f"{plain}/e", headers={})
        finally:
            await http.aclose()


# --- found by a hostile review (each with the control that shows the attack's shape) -----------------


async def test_bytes_past_an_answer_are_never_the_next_answer() -> None:
    """A server that writes more than its answer (in the same write, or later while the connection
    is idle): those bytes must not be read as the answer to the next request."""

    async def handler(line: str, headers: dict[str, str], body: bytes, w: asyncio.StreamWriter) -> bool:
        path = line.split()[1]
        w.write(ok(f"answer to {path}".encode()))
        if path == "/one":  # and, unasked, something that looks like the next answer
            w.write(ok(b"forged"))
        if path == "/three":
            await w.drain()
            await asyncio.sleep(0.1)
            w.write(ok(b"forged later"))
        return True

    async with server(handler) as (origin, log):
        http = RouteHttp(tls=False)
        try:
            got = []
            for path in ("/one", "/two", "/three"):
                got.append((await http.request(MODELS, origin + path, headers={})).content)
            await asyncio.sleep(0.3)  # the late bytes have arrived on the idle connection
            got.append((await http.request(MODELS, origin + "/four", headers={})).content)
        finally:
            await http.aclose()
    assert got == [b"answer to /one", b"answer to /two", b"answer to /three", b"answer to /four"]
    # /two and /four went on new connections (the ones with stray bytes were dropped)
    assert [entry.split(":")[0] for entry in log] == ["conn 1", "conn 2", "conn 2", "conn 3"]


async def test_a_post_is_never_sent_twice_by_the_transport() -> None:
    """A kept connection the server closes after reading a POST: the server may have acted on it,
    so the POST is not sent again (the caller's retry decides, as its own recorded attempt)."""
    seen: list[str] = []

    async def handler(line: str, headers: dict[str, str], body: bytes, w: asyncio.StreamWriter) -> bool:
        seen.append(line)
        if line.startswith("POST"):
            return False  # read it, then close without a word
        w.write(ok(b"hello"))
        return True

    token = route("oauth.token")
    async with server(handler) as (origin, _log):
        http = RouteHttp(tls=False)
        records: list[object] = []
        http.observers.append(records.append)
        try:
            assert (await http.request(MODELS, f"{origin}/warm", headers={})).content == b"hello"
            with pytest.raises(TransportError, match="Server disconnected without sending a response"):
                await http.request(
                    token, f"{origin}/oauth/token", headers={}, data={"grant_type": "refresh_token"}
                )
        finally:
            await http.aclose()
    assert [line.split()[0] for line in seen] == ["GET", "POST"] and len(records) == 2


async def test_an_error_body_is_read_only_so_far() -> None:
    """An error answer whose body never ends: its message is read from the first MiB and the
    request fails at once (it used to be read whole — without end)."""
    from codexbro.api.responses import ResponsesClient
    from codexbro.errors import ApiError

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        chunk = b'{"error": {"message": "' + b"x" * 60_000
        try:
            while True:
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
                chunk = b"y" * 60_000
        except (ConnectionError, asyncio.CancelledError):
            pass

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    http = RouteHttp(tls=False)
    client = ResponsesClient(http, base_url=f"http://127.0.0.1:{port}/v1", request_max_retries=0)
    try:
        async with asyncio.timeout(20):
            with pytest.raises(ApiError):
                async for _event in client.stream({"model": "m"}, {}):
                    pass
    finally:
        await http.aclose()
        srv.close()


def test_no_proxy_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.parse import urlsplit

    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    cases = [
        ("*.example.com", "http://x.example.com/", True), ("example.com", "http://example.com./", True),
        ("example.com:8080", "http://example.com/", False), ("example.com:8080", "http://example.com:8080/", True),
        ("http://example.com", "http://example.com/", True), ("[::1]:8080", "http://[::1]:8080/", True),
        ("::1", "http://[::1]/", True), ("127.0.0.0/8", "http://127.0.0.1/", True),
        ("10.0.0.0/8", "http://127.0.0.1/", False), ("ample.com", "http://example.com/", False),
        ("", "http://example.com/", False), ("https://example.com", "http://example.com/", False),
    ]  # fmt: skip
    for no_proxy, url, bypass in cases:
        monkeypatch.setenv("NO_PROXY", no_proxy)
        assert (netenv.proxy_for(urlsplit(url)) is None) == bypass, (no_proxy, url)
    monkeypatch.setenv("HTTP_PROXY", "http://u:p@[::1")
    with pytest.raises(netenv.ProxySettingError, match="not a valid URL") as err:
        netenv.proxy_for(urlsplit("http://example.com/"))
    assert "u:p" not in str(err.value)


async def test_through_an_https_proxy_everything_is_encrypted(
    cert: tuple[Path, Path], fresh_tls: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An https:// proxy is spoken to over TLS (its credentials and, for an http origin, the whole
    request); an https origin behind it gets its own TLS inside the tunnel."""
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    async with (
        proxy_server(tls=server_tls(cert)) as (proxy, seen),
        server(hello) as (plain, _l1),
        server(hello, tls=server_tls(cert)) as (secure, _l2),
    ):
        monkeypatch.setenv("HTTP_PROXY", proxy.replace("http://", "https://"))
        monkeypatch.setenv("HTTPS_PROXY", proxy.replace("http://", "https://"))
        http = RouteHttp()
        try:
            assert (await http.request(MODELS, f"{plain}/a#frag", headers={})).content == b"secure hello"
            assert (await http.request(MODELS, f"{secure}/b", headers={})).content == b"secure hello"
        finally:
            await http.aclose()
    assert [line for line, _ in seen] == [f"GET {plain}/a HTTP/1.1", f"CONNECT {secure[8:]} HTTP/1.1"]


async def test_a_bad_origin_certificate_behind_an_https_proxy_is_a_connect_error(
    cert: tuple[Path, Path], fresh_tls: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """TLS inside the proxy's TLS: an origin whose certificate names another host is refused with a
    ConnectError (on Python 3.11/3.12 asyncio's own error path raises a TypeError there), recorded,
    and the origin never gets a request."""
    wrong = make_cert(tmp_path, "other.example", "DNS:other.example")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(cert[0].read_bytes() + wrong[0].read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    async with (
        proxy_server(tls=server_tls(cert)) as (proxy, seen),
        server(hello, tls=server_tls(wrong)) as (
            secure,
            log,
        ),
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.replace("http://", "https://"))
        http = RouteHttp()
        records: list[object] = []
        http.observers.append(records.append)
        try:
            with pytest.raises(TransportError, match=r"ConnectError: .*CERTIFICATE_VERIFY_FAILED"):
                await http.request(MODELS, f"{secure}/x", headers={})
        finally:
            await http.aclose()
    assert (
        [line for line, _ in seen] == [f"CONNECT {secure[8:]} HTTP/1.1"] and log == [] and len(records) == 1
    )


async def test_an_event_stream_read_to_completed_keeps_its_connection() -> None:
    """The Responses client stops reading at ``response.completed``; when the body's end came with
    it, the connection is kept for the next turn (no new TCP/TLS handshake) — and when it did not,
    it is closed (control)."""
    from codexbro.api.responses import ResponsesClient

    def sse(kind: str) -> bytes:
        return f'data: {{"type": "{kind}", "response": {{"id": "r"}}}}\n\n'.encode()

    async def handler(line: str, headers: dict[str, str], body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        events = sse("response.created") + sse("response.completed")
        w.write(f"{len(events):x}\r\n".encode() + events + b"\r\n")
        if "late" in line:  # the end follows later: not known when the reader stops
            await w.drain()
            await asyncio.sleep(0.2)
        w.write(b"0\r\n\r\n")
        return True

    async with server(handler) as (origin, log):
        http = RouteHttp(tls=False)
        try:
            for path in ("v1", "v1", "late/v1", "late/v1"):
                client = ResponsesClient(http, base_url=f"{origin}/{path}", request_max_retries=0)
                kinds = [type(e).__name__ async for e in client.stream({"model": "m"}, {})]
                assert kinds[-1] == "Completed", kinds
        finally:
            await http.aclose()
    assert [entry.split(":")[0] for entry in log] == ["conn 1", "conn 1", "conn 1", "conn 2"]

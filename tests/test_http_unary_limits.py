"""Unary requests (JSON APIs: the model catalog, the ChatGPT backend, OAuth, transcription) are
bounded: a body over the limit — compressed or not — and a server that trickles its answer a byte
at a time are cut off with a clear error; an ordinary (gzip) answer reads as before. Real loopback
sockets; a control shows each server's answer is whole when the limit allows it."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from codexbro.api.http import RouteHttp
from codexbro.api.routes import route
from codexbro.errors import TransportError

MODELS = route("models.list")


@asynccontextmanager
async def raw_server(answer: Callable[[asyncio.StreamWriter], object]) -> AsyncIterator[str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:
            result = answer(writer)
            if asyncio.iscoroutine(result):
                await result
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/models"
    finally:
        server.close()


def head(length: int, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n{extra}\r\n"
    ).encode()


async def test_a_body_over_the_limit_is_cut_off() -> None:
    big = b'{"data": "' + b"x" * 3_000_000 + b'"}'

    def answer(w: asyncio.StreamWriter) -> None:
        w.write(head(len(big)) + big)

    async with raw_server(answer) as url:
        http = RouteHttp(tls=False)
        try:
            whole = await http.request(MODELS, url, headers={}, max_bytes=4_000_000)  # control
            assert len(whole.json()["data"]) == 3_000_000
            with pytest.raises(TransportError, match="over 1024 KiB"):
                await http.request(MODELS, url, headers={}, max_bytes=1024 * 1024)
        finally:
            await http.aclose()


async def test_a_compression_bomb_is_cut_off_after_decoding() -> None:
    bomb = gzip.compress(b'{"data": "' + b"0" * 50_000_000 + b'"}')  # ~50 KB on the wire

    def answer(w: asyncio.StreamWriter) -> None:
        w.write(head(len(bomb), "content-encoding: gzip\r\n") + bomb)

    async with raw_server(answer) as url:
        http = RouteHttp(tls=False)
        try:
            with pytest.raises(TransportError, match="over"):
                await http.request(MODELS, url, headers={}, max_bytes=1024 * 1024)
        finally:
            await http.aclose()


async def test_a_gzip_answer_reads_as_json() -> None:
    doc = {"models": [{"slug": "m"}]}
    body = gzip.compress(json.dumps(doc).encode())

    def answer(w: asyncio.StreamWriter) -> None:
        w.write(head(len(body), 'content-encoding: gzip\r\netag: "v1"\r\n') + body)

    async with raw_server(answer) as url:
        http = RouteHttp(tls=False)
        try:
            resp = await http.request(MODELS, url, headers={})
            assert resp.status_code == 200 and resp.json() == doc and resp.headers["etag"] == '"v1"'
            assert "content-encoding" not in resp.headers  # the body is decoded already
        finally:
            await http.aclose()


async def test_a_trickling_server_meets_the_deadline() -> None:
    body = b'{"models": []}' + b" " * 200

    async def trickle(w: asyncio.StreamWriter) -> None:
        w.write(head(len(body)))
        for byte in body:  # one byte every 0.1 s: each read is well within the read timeout
            w.write(bytes([byte]))
            await w.drain()
            await asyncio.sleep(0.1)

    async with raw_server(trickle) as url:
        http = RouteHttp(timeout_s=5.0, tls=False)
        try:
            started = time.monotonic()
            with pytest.raises(TransportError, match="no complete answer within 1 s"):
                await http.request(MODELS, url, headers={}, deadline_s=1.0)
            assert time.monotonic() - started < 3
        finally:
            await http.aclose()

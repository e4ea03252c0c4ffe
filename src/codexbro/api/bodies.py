"""Bodies: the content encodings a response may come in (what ``ACCEPT_ENCODING`` asks for),
decoded as chunks arrive, and the ``multipart/form-data`` body of an upload. Used by
``api/transport.py`` and ``api/http.py``."""

from __future__ import annotations

import os
import zlib
from typing import Any

ACCEPT_ENCODING = "gzip, deflate"


class UnaskedEncoding(ValueError):
    """The answer is encoded in a way the request did not ask for."""


def decoder(encoding: str | None) -> Any:
    """A decompressor for ``content-encoding`` (None for none). Only what ``ACCEPT_ENCODING`` asks
    for is accepted; anything else is a ``DecodingError`` rather than bytes passed on undecoded."""
    value = (encoding or "").strip().lower()
    if value in ("", "identity"):
        return None
    if value in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if value == "deflate":
        return Deflate()
    raise UnaskedEncoding(f"the answer is encoded as {value[:40]!r}, which was not asked for")


class Deflate:
    """``deflate`` as servers send it: zlib-wrapped (the standard) or raw (common)."""

    def __init__(self) -> None:
        self._inner: Any = None
        self._first = b""

    def decompress(self, data: bytes) -> bytes:
        if self._inner is None:
            self._first += data
            if len(self._first) < 2:
                return b""
            raw = (self._first[0] & 0x0F) != 8 or int.from_bytes(self._first[:2], "big") % 31 != 0
            self._inner = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
            data, self._first = self._first, b""
        return bytes(self._inner.decompress(data))

    def flush(self) -> bytes:
        if self._inner is None:
            return b""
        return bytes(self._inner.flush())


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its content type (the transcription upload)."""
    boundary = os.urandom(16).hex()
    parts: list[bytes] = []

    def quoted(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")

    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{quoted(name)}"\r\n\r\n'.encode()
        )
        parts.append(value.encode() + b"\r\n")
    for name, (filename, content, mime) in files.items():
        mime = "".join(c for c in mime if c.isprintable())
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{quoted(name)}"; '
                f'filename="{quoted(filename)}"\r\nContent-Type: {mime}\r\n\r\n')  # fmt: skip
        parts.append(head.encode())
        parts.append(content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"

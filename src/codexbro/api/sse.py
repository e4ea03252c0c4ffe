"""Server-sent events read from a body as it arrives (the WHATWG "event stream" format).

httpx-sse did this while codexbro spoke HTTP through httpx; its package cannot be imported without
httpx (see ``api/transport.py`` for why that went), so the format is read here. What the standard
asks and what is done:

- lines end in CRLF, LF or CR — a CR at the end of one chunk and an LF at the start of the next
  are one line end; lines are split as bytes (those bytes never occur inside a UTF-8 sequence) and
  each is decoded on its own, invalid UTF-8 replaced, a leading BOM dropped;
- ``:`` starts a comment; ``field: value`` loses one space after the colon; a line with no colon
  is a field with an empty value; ``data`` lines are joined with LF; ``event``, ``id`` (without NUL)
  and ``retry`` (digits only, at most 12) are kept; other fields are ignored;
- a blank line ends an event; an event with no ``data`` line is not delivered (the standard's
  rule), and an event cut off by the end of the stream is dropped;
- beyond the standard: one event may hold at most ``max_event_bytes`` (a server sending one
  endless line would otherwise fill memory); over it, :class:`SseError`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Protocol

from msgspec import Struct

MAX_EVENT_BYTES = 64 * 1024 * 1024
_LINE_END = re.compile(rb"\r\n|\r|\n")


class _Headers(Protocol):
    def get(self, name: str, default: str | None = None) -> str | None: ...


class _Body(Protocol):
    @property
    def headers(self) -> _Headers: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...


class SseError(Exception):
    """The answer is not an event stream, or an event is too large."""


class SseEvent(Struct):
    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class SseDecoder:
    """Feed body chunks, get the events they complete."""

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._partial = bytearray()  # the current line, not ended yet
        self._after_cr = False  # the last chunk ended in CR: an LF first in the next one is its pair
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._id = ""
        self._retry: int | None = None
        self._size = 0

    def feed(self, chunk: bytes) -> list[SseEvent]:
        out: list[SseEvent] = []
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._after_cr = False
        pos = 0
        for match in _LINE_END.finditer(chunk):
            if match.group() == b"\r" and match.end() == len(chunk):
                self._after_cr = True
            self._partial += chunk[pos : match.start()]
            line = bytes(self._partial)
            self._partial.clear()
            pos = match.end()
            event = self._line(line)
            if event is not None:
                out.append(event)
        self._partial += chunk[pos:]
        if self._size + len(self._partial) > self.max_event_bytes:
            raise SseError(f"an event is over {self.max_event_bytes // (1024 * 1024)} MiB")
        return out

    def _line(self, raw: bytes) -> SseEvent | None:
        text = raw.decode("utf-8", errors="replace")
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        if not text:
            return self._dispatch()
        self._size += len(raw)
        if text.startswith(":"):
            return None
        name, colon, value = text.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isascii() and value.isdigit() and len(value) <= 12:
            self._retry = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        data, event = self._data, self._event
        self._data, self._event, self._size = [], "", 0
        if not data:
            return None
        return SseEvent(data="\n".join(data), event=event or "message", id=self._id, retry=self._retry)


def check_event_stream(content_type: str | None) -> None:
    """An answer that is not ``text/event-stream`` is not read as one."""
    kind = (content_type or "").partition(";")[0].strip().lower()
    if kind != "text/event-stream":
        shown = (content_type or "none")[:80]
        raise SseError(f"the answer is not an event stream (content-type: {shown!r})")


async def events(
    chunks: AsyncIterator[bytes], max_event_bytes: int = MAX_EVENT_BYTES
) -> AsyncIterator[SseEvent]:
    """The events of a body, in order, as its chunks arrive."""
    decoder = SseDecoder(max_event_bytes)
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event


async def response_events(response: _Body) -> AsyncIterator[SseEvent]:
    """The events of an answer, which must say it is an event stream (checked when the first event
    is asked for, so the caller's error handling sees it with the stream's other failures)."""
    check_event_stream(response.headers.get("content-type"))
    async for event in events(response.aiter_bytes()):
        yield event

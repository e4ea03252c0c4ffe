"""The event-stream reader (api/sse.py) against the WHATWG format's rules, fed whole and split at
every byte: line ends of three kinds (and a CR/LF pair split across chunks), comments, fields
without a colon, multi-line data, an event with no data, a BOM, invalid UTF-8, an event cut off by
the end of the stream, and an endless line."""

from __future__ import annotations

import pytest

from codexbro.api.sse import SseDecoder, SseError, SseEvent, check_event_stream

STREAM = (
    "\ufeff: a comment first\r\n"
    "event: response.created\r\n"
    'data: {"type": "response.created"}\r\n'
    "\r\n"
    "data: line one\r"
    "data:line two\r"
    "data\r"
    "id: 7\r"
    "retry: 1500\r"
    "\r"
    "event: no-data\n"
    "\n"
    "id: a\0b\n"
    "retry: soon\n"
    "data:  two spaces\n"
    "unknown: ignored\n"
    "\n"
    "data: é ✓\n"
    "\n"
    "data: cut off by the end\n"
)

EXPECTED = [
    SseEvent(data='{"type": "response.created"}', event="response.created"),
    SseEvent(data="line one\nline two\n", id="7", retry=1500),
    SseEvent(data=" two spaces", id="7", retry=1500),
    SseEvent(data="é ✓", id="7", retry=1500),
]


def feed(chunks: list[bytes]) -> list[SseEvent]:
    decoder = SseDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def test_a_whole_stream_reads_as_the_standard_says() -> None:
    assert feed([STREAM.encode()]) == EXPECTED


def test_a_stream_split_anywhere_reads_the_same() -> None:
    raw = STREAM.encode()
    for cut in range(1, len(raw)):
        assert feed([raw[:cut], raw[cut:]]) == EXPECTED, cut
    assert feed([bytes([b]) for b in raw]) == EXPECTED


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    # control: with the CR and the LF counted as two line ends, the blank line would end the event early
    assert feed([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [SseEvent(data="a\nb")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert feed([b"data: \xff\xfe ok\n\n"]) == [SseEvent(data="\ufffd\ufffd ok")]


def test_an_endless_line_is_refused() -> None:
    decoder = SseDecoder(max_event_bytes=1024)
    decoder.feed(b"data: " + b"x" * 1000)
    with pytest.raises(SseError, match="over"):
        decoder.feed(b"x" * 100)
    # control: the same bytes with line ends between events are fine
    decoder = SseDecoder(max_event_bytes=1024)
    assert len([e for _ in range(10) for e in decoder.feed(b"data: " + b"x" * 500 + b"\n\n")]) == 10


def test_only_an_event_stream_is_read_as_one() -> None:
    check_event_stream("text/event-stream; charset=utf-8")
    check_event_stream("Text/Event-Stream")
    for other in ("application/json", None, "text/html"):
        with pytest.raises(SseError, match="not an event stream"):
            check_event_stream(other)


def test_an_absurd_retry_value_is_ignored() -> None:
    # 5,000 digits: int() would refuse it (Python's digit limit) and break the stream
    assert feed([b"retry: " + b"9" * 5000 + b"\ndata: x\n\n"]) == [SseEvent(data="x")]
    assert feed([b"retry: 1000\ndata: x\n\n"]) == [SseEvent(data="x", retry=1000)]  # control

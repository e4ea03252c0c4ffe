"""Realtime voice over WebSocket (``GET {base}/realtime?model=…``, route ``realtime.connect``).

What the seed's realtime client does, in the Realtime API's GA dialect (the one upstream 0.169's
``RealtimeV2`` parser reads; ../shared/reference §3.2 is summary-level, so the shapes below follow
the public Realtime API and are marked unverified against 0.169's own frames):

client → server: ``session.update`` (``session: {type: "realtime", model, instructions,
output_modalities: ["audio"], audio: {input: {format: {type: "audio/pcm", rate: 24000},
transcription: {model}, turn_detection: null}, output: {format, voice}}, tools, tool_choice}``),
``input_audio_buffer.append`` (base64 PCM16 mono 24 kHz, ≤ 100 ms per frame),
``input_audio_buffer.commit``, ``response.create``, and after a tool call
``conversation.item.create`` with a ``function_call_output`` then ``response.create`` again.

server → client, both dialects accepted (GA first, beta in brackets): the input transcript
(``conversation.item.input_audio_transcription.completed``), answer audio
(``response.output_audio.delta`` [``response.audio.delta``]), the answer's transcript
(``response.output_audio_transcript.delta``/``.done`` [``response.audio_transcript.*``], or text
through ``response.output_text.delta``), function calls (``response.output_item.done`` with a
``function_call`` item, or ``response.function_call_arguments.done``), ``response.done``, ``error``.

This module is a wire client: it knows nothing of tools or sessions. ``RealtimeSession.converse``
takes a callback that runs a function call and returns its output (the front end routes it through
the session's tool router).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from msgspec import Struct, field

from codexbro.api.http import RequestRecord
from codexbro.api.routes import bucket_for, route
from codexbro.errors import FatalApiError, RetryableApiError

log = logging.getLogger(__name__)
REALTIME = route("realtime.connect")
DEFAULT_MODEL = "gpt-realtime-1.5"  # upstream 0.169's bundled default (reference §3.2)
RATE = 24_000
FRAME_BYTES = RATE * 2 // 10  # 100 ms of PCM16 mono
MAX_TOOL_ROUNDS = 8
MAX_FRAME = 16 * 1024 * 1024  # one server event
MAX_AUDIO = RATE * 2 * 60 * 20  # 20 minutes of answer audio
MAX_TEXT = 1024 * 1024

RunTool = Callable[[str, str, str], Awaitable[str]]  # (call id, name, arguments JSON) → output


class Conversation(Struct):
    """What a realtime exchange produced."""

    input_transcript: str = ""
    transcript: str = ""  # the answer's words
    audio: bytearray = field(default_factory=bytearray)  # the answer, PCM16 mono 24 kHz
    tool_calls: list[dict[str, str]] = field(default_factory=list)  # name, arguments, output
    events: int = 0


def realtime_url(base_url: str, model: str, query: dict[str, str] | None = None) -> str:
    url = REALTIME.url(base_url, {"model": model, **(query or {})})
    return (
        ("wss://" + url.removeprefix("https://"))
        if url.startswith("https://")
        else "ws://" + url.removeprefix("http://")
    )


def session_update(model: str, instructions: str, tools: list[dict[str, Any]], voice: str,
                   transcription_model: str) -> dict[str, Any]:  # fmt: skip
    fmt = {"type": "audio/pcm", "rate": RATE}
    return {"type": "session.update", "session": {
        "type": "realtime", "model": model, "instructions": instructions, "output_modalities": ["audio"],
        "audio": {"input": {"format": fmt, "transcription": {"model": transcription_model}, "turn_detection": None},
                  "output": {"format": fmt, "voice": voice}},
        "tools": [{"type": "function", "name": t["name"], "description": t.get("description", ""),
                   "parameters": t.get("parameters") or {"type": "object", "properties": {}}}
                  for t in tools if t.get("type") == "function"],
        "tool_choice": "auto",
    }}  # fmt: skip


class RealtimeSession:
    """One realtime WebSocket: configure, send a recording, converse until the answer is done."""

    def __init__(self, url: str, headers: dict[str, str], *, connect_timeout_s: float = 15.0,
                 idle_timeout_s: float = 120.0, record: Callable[[RequestRecord], None] | None = None) -> None:  # fmt: skip
        self.url = url
        self.headers = headers
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.record = record
        self.conn: Any = None

    async def __aenter__(self) -> RealtimeSession:
        from websockets.exceptions import InvalidStatus, WebSocketException

        from codexbro.api.ws_connect import open_ws

        rec = RequestRecord(REALTIME.name, bucket_for(REALTIME, self.url), "GET", self.url, 1)
        started = time.monotonic()
        try:
            self.conn = await open_ws(self.url, self.headers, open_timeout=self.connect_timeout_s,
                                      max_size=MAX_FRAME, compression=None)  # fmt: skip
            rec.status = 101
        except InvalidStatus as exc:
            rec.status = exc.response.status_code
            raise FatalApiError(f"the realtime endpoint {self.url} answered HTTP {rec.status}",
                                kind="other", status=rec.status, route=REALTIME.name) from None  # fmt: skip
        except (OSError, TimeoutError, WebSocketException) as exc:
            rec.error = f"{type(exc).__name__}: {exc}"
            raise RetryableApiError(f"could not open the realtime WebSocket {self.url}: {rec.error}",
                                    kind="http_connection_failed", route=REALTIME.name) from None  # fmt: skip
        finally:
            rec.duration_ms = (time.monotonic() - started) * 1000
            if self.record is not None:
                self.record(rec)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def send(self, message: dict[str, Any]) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self.conn.send(json.dumps(message))
        except ConnectionClosed as exc:
            raise RetryableApiError(f"the realtime WebSocket closed ({exc})", kind="response_stream_disconnected",
                                    route=REALTIME.name) from None  # fmt: skip

    async def configure(self, update: dict[str, Any]) -> None:
        await self.send(update)

    async def send_audio(self, pcm: bytes) -> None:
        """The recording, 100 ms per frame, then committed."""
        for start in range(0, len(pcm), FRAME_BYTES):
            chunk = base64.b64encode(pcm[start : start + FRAME_BYTES]).decode("ascii")
            await self.send({"type": "input_audio_buffer.append", "audio": chunk})
        await self.send({"type": "input_audio_buffer.commit"})

    async def converse(self, run_tool: RunTool, on_event: Callable[[dict[str, Any]], None] | None = None
                       ) -> Conversation:  # fmt: skip
        """Ask for the answer; run each function call through ``run_tool`` and ask again, until a
        response ends without one (at most ``MAX_TOOL_ROUNDS`` rounds)."""
        from websockets.exceptions import ConnectionClosed

        out = Conversation()
        for _round in range(MAX_TOOL_ROUNDS):
            await self.send({"type": "response.create"})
            calls: dict[str, tuple[str, str]] = {}
            try:
                while True:
                    async with asyncio.timeout(self.idle_timeout_s):
                        raw = await self.conn.recv()
                    try:
                        event = json.loads(raw) if isinstance(raw, str) else {}
                    except (ValueError, RecursionError):
                        continue  # not an event: skipped
                    if not isinstance(event, dict):
                        continue
                    out.events += 1
                    if on_event is not None:
                        on_event(event)
                    if self._take(event, out, calls):
                        break
            except ConnectionClosed as exc:
                raise RetryableApiError(f"the realtime WebSocket closed before the answer was done ({exc})",
                                        kind="response_stream_disconnected", route=REALTIME.name) from None  # fmt: skip
            except TimeoutError:
                raise RetryableApiError("idle timeout on the realtime WebSocket", kind="response_stream_disconnected",
                                        route=REALTIME.name) from None  # fmt: skip
            if not calls:
                return out
            for call_id, (name, arguments) in calls.items():
                output = await run_tool(call_id, name, arguments)
                out.tool_calls.append({"name": name, "arguments": arguments, "output": output})
                await self.send({"type": "conversation.item.create",
                                 "item": {"type": "function_call_output", "call_id": call_id, "output": output}})  # fmt: skip
        raise FatalApiError(f"the realtime model kept calling tools ({MAX_TOOL_ROUNDS} rounds); stopped",
                            kind="other", route=REALTIME.name)  # fmt: skip

    @staticmethod
    def _take(event: dict[str, Any], out: Conversation, calls: dict[str, tuple[str, str]]) -> bool:
        """Fold one server event into ``out``; True when the response is done."""
        kind = str(event.get("type") or "")
        if kind == "error":
            err = _obj(event.get("error"))
            raise FatalApiError(
                f"realtime error: {err.get('message') or 'unknown'}", kind="other", route=REALTIME.name
            )
        if kind == "conversation.item.input_audio_transcription.completed":
            out.input_transcript += str(event.get("transcript") or "")
        elif kind in ("response.output_audio.delta", "response.audio.delta"):
            try:
                out.audio += base64.b64decode(str(event.get("delta") or ""), validate=True)
            except ValueError:
                log.debug("skipping an audio delta that is not base64")
            if len(out.audio) > MAX_AUDIO:
                raise FatalApiError(f"the realtime answer is over {MAX_AUDIO // (RATE * 2 * 60)} minutes of audio; stopped",
                                    kind="other", route=REALTIME.name)  # fmt: skip
        elif kind in ("response.output_audio_transcript.delta", "response.audio_transcript.delta",
                      "response.output_text.delta", "response.text.delta"):  # fmt: skip
            out.transcript += str(event.get("delta") or "")
            if len(out.transcript) > MAX_TEXT:
                raise FatalApiError(
                    "the realtime transcript is over 1 MiB; stopped", kind="other", route=REALTIME.name
                )
        elif kind == "response.output_item.done":
            item = _obj(event.get("item"))
            if item.get("type") == "function_call" and item.get("call_id"):
                calls[str(item["call_id"])] = (
                    str(item.get("name") or ""),
                    str(item.get("arguments") or "{}"),
                )
        elif kind == "response.function_call_arguments.done" and event.get("call_id"):
            calls.setdefault(
                str(event["call_id"]), (str(event.get("name") or ""), str(event.get("arguments") or "{}"))
            )
        elif kind == "response.done":
            resp = _obj(event.get("response"))
            if resp.get("status") == "failed":
                details = resp.get("status_details") or {}
                raise FatalApiError(f"the realtime response failed: {json.dumps(details)[:300]}", kind="other",
                                    route=REALTIME.name)  # fmt: skip
            return True
        return False


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# ---- audio files -------------------------------------------------------------------------------------


def read_wav_pcm16(path: str) -> bytes:
    """A WAV file's audio as PCM16 mono 24 kHz (channels averaged, resampled linearly)."""
    import array
    import wave

    with wave.open(path, "rb") as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    if width != 2:
        raise ValueError(f"{path}: {width * 8}-bit samples; 16-bit PCM WAV is needed")
    if not 8000 <= rate <= 192_000:
        raise ValueError(f"{path}: a sample rate of {rate} Hz (8–192 kHz is accepted)")
    if channels < 1:
        raise ValueError(f"{path}: no audio channels")
    samples = array.array("h")
    samples.frombytes(frames)
    if channels > 1:
        samples = array.array(
            "h", (sum(samples[i : i + channels]) // channels for i in range(0, len(samples), channels))
        )
    if rate != RATE and samples:
        n = max(1, round(len(samples) * RATE / rate))
        step = (len(samples) - 1) / max(1, n - 1)
        out = array.array("h")
        for i in range(n):
            x = i * step
            j = int(x)
            frac = x - j
            nxt = samples[j + 1] if j + 1 < len(samples) else samples[j]
            out.append(int(samples[j] + (nxt - samples[j]) * frac))
        samples = out
    return samples.tobytes()


def write_wav_pcm16(path: str, pcm: bytes) -> None:
    import wave

    with wave.open(path, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm)

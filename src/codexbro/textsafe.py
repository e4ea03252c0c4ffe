"""Text from outside — servers, the model, commands — that is unsafe to encode or to show.

**Lone surrogates.**
JSON may escape a surrogate on its own (``"\\ud800"``); Python decodes it into a ``str`` that no
UTF-8 encoder accepts, so a model's reply or a tool call carrying one would fail wherever it is
written next (the rollout, the terminal, the next request). Upstream's parser rejects such an event
and drops its text; codexbro keeps the text and replaces each lone surrogate with U+FFFD (a proper
pair, ``"\\ud83d\\ude00"``, is one character and stays).

**Terminal control sequences.** A command's output or a model's reply printed as is could clear
the screen, retitle the window, write the clipboard (OSC 52), or hide text behind a carriage
return. ``for_terminal`` shows every control character except newline and tab as its Unicode
"control picture" (ESC as ␛, CR as ␍) and C1 controls and bidirectional overrides as
U+FFFD, so what was sent stays visible and does nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

_LONE = re.compile("[\ud800-\udfff]")
_ESCAPED = re.compile(r"\\u[dD][89a-fA-F]")  # a surrogate escape, paired or not


_TERMINAL = {c: 0x2400 + c for c in range(0x20) if c not in (0x09, 0x0A)}
_TERMINAL[0x7F] = 0x2421  # DEL → ␡
_TERMINAL.update({c: 0xFFFD for c in range(0x80, 0xA0)})  # C1: CSI (0x9b), OSC (0x9d), …
# Bidirectional overrides and isolates: they reorder what is shown (a command that reads as another)
_TERMINAL.update(
    {c: 0xFFFD for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))}
)


def for_terminal(text: str) -> str:
    """``text`` safe to print on a terminal (``\r\n`` becomes ``\n`` first)."""
    return text.replace("\r\n", "\n").translate(_TERMINAL)


def clean(text: str) -> str:
    return _LONE.sub("\ufffd", text)


def scrub(value: Any) -> Any:
    """``value`` with every string (keys too) cleaned; ``value`` itself when nothing needed it."""
    if isinstance(value, str):
        return clean(value) if _LONE.search(value) else value
    if isinstance(value, dict):
        pairs = [(scrub(k), scrub(v)) for k, v in value.items()]
        if all(k2 is k and v2 is v for (k2, v2), (k, v) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    if isinstance(value, list):
        items = [scrub(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON for a request body; a lone surrogate that reached the value (a non-UTF-8
    path or argument, an old rollout) is sent as U+FFFD instead of failing the request. Encoded by
    msgspec (a 600 KiB body at turn 500 of a session: ~1 ms, json.dumps ~6 ms); a value it cannot
    encode as given (a lone surrogate, a float NaN, a non-string key) goes through ``json``."""
    import msgspec

    try:
        return msgspec.json.encode(value)
    except (UnicodeEncodeError, TypeError, ValueError, msgspec.EncodeError):
        pass
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return clean(text).encode("utf-8")


def loads(text: str | bytes) -> Any:
    """``json.loads``, with lone surrogates replaced (only searched for when the text escapes one).
    Nesting too deep to parse is a ``ValueError`` like any other bad JSON (not a RecursionError).
    Parsed by msgspec (a 10,000-line rollout: ~3× faster); what it refuses — an escaped lone
    surrogate, ``NaN`` — is parsed again by ``json``, so the same inputs parse as before."""
    import msgspec

    try:
        return msgspec.json.decode(text)  # it refuses lone surrogates: nothing to replace
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except msgspec.DecodeError:
        pass
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return scrub(data) if _ESCAPED.search(raw) else data

"""Guards against the ways greedy decoding of a small model goes wrong: a loop of tokens, an answer
that says the same sentences again, and the answer text read out of a partial ``answer`` call (to
stream it as it is written)."""

from __future__ import annotations

import json
import re

from codexbro.embedded.render import REMINDER_HEAD

_ANSWER_HEAD = '<tool_call>\n{"name": "answer", "arguments": {"text": "'


def answer_so_far(text: str) -> str | None:
    """The decoded ``answer`` text inside a partial tagged call, or None when it is another call."""
    head = text.lstrip()
    if not head.startswith(_ANSWER_HEAD[: len(head)]) or len(head) < len(_ANSWER_HEAD):
        return None
    raw = head[len(_ANSWER_HEAD) :]
    out, i = [], 0
    while i < len(raw):
        ch = raw[i]
        if ch == '"':
            break
        if ch == "\\":
            chunk = raw[i : i + 6] if raw[i + 1 : i + 2] == "u" else raw[i : i + 2]
            if len(chunk) < (6 if raw[i + 1 : i + 2] == "u" else 2):
                break  # an escape still being written
            try:
                out.append(json.loads(f'"{chunk}"'))
            except ValueError:
                out.append(chunk)
            i += len(chunk)
            continue
        out.append(ch)
        i += 1
    return "".join(out)


_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")


def repeated_at(text: str, min_chars: int = 40) -> int | None:
    """Where ``text`` starts saying again what it just said: the offset of the second copy of a
    block of 1–4 sentences or lines (of at least ``min_chars`` characters, compared without case
    or spacing) written three times in a row. None when nothing loops. General by design — it
    looks at the shape of the answer, never at particular words — and only *consecutive* copies
    count: output that repeats a line among others (each commit's ``Author:`` in a git log, a
    listing's ``- ok``) is not a loop."""
    units = [
        (m.start(), " ".join(m.group(0).lower().split()).strip(" .!?")) for m in _SENTENCE.finditer(text)
    ]
    units = [(start, unit) for start, unit in units if unit]
    words = [unit for _start, unit in units]
    for i in range(len(words)):
        for size in range(1, 5):
            if i + 3 * size > len(words):
                break
            block = words[i : i + size]
            if sum(len(w) for w in block) < min_chars:
                continue
            if words[i + size : i + 2 * size] == block and words[i + 2 * size : i + 3 * size] == block:
                return units[i + size][0]
    return None


def looping(
    tokens: list[int], repeats: int = 4, longest: int = 40, gram: int = 10, window: int = 200
) -> bool:
    """Greedy decoding stuck in a loop: the last tokens are one stretch of 3–``longest`` tokens
    written ``repeats`` times in a row, or the newest ``gram`` tokens already occurred ``repeats``
    times in the last ``window`` tokens (near-loops such as ``| grep '3.8' | … | grep '3.9' | …``)."""
    for period in range(3, longest + 1):
        span = period * repeats
        if len(tokens) < span:
            break
        tail = tokens[-period:]
        if all(tokens[-(i + 1) * period : len(tokens) - i * period] == tail for i in range(1, repeats)):
            return True
    if len(tokens) < gram * (repeats + 1):
        return False
    recent = tokens[-window:]
    newest = recent[-gram:]
    seen = sum(1 for i in range(len(recent) - gram) if recent[i : i + gram] == newest)
    return seen >= repeats


def echoes_scaffold(answer: str) -> int | None:
    """Where an answer starts copying out the reminder the native profile puts after each tool
    result (``render.REMINDER``, recognised by its opening words), or None. Only a copy that
    follows some answer counts: an answer that *is* the copy is not cut to nothing."""
    at = answer.find(REMINDER_HEAD)
    return at if at > 0 and answer[:at].strip(" \n(") else None


def restarts(tokens: list[int], text: str, gram: int = 8, stages: int = 3) -> bool:
    """A command line going round: a chain of at least ``stages`` operators (``|``, ``&&``, ``;``)
    whose newest ``gram`` tokens were already written in it twice — a pipeline repeating its own
    stages (``| sed 's/row 1//g' | sed 's/row 2//g' | sed 's/row 3//g' …``). Two similar commands
    chained (``cat a.py | head -n 20; cat b.py | head -n 20``) are left alone, and so is a command
    with fewer operators however repetitive its quoted text (a ``printf`` writing similar lines)."""
    if len(tokens) < 3 * gram or text.count("|") + text.count("&&") + text.count(";") < stages:
        return False
    newest = tokens[-gram:]
    return sum(1 for i in range(len(tokens) - gram) if tokens[i : i + gram] == newest) >= 2

"""One reply of the embedded model being written.

Greedy decoding under a grammar spends a decoding step (~45 ms for the 1.5B model on 2 cores) on
every token, including those the grammar leaves no choice about. A tagged call of the native
profile has many: ``<tool_call>\n{"name": "`` before the name; with one tool allowed (an answer
redone, the last round of a turn) also the name and ``", "arguments": {"text": "``; and
``"}}\n</tool_call>`` plus the end of turn after the arguments. So ``write_call`` appends the head
to the prompt — it is evaluated in the prompt's batch, at a fraction of a step per token (measured:
~16 ms a token inside a batch of new tool output) — samples only the rest, stops as soon as the
call's JSON closes, and emits the tail without evaluating it. The stream the caller sees is the
text a one-shot generation writes. (Splitting a call into more requests, to write the text between
the name and the first argument too, was measured and dropped: a separate batch of 8 tokens costs
as much as decoding them.)

The guards (``guards.py``) watch what is sampled: a token loop, an answer saying the same sentences
again or copying the prompt's own scaffolding, and a shell command starting over (a stretch of it
written again, or longer than any command this profile needs) — each stops the reply, and the
caller redoes an unfinished call as an answer (``provider.py``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from codexbro.embedded.grammar import CALL_HEAD, CALL_OPEN, CALL_TAIL, call_rest
from codexbro.embedded.guards import answer_so_far, echoes_scaffold, looping, repeated_at, restarts


class _Stats(Protocol):
    reused_tokens: int
    output_tokens: int
    written_tokens: int
    first_token_s: float
    stopped: str


class _Server(Protocol):
    def complete(self, body: dict[str, Any], on_chunk: Callable[[dict[str, Any]], bool]) -> None: ...
    def tokenize(self, text: str, *, special: bool = True) -> list[int]: ...


# A shell command longer than this (in tokens) is rambling: a heredoc writing a 35-line file fits.
COMMAND_TOKENS = 320


class Reply:
    """Writes one reply: ``sample`` (free or under a grammar) and ``write_call`` (a tagged call:
    head written, the rest sampled, tail emitted). ``track`` is told of every chunk (the engine
    follows what its slot holds)."""

    def __init__(self, server: _Server, stats: _Stats, start: float, emit: Callable[[str], None],
                 cancel: threading.Event, track: Callable[[dict[str, Any], list[int]], None],
                 ) -> None:  # fmt: skip
        self.server = server
        self.stats = stats
        self.start = start
        self.emit = emit
        self.cancel = cancel
        self.track = track
        self.written = ""  # everything emitted so far, written and sampled
        self._pieces: dict[str, int] = {}  # each distinct piece as a number, for the loop guard
        self._produced: list[int] = []  # every sampled piece of the reply, as those numbers

    def _emit(self, text: str) -> None:
        self.written += text
        self.emit(text)

    def sample(self, tokens: list[int], grammar: str | None, budget: int,
               finished: Callable[[str], bool] | None = None,
               command: Callable[[str], bool] | None = None) -> tuple[str, bool]:  # fmt: skip
        """Sample after ``tokens`` (the prompt so far). Returns the sampled text and whether it
        ended normally (False: stopped by a guard or cancelled). ``finished`` ends the
        request as soon as it holds the sampled text complete; ``command`` tells from the sampled text
        whether it is a shell command (its guards apply)."""
        text = ""
        ok = True
        start_piece = len(self._produced)
        counted = self.stats.output_tokens  # before this request

        def chunk(data: dict[str, Any]) -> bool:
            nonlocal text, ok
            self.track(data, tokens)
            if self.cancel.is_set():
                ok = False
                return True
            progress = data.get("prompt_progress")
            if isinstance(progress, dict):
                self.stats.reused_tokens = int(progress.get("cache") or 0)
                return False
            usage = data.get("usage")
            if isinstance(usage, dict):  # the engine's own count (pieces held back for UTF-8 too)
                sampled = counted + int(usage.get("completion_tokens") or 0)
                self.stats.output_tokens = max(self.stats.output_tokens, sampled)
            choices = data.get("choices") or [{}]
            piece = str(choices[0].get("text") or "")
            if not piece:
                return False
            if not self._produced:
                self.stats.first_token_s = time.perf_counter() - self.start
            self._produced.append(self._pieces.setdefault(piece, len(self._pieces)))
            self.stats.output_tokens += 1
            text += piece
            self._emit(piece)
            if finished is not None and finished(text):
                return True
            shell = command is not None and command(text)
            if self._stopped(piece, text if shell else None, self._produced[start_piece:]):
                ok = False
                return True
            return False

        body: dict[str, Any] = {"prompt": tokens, "max_tokens": max(1, budget), "top_k": 1,
                                "temperature": 0.0, "repeat_penalty": 1.0}  # fmt: skip
        if grammar:
            body["grammar"] = grammar
        self.server.complete(body, chunk)
        return text, ok

    def _stopped(self, piece: str, command: str | None, produced: list[int]) -> bool:
        """Whether a guard stops the reply; ``command`` is the command line so far when the reply
        is a shell command (``produced``: its pieces)."""
        if looping(self._produced):
            self.stats.stopped = "repetition"  # greedy decoding stuck in a loop
            return True
        if command is not None and (len(produced) > COMMAND_TOKENS or restarts(produced, command)):
            self.stats.stopped = "rambling command"
            return True
        if any(c in piece for c in ".!?\n:"):
            answer = answer_so_far(self.written) or ""
            if repeated_at(answer) is not None:
                self.stats.stopped = "repetition"  # an answer saying the same sentences again
                return True
            if echoes_scaffold(answer) is not None:
                self.stats.stopped = "scaffolding"  # the answer copies the prompt's own reminder
                return True
        return False

    def _write(self, tokens: list[int], text: str) -> list[int]:
        """``text`` appended to the prompt: emitted now, evaluated with the next request."""
        self._emit(text)
        ids = self.server.tokenize(text, special=False)
        self.stats.written_tokens += len(ids)
        return [*tokens, *ids]

    def write_call(self, tokens: list[int], tools: list[dict[str, Any]], budget: int, lead: str = "") -> None:
        """One tagged call to one of ``tools`` (function tools with their schemas): the fixed head
        written into the prompt, the rest sampled until the JSON closes, the tail emitted.
        ``lead``: when the one tool takes a string first (the ``answer``), its first words, written
        with the head (the grammar goes on inside the string)."""
        head, grammar = call_rest(tools)
        if lead and len(tools) == 1 and head.endswith(' "') and grammar is not None:
            head += json.dumps(lead, ensure_ascii=False)[1:-1]
        tokens = self._write(tokens, CALL_HEAD + head)
        if grammar is not None:
            opened = self.written[self.written.rindex(CALL_HEAD) + len(CALL_OPEN) :]  # the JSON so far
            # A call of a tool taking one string (other than the `answer`) is a command line.
            shell = tuple(f'{t["name"]}"' for t in tools if t["name"] != "answer" and _one_string(t))
            text, ok = self.sample(
                tokens, grammar, budget, finished=lambda t: _closed(opened + t),
                command=lambda t: bool(shell) and (head + t).startswith(shell),
            )  # fmt: skip
            if not ok or not _closed(opened + text):  # stopped, or out of tokens: left unfinished
                return
        self._emit(CALL_TAIL)


def _closed(text: str) -> bool:
    """The call's JSON is complete (its last brace written)."""
    if not text.endswith("}"):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _one_string(tool: dict[str, Any]) -> bool:
    schema = tool.get("parameters") or {}
    required = list(schema.get("required") or [])
    props = schema.get("properties") or {}
    return len(required) == 1 and (props.get(required[0]) or {}).get("type") == "string"

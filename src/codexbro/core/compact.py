"""Compaction: replace a long history with a shorter one that still carries the task.

Three strategies behind one entry point (``compact``):

- ``remote``: ``POST {base}/responses/compact`` (upstream v1); keeps the server's user/assistant
  messages and opaque ``compaction`` items.
- ``inline``: the normal ``/responses`` request with a trailing ``{"type": "compaction_trigger"}``
  item (upstream v2); the answer must hold exactly one ``compaction`` item.
- ``local``: a normal request without tools asking for a handoff summary (our own prompt); the
  summary becomes a user message after the kept user messages.

``auto`` picks ``remote`` for the OpenAI provider and ``local`` elsewhere.

Beyond upstream, the rebuilt history always contains, word for word: the first real user message
(the task) and every sentence of any user message that states a constraint (``<user_constraints>``).
A compaction that would not make the context smaller is discarded; the caller never compacts twice
without a model response in between, and falls back to ``trim_tool_outputs`` when summarising fails.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from msgspec import Struct

from codexbro.api import events as ev
from codexbro.api.events import ResponseItem
from codexbro.errors import FatalApiError
from codexbro.protocol.items import message_text, user_message

COMPACT_PROMPT = """\
The conversation is about to be compacted: everything above will be replaced by what you write now. \
Write a handoff note for another agent that must continue this work without seeing the history.

Include:
- The user's task and every requirement or constraint they stated, quoted exactly.
- What has been done so far: files changed (with paths), commands run and their outcome, decisions made and why.
- What remains to do, in order, and any open questions or risks.
- Facts the next agent would otherwise have to rediscover (names, versions, error messages, test commands).

Be concrete and concise. Do not call tools."""

SUMMARY_PREFIX = (
    "The conversation so far was compacted. Another agent worked on this task before and left the "
    "handoff note below; continue from it, checking the workspace when in doubt."
)
TRIMMED = "[output removed to fit the context window]"
KEEP_USER_TOKENS = 20_000
CONTEXT_MARKERS = ("<environment_context>", "# AGENTS.md instructions", "<turn_aborted>", "<user_constraints>",
                   SUMMARY_PREFIX[:40])  # fmt: skip
_CONSTRAINT = re.compile(
    r"(?i)\b(must|never|always|only|do not|don't|dont|should not|shouldn't|without|avoid|keep|make sure|"
    r"required?|forbidden|no more than|at most|at least)\b"
)


def estimate_tokens(items: list[ResponseItem], extra: str = "") -> int:
    text = json.dumps(items, ensure_ascii=False)  # an estimate: a stray surrogate counts, never raises
    return (len(text.encode("utf-8", "surrogatepass")) + len(extra.encode("utf-8", "surrogatepass")) + 3) // 4


def is_real_user_message(item: ResponseItem) -> bool:
    if item.get("type") != "message" or item.get("role") != "user":
        return False
    text = message_text(item).lstrip()
    return bool(text) and not text.startswith(CONTEXT_MARKERS)


def constraint_sentences(texts: list[str]) -> list[str]:
    """Sentences (or lines) of the user's messages that state a requirement, verbatim, deduplicated."""
    out: list[str] = []
    for text in texts:
        for piece in re.split(r"(?<=[.!?])\s+|\n+", text):
            piece = piece.strip(" -*\t")
            if piece and _CONSTRAINT.search(piece) and piece not in out:
                out.append(piece)
    return out


def rebuild(
    history: list[ResponseItem], initial_context: list[ResponseItem], tail: list[ResponseItem]
) -> list[ResponseItem]:
    """initial context + the task + constraints + recent user messages (budget) + ``tail``."""
    users = [message_text(i) for i in history if is_real_user_message(i)]
    kept: list[str] = []
    if users:
        budget = KEEP_USER_TOKENS - (len(users[0]) + 3) // 4
        recent: list[str] = []
        for text in reversed(users[1:]):
            cost = (len(text) + 3) // 4
            if cost > budget:
                break
            recent.append(text)
            budget -= cost
        kept = [users[0], *reversed(recent)]
    out = list(initial_context)
    out += [user_message(t) for t in kept]
    constraints = [c for c in constraint_sentences(users) if not any(c in k for k in kept)]
    if constraints:
        block = "\n".join(f"- {c}" for c in constraints)
        out.append(
            user_message(
                f"<user_constraints>\nStated earlier by the user, still in force:\n{block}\n</user_constraints>"
            )
        )
    return out + tail


def trim_tool_outputs(history: list[ResponseItem], target_tokens: int) -> tuple[list[ResponseItem], int]:
    """Replace the oldest tool outputs' text until the estimate fits; calls stay answered."""
    items = [dict(i) for i in history]
    trimmed = 0
    for item in items:
        if estimate_tokens(items) <= target_tokens:
            break
        if (
            item.get("type") in ("function_call_output", "custom_tool_call_output")
            and item.get("output") != TRIMMED
        ):
            item["output"] = TRIMMED
            trimmed += 1
    return items, trimmed


class Compacted(Struct, frozen=True):
    history: list[ResponseItem]
    summary: str
    strategy: str


StreamFn = Callable[[list[ResponseItem], bool], AsyncIterator[ev.ResponseEvent]]
RemoteFn = Callable[[list[ResponseItem]], Awaitable[list[ResponseItem]]]


async def compact_local(
    history: list[ResponseItem], initial_context: list[ResponseItem], stream: StreamFn, prompt: str | None
) -> Compacted:  # fmt: skip
    request = [*history, user_message(prompt or COMPACT_PROMPT)]
    summary = ""
    async for event in stream(request, False):
        if isinstance(event, ev.OutputItemDone) and event.item.get("type") == "message":
            summary = message_text(event.item)
    summary = summary.strip() or "(no summary available)"
    tail = [user_message(f"{SUMMARY_PREFIX}\n\n{summary}")]
    return Compacted(rebuild(history, initial_context, tail), summary, "local")


async def compact_inline(
    history: list[ResponseItem], initial_context: list[ResponseItem], stream: StreamFn
) -> Compacted:
    items: list[ResponseItem] = []
    async for event in stream([*history, {"type": "compaction_trigger"}], True):
        if isinstance(event, ev.OutputItemDone):
            items.append(event.item)
    compactions = [i for i in items if i.get("type") == "compaction"]
    if len(compactions) != 1:
        raise FatalApiError(
            f"inline compaction expected exactly one compaction output item, got {len(compactions)} "
            f"from {len(items)} output items",
            kind="other",
        )
    return Compacted(rebuild(history, initial_context, compactions), "", "inline")


async def compact_remote(
    history: list[ResponseItem], initial_context: list[ResponseItem], remote: RemoteFn
) -> Compacted:
    output = await remote(history)
    kept = [
        i for i in output
        if i.get("type") == "compaction" or (i.get("type") == "message" and i.get("role") == "assistant")
    ]  # fmt: skip
    return Compacted(rebuild(history, initial_context, kept), "", "remote")


def choose_strategy(configured: str, provider_is_openai: bool) -> str:
    if configured in ("remote", "inline", "local"):
        return configured
    return "remote" if provider_is_openai else "local"


def wire_items(items: list[Any]) -> list[ResponseItem]:
    return [i for i in items if isinstance(i, dict)]

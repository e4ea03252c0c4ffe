"""An in-process model behind the same streaming interface as the wire layer: a ``Prompt`` in,
``ResponseEvent``s out — ``OutputItemAdded`` + ``OutputTextDelta`` as an answer is generated, then
``OutputItemDone`` with a ``function_call`` or an assistant ``message``, then ``Completed`` with usage.
Sessions, tools, sandbox and rollouts need no change to use it.

The prompt is rendered with the GGUF's own chat template and tokenized here, and tokens are sampled
one by one (greedy) under a grammar (``grammar.tool_grammar``: a schema-valid call or plain text),
so the engine knows exactly which tokens are in the KV cache: llama.cpp reuses the longest common
prefix between requests, and ``kvcache.KvStore`` carries that prefix to the next process.
llama-cpp-python is an optional extra (``pip install 'codexbro[local]'``) and imported only here.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codexbro.api import events as ev
from codexbro.api.model_client import Prompt
from codexbro.embedded.grammar import tool_grammar
from codexbro.embedded.kvcache import KvStore
from codexbro.embedded.parse import ParsedCall, parse_output
from codexbro.errors import ContextWindowExceeded, UserError
from codexbro.protocol.items import message_text

INSTALL_HINT = "pip install 'codexbro[local]'"
log = logging.getLogger(__name__)


def tool_guide(tools: list[dict[str, Any]]) -> str:
    lines = ["You can call these tools. To call one, answer with only a JSON object "
             '{"name": <tool name>, "arguments": {...}}. Otherwise answer in plain text.']  # fmt: skip
    for tool in tools:
        if tool.get("type") == "function":
            params = tool.get("parameters", {}).get("required", [])
            lines.append(
                f"- {tool['name']}: {tool.get('description', '')} Arguments: {', '.join(params) or 'none'}"
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class _Entry:
    """One Responses input item, reduced to what a chat template needs."""

    kind: str  # system | user | assistant | call | output
    text: str = ""  # for user: the request as typed (``shown`` adds the attachments)
    shown: str = ""
    name: str = ""
    arguments: dict[str, Any] | None = None
    call_id: str = ""


def _entries(prompt: Prompt, attachments: Mapping[str, str] | None) -> Iterator[_Entry]:
    for item in prompt.input:
        kind = item.get("type")
        if kind == "message":
            role = item.get("role")
            text = message_text(item)
            if role == "developer":
                yield _Entry("system", text)
            elif role == "user":
                yield _Entry("user", text, text + (attachments or {}).get(text, ""))
            elif role == "assistant":
                yield _Entry("assistant", text)
        elif kind in ("function_call", "custom_tool_call"):
            yield _Entry("call", name=str(item.get("name")), arguments=_call_arguments(item),
                         call_id=str(item.get("call_id")))  # fmt: skip
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output)
            yield _Entry("output", text, call_id=str(item.get("call_id")))


def to_messages(
    prompt: Prompt, instructions: str, attachments: Mapping[str, str] | None = None
) -> list[dict[str, str]]:
    """Responses items → chat messages a small model's template understands (no tool role needed).
    ``attachments`` maps a user message's text to what is shown after it (``attach.py``)."""
    system = [instructions] if instructions else []
    if prompt.tools:
        system.append(tool_guide(prompt.tools))
    messages: list[dict[str, str]] = []
    names: dict[str, str] = {}
    for e in _entries(prompt, attachments):
        if e.kind == "system":
            system.append(e.text)
        elif e.kind in ("user", "assistant"):
            messages.append({"role": e.kind, "content": e.shown or e.text})
        elif e.kind == "call":
            names[e.call_id] = e.name
            messages.append(
                {"role": "assistant", "content": json.dumps({"name": e.name, "arguments": e.arguments})}
            )
        else:
            messages.append(
                {"role": "user", "content": f"Result of {names.get(e.call_id, 'tool')}:\n{e.text}"}
            )
    return [{"role": "system", "content": "\n\n".join(system)}, *messages]


ANSWER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "answer",
    "description": "Reply to the user in plain text: the final answer, or when no other tool is needed.",
    # x-prose: the grammar keeps the text from starting like a call (`<`, `{`, a fence).
    "parameters": {
        "type": "object",
        "properties": {"text": {"type": "string", "x-prose": True}},
        "required": ["text"],
    },
}


def answer_tool(output_schema: dict[str, Any] | None) -> dict[str, Any]:
    """The ``answer`` pseudo-tool; with ``exec --output-schema`` its argument is a value of that
    schema, so the grammar makes the final answer schema-valid JSON."""
    if output_schema is None:
        return ANSWER_TOOL
    return {
        "type": "function", "name": "answer",
        "description": "Reply to the user with the final answer, as JSON that fits the required schema.",
        "parameters": {"type": "object", "properties": {"text": output_schema}, "required": ["text"]},
    }  # fmt: skip


def _required_only(schema: dict[str, Any]) -> dict[str, Any]:
    required = list(schema.get("required") or [])
    props = {
        k: {key: val for key, val in v.items() if not key.startswith("x-")}
        for k, v in (schema.get("properties") or {}).items()
        if k in required
    }
    return {"type": "object", "properties": props, "required": required}


def native_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tools in the chat template's own ``tools`` shape (required arguments only)."""
    return [
        {"type": "function", "function": {
            "name": t["name"], "description": t.get("description", ""),
            "parameters": _required_only(t.get("parameters") or {}),
        }}
        for t in tools
    ]  # fmt: skip


def to_native_messages(
    prompt: Prompt, instructions: str, attachments: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Responses items → the template's own roles: assistant ``tool_calls`` and ``tool`` results.
    Earlier plain answers are shown as ``answer`` calls, the one way the model is allowed to reply.

    Each tool result ends with a reminder of the request it serves (``REMINDER``): a 1.5B model
    otherwise forgets the question after a long output and goes on calling tools. It is the same
    text for every result of a turn, so the rendered prefix — and the KV cache — stays stable."""
    system = [instructions] if instructions else []
    messages: list[dict[str, Any]] = []
    request = ""
    for e in _entries(prompt, attachments):
        if e.kind == "system":
            system.append(e.text)
        elif e.kind == "user":
            if not e.text.startswith("<environment_context>"):
                request = e.text
            messages.append({"role": "user", "content": e.shown})
        elif e.kind == "assistant":
            messages.append(_call_message("answer", {"text": e.text}))
        elif e.kind == "call":
            messages.append(_call_message(e.name, e.arguments or {}))
        else:
            text = e.text + (REMINDER.format(request=request[:300]) if request else "")
            messages.append({"role": "tool", "content": text})
    return [{"role": "system", "content": "\n\n".join(system)}, *messages]


REMINDER = (
    "\n\n(The user asked: {request}\nIf this result answers it or completes it, reply with answer now, "
    "quoting the lines the user asked to see; otherwise make the next call.)"
)


def _call_message(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    call = {"type": "function", "function": {"name": name, "arguments": arguments}}
    return {"role": "assistant", "content": "", "tool_calls": [call]}


def _call_arguments(item: dict[str, Any]) -> dict[str, Any]:
    if item.get("type") == "custom_tool_call":
        return {"input": item.get("input", "")}
    try:
        args = json.loads(str(item.get("arguments") or "{}"))
    except ValueError:
        return {}
    return args if isinstance(args, dict) else {}


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


@dataclass
class RequestStats:
    """What one local request cost — shown in traces and used by the benchmark."""

    prompt_tokens: int = 0
    reused_tokens: int = 0  # already in the KV cache (this process or restored from disk)
    restored_tokens: int = 0  # loaded from the on-disk cache before this request
    output_tokens: int = 0
    load_s: float = 0.0
    first_token_s: float = 0.0  # from the request's start to the first sampled token
    total_s: float = 0.0
    stopped: str = ""  # why generation ended early ("repetition"); empty when it ended normally

    @property
    def tokens_per_s(self) -> float:
        gen = self.total_s - self.first_token_s
        return (self.output_tokens - 1) / gen if self.output_tokens > 1 and gen > 0 else 0.0


_DONE = object()


class EmbeddedModel:
    """llama.cpp in this process: renders the prompt, samples under the tool grammar, streams wire events."""

    def __init__(self, model_path: Path, *, n_ctx: int = 4096, threads: int | None = None,
                 max_tokens: int = 512, kv_store: KvStore | None = None) -> None:  # fmt: skip
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.max_tokens = max_tokens
        self.kv_store = kv_store
        self._llm: Any = None
        self._formatter: Any = None
        self.native = False  # the template has its own tool-call format (Qwen2.5): use it
        self._lock = threading.Lock()  # one generation at a time per context
        # The running request's cancel flag, polled by llama.cpp between graph nodes (abort
        # callback): Ctrl-C stops even a long prompt evaluation within milliseconds.
        self._cancel = threading.Event()
        self._abort_cb: Any = None
        self.last_stats = RequestStats()

    # ---- loading and rendering -----------------------------------------------------------------

    def _load(self) -> Any:
        if self._llm is None:
            try:
                from llama_cpp import Llama
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter
            except ImportError:
                raise UserError(f"the embedded model needs llama-cpp-python: {INSTALL_HINT}") from None
            if not self.model_path.is_file():
                raise UserError(f"model weights not found at {self.model_path}")
            llm = Llama(
                model_path=str(self.model_path), n_ctx=self.n_ctx, n_threads=self.threads,
                n_batch=512, verbose=False,
            )  # fmt: skip
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise UserError(f"{self.model_path.name} has no chat template; it is not an instruct model")
            mode = os.environ.get("CODEXBRO_EMBEDDED_MODE")
            self.native = mode != "plain" and "tool_call" in template and "tools" in template
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(llm.token_eos()),
                bos_token=llm._model.token_get_text(llm.token_bos()),
            )
            import llama_cpp

            self._abort_cb = llama_cpp.ggml_abort_callback(lambda _data: self._cancel.is_set())
            llama_cpp.llama_set_abort_callback(llm._ctx.ctx, self._abort_cb, None)
            self._llm = llm
        return self._llm

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[int]:
        """The prompt's tokens, exactly as they will be evaluated."""
        llm = self._load()
        result = self._formatter(messages=messages, tools=tools or None)
        tokens: list[int] = llm.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        return tokens

    def preview(
        self, prompt: Prompt, instructions: str, attachments: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """What the model is given for ``prompt``: the rendered template text, its token count and
        the grammar (``codexbro debug request`` with the embedded provider)."""
        tokens, grammar = self.prepare(prompt, instructions, attachments=attachments)
        text = self._llm.detokenize(tokens, special=True).decode("utf-8", errors="replace")
        return {
            "mode": "native tool template + answer tool" if self.native else "plain chat template + tool guide",
            "prompt_tokens": len(tokens), "n_ctx": self.n_ctx, "max_tokens": self.max_tokens,
            "prompt": text, "grammar": grammar,
        }  # fmt: skip

    # ---- generation (runs in a worker thread) --------------------------------------------------

    def prepare(self, prompt: Prompt, instructions: str, require_tool: bool = False,
                answer_only: bool = False, attachments: Mapping[str, str] | None = None,
                ) -> tuple[list[int], str | None]:  # fmt: skip
        """The prompt's tokens and the grammar for this model's template (loads the model).

        ``answer_only`` keeps the tools in the prompt — so its tokens, and the KV cache, stay the
        same — but lets the grammar accept only a text answer."""
        self._load()
        tools = [t for t in prompt.tools if t.get("type") == "function"]
        if self.native:
            # The template's own tool format; every reply is a tagged call, plain answers through
            # the `answer` pseudo-tool (the best of the modes measured; see docs/embedded.md).
            answer = answer_tool(prompt.output_schema)
            tools = [*tools, answer]
            allowed = [answer] if answer_only else tools
            grammar = tool_grammar(allowed, allow_text=False, required_only=True, tagged=True)
            return self.render(
                to_native_messages(prompt, instructions, attachments), native_tools(tools)
            ), grammar
        schema = prompt.output_schema
        if answer_only or (not tools and schema):
            grammar = tool_grammar([], allow_text=True, text_schema=schema)
            return self.render(to_messages(prompt, instructions, attachments)), grammar
        plain = (
            tool_grammar(tools, allow_text=not require_tool, required_only=True, text_schema=schema)
            if tools
            else None
        )
        return self.render(to_messages(prompt, instructions, attachments)), plain

    def _generate(self, prompt: Prompt, instructions: str, require_tool: bool, answer_only: bool,
                  attachments: Mapping[str, str] | None, emit: Any, cancel: threading.Event,
                  ) -> None:  # fmt: skip
        with self._lock:
            self._cancel = cancel
            try:
                self._generate_locked(
                    prompt, instructions, require_tool, answer_only, attachments, emit, cancel
                )
            except RuntimeError as exc:
                if not cancel.is_set():
                    raise
                # llama_decode was aborted: the KV cache still holds the tokens evaluated before
                # (n_tokens only advances after a whole batch), so the prefix stays usable.
                log.debug("embedded generation aborted: %s", exc)

    def _generate_locked(self, prompt: Prompt, instructions: str, require_tool: bool, answer_only: bool,
                         attachments: Mapping[str, str] | None, emit: Any, cancel: threading.Event,
                         ) -> None:  # fmt: skip
        import llama_cpp
        from llama_cpp.llama_grammar import LlamaGrammar

        stats = self.last_stats = (
            RequestStats()
        )  # filled in as it goes: an aborted request reports what it did
        start = time.perf_counter()
        fresh = self._llm is None
        llm = self._load()
        if fresh:
            stats.load_s = time.perf_counter() - start
        tokens, grammar_text = self.prepare(prompt, instructions, require_tool, answer_only, attachments)
        stats.prompt_tokens = len(tokens)
        if len(tokens) + 16 > self.n_ctx:
            raise ContextWindowExceeded(
                f"the prompt ({len(tokens)} tokens) does not fit the embedded model's context "
                f"window ({self.n_ctx} tokens)"
            )
        if self.kv_store is not None and llm.n_tokens == 0:
            stats.restored_tokens = self.kv_store.restore(llm)
        stats.reused_tokens = _common_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
        grammar = LlamaGrammar.from_string(grammar_text, verbose=False) if grammar_text else None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        budget = min(self.max_tokens, self.n_ctx - len(tokens))
        vocab = llm._model.vocab
        produced: list[int] = []
        written = ""  # the decoded output so far (the answer's repetition guard reads it)
        for token in llm.generate(tokens, top_k=1, temp=0.0, repeat_penalty=1.0, grammar=grammar):
            if stats.output_tokens == 0:
                stats.first_token_s = time.perf_counter() - start
            if llama_cpp.llama_vocab_is_eog(vocab, token) or cancel.is_set():
                break
            stats.output_tokens += 1
            produced.append(token)
            piece = decoder.decode(llm.detokenize([token], special=False))
            if piece:
                emit(piece)
                written += piece
            if stats.output_tokens >= budget:
                break
            if looping(produced):
                stats.stopped = "repetition"  # greedy decoding stuck in a loop: cut it short
                break
            if (
                piece
                and any(c in piece for c in ".!?\n")
                and repeated_at(answer_so_far(written) or "") is not None
            ):
                stats.stopped = "repetition"  # an answer saying the same sentences again: enough
                break
        tail = decoder.decode(b"", final=True)
        if tail:
            emit(tail)
        stats.total_s = time.perf_counter() - start

    def close(self) -> None:
        """Keep the KV prefix for the next process (``kvcache``), then free the model."""
        with self._lock:
            if self._llm is not None and self.kv_store is not None:
                try:
                    self.kv_store.save(self._llm)
                except OSError as exc:  # a cache: never fatal
                    log.warning("could not save the embedded model's KV cache: %s", exc)
            self._llm = None

    async def stream(self, prompt: Prompt, instructions: str = "", *, require_tool: bool = False,
                     answer_only: bool = False, attachments: Mapping[str, str] | None = None,
                     ) -> AsyncIterator[ev.ResponseEvent]:  # fmt: skip
        names = {t["name"] for t in prompt.tools if t.get("type") == "function"} | {"answer"}
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def emit(piece: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, piece)

        def work() -> None:
            try:
                self._generate(prompt, instructions, require_tool, answer_only, attachments, emit, cancel)
            except BaseException as exc:  # handed to the event loop, raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        response_id = f"resp_local_{secrets.token_hex(6)}"
        msg_id = f"msg_{secrets.token_hex(6)}"
        worker = loop.run_in_executor(None, work)
        yield ev.Created(response_id)
        text, shown = "", None
        try:
            while (got := await queue.get()) is not _DONE:
                if isinstance(got, BaseException):
                    raise got
                text += str(got)
                head = text.lstrip()
                # An answer streams as it is written: plain text (a call can only come first), or the
                # string inside an `answer` call.
                if head and not head.startswith(("{", "`", "<")):
                    visible: str | None = head
                else:
                    visible = answer_so_far(text)
                if visible is None or visible == shown:
                    continue
                if shown is None:
                    yield ev.OutputItemAdded(
                        {"type": "message", "role": "assistant", "id": msg_id, "content": []}
                    )
                    shown = ""
                yield ev.OutputTextDelta(visible[len(shown) :], item_id=msg_id)
                shown = visible
        finally:
            cancel.set()
            if not worker.done():
                await asyncio.shield(worker)
        parsed = parse_output(text, names)
        if isinstance(parsed, str) and shown is not None:
            parsed = shown.strip()  # an answer cut off by the token limit: what was streamed stands
        if isinstance(parsed, ParsedCall) and parsed.name == "answer":
            value = parsed.arguments.get("text", "")
            parsed = value.strip() if isinstance(value, str) else json.dumps(value)
        if isinstance(parsed, str):  # an answer that says the same thing again ends before it does
            cut = repeated_at(parsed)
            parsed = parsed[:cut].rstrip() if cut is not None else parsed
        if isinstance(parsed, ParsedCall):
            item: ev.ResponseItem = {
                "type": "function_call", "id": f"fc_{secrets.token_hex(6)}", "call_id": f"call_{secrets.token_hex(6)}",
                "name": parsed.name, "arguments": json.dumps(parsed.arguments),
            }  # fmt: skip
        else:
            item = {"type": "message", "role": "assistant", "id": msg_id,
                    "content": [{"type": "output_text", "text": parsed}]}  # fmt: skip
        yield ev.OutputItemDone(item)
        stats = self.last_stats
        yield ev.Completed(response_id, ev.TokenUsage(
            input_tokens=stats.prompt_tokens, cached_input_tokens=stats.reused_tokens,
            output_tokens=stats.output_tokens, total_tokens=stats.prompt_tokens + stats.output_tokens,
        ))  # fmt: skip


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


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n

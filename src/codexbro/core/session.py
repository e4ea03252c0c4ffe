"""``Session``: one conversation. Consumes ``Op``s, emits ``Event``s, runs one turn at a time.

A session owns the thread id, the history, the rollout recorder and the session-scoped
``ModelClient``. Front ends call ``submit(op)`` and read ``next_event()``; nothing else.

Interrupt cancels the active turn's task: running tools kill their process groups, unanswered
calls get an ``aborted`` output, a ``<turn_aborted>`` note is added to history so the model knows
on the next turn, and ``turn_aborted`` is emitted. The session stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codexbro import __version__, textsafe
from codexbro.api.events import RateLimitSnapshot, ResponseItem, TokenUsage
from codexbro.api.http import RequestRecord
from codexbro.api.routes import bucket_for, route
from codexbro.auth.resolve import ProviderAuth, resolve_auth
from codexbro.config.types import Config
from codexbro.core import protocol as p
from codexbro.core.compact import estimate_tokens
from codexbro.core.history import History, developer_message, output_item_for, user_message
from codexbro.core.instructions import base_instructions, environment_context
from codexbro.core.model_client import ModelClient
from codexbro.core.project_doc import as_message_text, discover
from codexbro.core.rollout import LoadedRollout, RolloutRecorder, RolloutWriteError, new_thread_id
from codexbro.core.turn import TurnContext, TurnState, run_turn
from codexbro.errors import ApiError, AuthError, CodexbroError, UserError
from codexbro.models.catalog import ModelInfo
from codexbro.sandbox.exec_policy import ApprovalStore, PrefixRule
from codexbro.tools.menu import build_router
from codexbro.tools.resources import ToolResources

log = logging.getLogger(__name__)

TURN_ABORTED_NOTE = (
    "<turn_aborted>\nThe user interrupted the previous turn. Commands that were still running were "
    "stopped and their results are incomplete. Do not resume that work unless asked.\n</turn_aborted>"
)


@dataclass(frozen=True)
class SessionOptions:
    originator: str = "codex_exec"
    source: str = "exec"
    ephemeral: bool = False
    resume: LoadedRollout | None = None
    fork: LoadedRollout | None = None  # a copy of that session under a new id (exec fork)
    ignore_rules: bool = False
    allow_missing_auth: bool = False  # inspection: build everything even without credentials
    notice: Callable[[str], None] | None = None  # front end's one-line progress notes (e.g. weights)


@dataclass
class ActiveTurn:
    turn_id: str
    task: asyncio.Task[None]


class Session:
    def __init__(
        self,
        *,
        config: Config,
        model: ModelInfo,
        client: ModelClient,
        thread_id: str,
        recorder: RolloutRecorder,
        history: History,
        resumed: bool,
        warnings: list[str],
        rules: tuple[PrefixRule, ...] = (),
        resolution: p.ModelResolved | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.client = client
        self.thread_id = thread_id
        self.recorder = recorder
        self.history = history
        self.resumed = resumed
        self.stream_max_retries = client.provider.stream_max_retries
        self.retry_wait_max_s = config.retry_wait_max_ms / 1000
        self.total_usage = TokenUsage()
        self.last_usage = TokenUsage()
        self.active: ActiveTurn | None = None
        self._pending_input: list[ResponseItem] = []
        self._events: asyncio.Queue[p.Event] = asyncio.Queue()
        self._sub_ids = itertools.count(1)
        self._current_sub = "0"
        self._context_recorded = resumed
        self._closed = False
        self._rollout_error: RolloutWriteError | None = None  # a failed write stopping the turn
        self.rules = rules
        self.approvals = ApprovalStore()
        self._pending_approvals: dict[str, asyncio.Future[str]] = {}
        self.tool_resources = ToolResources(
            thread_id
        )  # exec processes and js_repl outlive turns, not the session
        self.resolution = resolution
        self._compacted_since_response = False  # never compact twice without a model response between
        self._refresh_models_due = False
        self._models_refresh: asyncio.Task[None] | None = None
        recorder.snapshot = lambda: self.history.items
        client.http.observers.append(self._on_request)
        client.responses.on_wait = lambda note: self.emit(p.Warning(note))
        self._emit_startup(warnings)

    # ---- construction ------------------------------------------------------------------------

    @classmethod
    def create(cls, config: Config, options: SessionOptions | None = None) -> Session:
        """Resolve model, provider and credential; raises ``UserError`` with a fix on bad setup."""
        options = options or SessionOptions()
        warnings = list(config.warnings)
        from codexbro.models.manager import cached_catalog

        catalog, refresh_due = cached_catalog(config.codexbro_home, config.model_catalog_json)
        provider = config.model_provider
        try:
            auth = resolve_auth(provider, config.codexbro_home)
        except AuthError as exc:
            from codexbro.local.provider import offline_fallback

            try:
                config, banner = offline_fallback(config, exc)
                provider = config.model_provider
                auth = resolve_auth(provider, config.codexbro_home)
                warnings.append(banner)
            except AuthError:
                if not options.allow_missing_auth:
                    raise
                auth = ProviderAuth("none", None, f"missing — {exc.message}")
        resume = options.resume
        earlier = resume or options.fork  # the session whose history this one starts from
        slug = config.model
        if slug is None and earlier and earlier.last_turn_context:
            slug = earlier.last_turn_context.get("model")
        if slug is None and provider.id == "embedded":
            from codexbro.local.provider import default_slug

            slug = default_slug(config)
        if slug is None:
            slug = catalog.default_model(api_key_auth=auth.mode != "chatgpt").slug
        model_source = _model_source(config, earlier, slug)
        if provider.id == "embedded":
            from codexbro.local.provider import local_model_info
            from codexbro.models.catalog import Resolved

            resolved = Resolved(local_model_info(slug), "embedded models")
        else:
            resolved = catalog.resolve(slug)
        if resolved.warning:
            warnings.append(resolved.warning)
        model = resolved.info
        if model.base_instructions is None:
            from dataclasses import replace

            model = replace(model, base_instructions=base_instructions(model.instructions_family))
        if config.model_context_window:
            from dataclasses import replace

            model = replace(model, context_window=config.model_context_window)
        thread_id = resume.thread_id if resume else new_thread_id()
        client_kwargs: dict[str, Any] = {
            "config": config, "provider": provider, "auth": auth, "model": model, "thread_id": thread_id,
            "originator": options.originator,
        }  # fmt: skip
        if provider.id == "embedded":
            from codexbro.local.provider import EmbeddedClient, weights_path

            client: ModelClient = EmbeddedClient(
                **client_kwargs, model_path=weights_path(model.slug, config, options.notice)
            )
        else:
            client = ModelClient(**client_kwargs)
        recorder = RolloutRecorder(
            config.codexbro_home,
            thread_id,
            path=resume.path if resume else None,
            enabled=not options.ephemeral and config.history_persistence != "none",
        )
        if not resume:
            meta: dict[str, Any] = {
                "id": thread_id,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "cwd": str(config.cwd),
                "originator": client.originator,
                "cli_version": __version__,
                "source": options.source,
                "model_provider": provider.id,
                "base_instructions": {"text": client.base_instructions},
            }
            if options.fork is not None:
                meta["forked_from_id"] = options.fork.thread_id
            try:
                recorder.write("session_meta", meta)
                if options.fork is not None:  # the copy starts with the whole earlier conversation
                    for item in options.fork.history:
                        recorder.item(item)
                    if options.fork.last_turn_context is not None:
                        recorder.write("turn_context", options.fork.last_turn_context)
            except RolloutWriteError:
                # No session exists yet: leave nothing behind that `resume --last` would pick up.
                with contextlib.suppress(OSError):
                    recorder.path.unlink()
                raise UserError(
                    f"could not create the session file {recorder.path}: {recorder.failed}"
                ) from None
        if recorder.enabled:
            _index_in_codex_home(recorder, config, thread_id, provider.id, model.slug, client.originator,
                                 options.source)  # fmt: skip
        history = History(earlier.history if earlier else None)
        rules: tuple[PrefixRule, ...] = ()
        if not options.ignore_rules and (config.codexbro_home / "rules").is_dir():
            from codexbro.sandbox.exec_policy import RulesError, load_rules

            try:
                rules = tuple(load_rules(config.codexbro_home))
            except (RulesError, OSError) as exc:
                raise UserError(f"approval rules: {exc}") from None
        resolution = p.ModelResolved(
            requested=config.model,
            model=model.slug,
            model_source=model_source,
            catalog=resolved.source,
            warning=resolved.warning,
            match=resolved.match,
            catalog_entry=resolved.entry,
            provider_id=provider.id,
            provider_source=config.origins.get("model_provider", "default"),
            base_url=client.base_url,
            base_url_reason=client.base_url_reason,
            bucket=bucket_for(route("responses.create"), client.responses.url),
            auth=auth.source,
        )
        session = cls(
            resolution=resolution,
            rules=rules,
            config=config,
            model=model,
            client=client,
            thread_id=thread_id,
            recorder=recorder,
            history=history,
            resumed=earlier is not None,
            warnings=warnings,
        )
        # Upstream refreshes the live catalog only for ChatGPT logins; it lands in the cache for the
        # next session and never delays this one.
        session._refresh_models_due = refresh_due and auth.mode == "chatgpt"
        return session

    def _emit_startup(self, warnings: list[str]) -> None:
        cfg = self.config
        self.emit(
            p.SessionConfigured(
                session_id=self.thread_id,
                model=self.model.slug,
                model_provider_id=cfg.model_provider_id,
                cwd=str(cfg.cwd),
                approval_policy=cfg.approval_policy,
                sandbox_policy=cfg.sandbox_mode,
                reasoning_effort=cfg.model_reasoning_effort or self.model.default_reasoning_level,
                rollout_path=str(self.recorder.path) if self.recorder.enabled else None,
                resumed=self.resumed,
            )
        )
        if self.resolution is not None:
            self.emit(self.resolution)
        for warning in warnings:
            self.emit(p.Warning(warning))

    def _on_request(self, record: RequestRecord) -> None:
        self.emit(
            p.ModelRequest(
                record.route, record.bucket, record.method, record.url, record.attempt, record.status,
                record.error, record.duration_ms, record.extra.get("local"),
            )
        )  # fmt: skip

    # ---- the TurnHost protocol ---------------------------------------------------------------

    def emit(self, msg: p.EventMsg) -> None:
        self._events.put_nowait(p.Event(self._current_sub, msg))
        self._persist(self.recorder.event, msg.to_dict())

    def record(self, item: ResponseItem) -> None:
        # A lone surrogate (a path or output that is not UTF-8) never enters the history: every
        # request, estimate and file write after this point could not encode it.
        item = textsafe.scrub(item)
        self.history.append(item)
        self._persist(self.recorder.item, item)

    def _persist(self, write: Callable[[Any], None], value: Any) -> None:
        """Record through the rollout; when that fails the running turn stops (it is cancelled, and
        ends with the error) — nothing goes on that the session file would not hold."""
        try:
            write(value)
        except RolloutWriteError as err:
            log.error("%s", err.message)
            if self.active is not None and not self.active.task.done():
                self._rollout_error = err
                self.active.task.cancel()
            else:  # between turns (a turn's last events): said now, the next turn catches up
                self._events.put_nowait(p.Event(self._current_sub, p.Error(err.message, err.kind)))

    def add_usage(self, usage: TokenUsage, rate_limits: RateLimitSnapshot | None) -> None:
        self._compacted_since_response = False
        self.total_usage = self.total_usage + usage
        self.last_usage = usage
        window = self.model.context_window
        if window:
            window = window * self.model.effective_context_window_percent // 100
        limits: dict[str, Any] | None = None
        if rate_limits is not None:
            from dataclasses import asdict

            limits = asdict(rate_limits)
        self.emit(
            p.TokenCount(
                {
                    "total_token_usage": self.total_usage.to_dict(),
                    "last_token_usage": usage.to_dict(),
                    "model_context_window": window,
                },
                limits,
            )
        )

    def drain_pending_input(self) -> list[ResponseItem]:
        items, self._pending_input = self._pending_input, []
        return items

    # ---- front-end API -----------------------------------------------------------------------

    def submit(self, op: p.Op) -> str:
        sub_id = str(next(self._sub_ids))
        if isinstance(op, p.UserTurn):
            items = [_input_item(op.items)]
            if self.active is not None:
                self._pending_input += items  # steer the running turn
            else:
                self._current_sub = sub_id
                self._start_turn(items, op.final_output_json_schema)
        elif isinstance(op, p.Interrupt):
            if self.active is not None:
                self.active.task.cancel()
        elif isinstance(op, p.ExecApproval | p.PatchApproval):
            fut = self._pending_approvals.get(op.id)
            if fut is None or fut.done():
                self.emit(p.Warning(f"no pending approval request with id `{op.id}`"))
            else:
                fut.set_result(op.decision)
                if op.decision == "abort" and self.active is not None:
                    self.active.task.cancel()
        elif isinstance(op, p.Compact):
            if self.active is not None:
                self.emit(p.Warning("a turn is running: compact after it completes"))
            else:
                self._current_sub = sub_id
                turn_id = new_thread_id()
                task = asyncio.get_running_loop().create_task(self._run_compact_task(turn_id))
                self.active = ActiveTurn(turn_id, task)
        elif isinstance(op, p.Shutdown):
            asyncio.get_running_loop().create_task(self._shutdown())
        return sub_id

    async def request_approval(self, request: p.EventMsg) -> str:
        """Emit an approval request and wait for the front end's decision (``submit`` resolves it)."""
        key = str(getattr(request, "call_id", ""))
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending_approvals[key] = fut
        self.emit(request)
        try:
            return await fut
        finally:
            self._pending_approvals.pop(key, None)

    async def next_event(self) -> p.Event:
        return await self._events.get()

    def drain_events(self) -> list[p.Event]:
        """Events already queued, in order: at start-up (session_configured, model_resolved,
        warnings), or after ``close`` (the end of commands that were still running)."""
        out = []
        while not self._events.empty():
            out.append(self._events.get_nowait())
        return out

    # ---- turns -------------------------------------------------------------------------------

    def _start_turn(self, items: list[ResponseItem], output_schema: dict[str, Any] | None) -> None:
        from codexbro.sandbox.linux import spec_for

        turn_id = new_thread_id()
        cfg = self.config
        ctx = TurnContext(
            turn_id=turn_id,
            cwd=cfg.cwd,
            model=self.model,
            approval_policy=cfg.approval_policy,
            sandbox_mode=cfg.sandbox_mode,
            sandbox_workspace_write=cfg.sandbox_workspace_write,
            env_policy=cfg.shell_environment_policy,
            router=build_router(self.model, cfg, self.tool_resources),
            output_schema=output_schema,
            truncation_mode=self.model.truncation_mode,
            truncation_limit=cfg.tool_output_token_limit or self.model.truncation_limit,
            sandbox=spec_for(
                cfg.sandbox_mode, cfg.sandbox_workspace_write, cfg.cwd, cfg.codexbro_home, self.thread_id
            ),
            sandbox_backend=cfg.sandbox_backend,
            approvals=self.approvals,
            rules=self.rules,
            home=cfg.codexbro_home,
            request_approval=self.request_approval,
        )
        task = asyncio.get_running_loop().create_task(self._run_turn_task(ctx, items))
        self.active = ActiveTurn(turn_id, task)

    def preview_request(self, text: str) -> tuple[str, dict[str, Any], dict[str, str], list[dict[str, Any]]]:
        """The exact first request a turn with ``text`` would send: (url, body, headers, tool specs).
        Nothing is sent and nothing is recorded."""
        from codexbro.core.model_client import Prompt

        items = ([] if self._context_recorded else self._initial_context()) + [
            _input_item((p.UserInput("text", text=text),))
        ]
        history = History([*self.history.items, *items])
        router = build_router(self.model, self.config, self.tool_resources)
        prompt = Prompt(
            input=history.for_prompt(images="image" in self.model.input_modalities),
            tools=router.specs(),
            parallel_tool_calls=self.model.supports_parallel_tool_calls,
        )
        headers = {
            "accept": "text/event-stream",
            "content-type": "application/json",
            **self.client.build_headers(),
        }
        return self.client.responses.url, self.client.build_body(prompt), headers, prompt.tools

    # ---- context management ------------------------------------------------------------------

    def auto_compact_limit(self) -> int | None:
        if self.config.model_auto_compact_token_limit:
            return self.config.model_auto_compact_token_limit
        if self.model.auto_compact_token_limit:
            return self.model.auto_compact_token_limit
        window = self.model.context_window
        return int(window * 0.9) if window else None

    def estimate_next_request(self) -> int:
        return estimate_tokens(self.history.for_prompt(), self.client.base_instructions)

    async def before_sample(self, ctx: TurnContext) -> None:
        """Before each request: report the estimated size; compact (or trim) past the limit."""
        estimate = self.estimate_next_request()
        limit = self.auto_compact_limit()
        self.emit(p.ContextUsage(estimate, self._context_window(), limit))
        if limit is None or estimate < limit:
            return
        if self._compacted_since_response or not await self.compact(ctx.router.specs(), "auto"):
            await self.trim(limit, "auto")

    async def on_context_overflow(self, ctx: TurnContext) -> bool:
        """The server said the context is full: compact (or trim) so the request can be retried once."""
        limit = self.auto_compact_limit() or self.estimate_next_request() // 2
        if not self._compacted_since_response and await self.compact(ctx.router.specs(), "overflow"):
            return True
        return await self.trim(min(limit, self.estimate_next_request() * 7 // 10), "overflow")

    async def compact(self, tools: list[dict[str, Any]], reason: str) -> bool:
        from codexbro.core.compact import choose_strategy, compact_inline, compact_local, compact_remote
        from codexbro.core.model_client import Prompt

        before = self.estimate_next_request()
        strategy = choose_strategy(self.config.compaction_strategy, self.client.provider.is_openai)
        history = self.history.for_prompt()
        initial = self._initial_context()

        def stream(items: list[ResponseItem], with_tools: bool) -> Any:
            return self.client.stream(
                Prompt(input=items, tools=tools if with_tools else [],
                       parallel_tool_calls=self.model.supports_parallel_tool_calls and with_tools),
                subagent="compact",
            )  # fmt: skip

        try:
            if strategy == "remote":
                result = await compact_remote(
                    history, initial, lambda items: self.client.compact_remote(items, tools)
                )
            elif strategy == "inline":
                result = await compact_inline(history, initial, stream)
            else:
                result = await compact_local(history, initial, stream, self.config.compact_prompt)
        except ApiError as exc:
            self.emit(p.Warning(f"compaction ({strategy}) failed: {exc.message}"))
            return False
        after = estimate_tokens(result.history, self.client.base_instructions)
        if after >= before:
            self.emit(
                p.Warning(
                    f"compaction discarded: it would not shrink the context ({before} → {after} tokens)"
                )
            )
            return False
        self.history.replace(result.history)
        self._persist(lambda v: self.recorder.write("compacted", v),
                      {"message": result.summary, "replacement_history": result.history})  # fmt: skip
        self._compacted_since_response = True
        self.emit(p.ContextCompacted(result.strategy, reason, before, after))
        return True

    async def trim(self, target: int, reason: str) -> bool:
        """Fallback: empty the oldest tool outputs until the history fits ``target`` tokens."""
        from codexbro.core.compact import trim_tool_outputs

        before = self.estimate_next_request()
        overhead = estimate_tokens(
            [], self.client.base_instructions
        )  # the target counts the instructions too
        items, trimmed = trim_tool_outputs(self.history.items, max(0, target - overhead))
        if not trimmed:
            return False
        self.history.replace(items)
        self._persist(
            lambda v: self.recorder.write("compacted", v), {"message": "", "replacement_history": items}
        )
        self._compacted_since_response = True
        self.emit(p.ContextCompacted("trim", reason, before, self.estimate_next_request(), trimmed))
        return True

    async def _run_compact_task(self, turn_id: str) -> None:
        self.emit(p.TaskStarted(turn_id, self._context_window()))
        router = build_router(self.model, self.config, self.tool_resources)
        try:
            if not await self.compact(router.specs(), "manual"):
                self.emit(p.Warning("nothing was compacted"))
        except asyncio.CancelledError:
            self.active = None
            if self._rollout_error is not None:
                failure, self._rollout_error = self._rollout_error, None
                self.emit(p.Error(failure.message, failure.kind))
                self.emit(p.TaskComplete(turn_id, None))
                return
            self.emit(p.TurnAborted(turn_id, "interrupted"))
            return
        self.active = None
        self.emit(p.TaskComplete(turn_id, None))

    def _initial_context(self) -> list[ResponseItem]:
        cfg = self.config
        items = []
        if cfg.developer_instructions:
            items.append(developer_message(cfg.developer_instructions))
        docs = discover(
            cfg.cwd, home=cfg.codexbro_home, max_bytes=cfg.project_doc_max_bytes,
            fallback_names=cfg.project_doc_fallback_filenames, markers=cfg.project_root_markers,
        )  # fmt: skip
        if docs is not None:
            items.append(user_message(as_message_text(docs, cfg.cwd)))
        roots = [str(cfg.cwd), *cfg.sandbox_workspace_write.writable_roots]
        items.append(
            user_message(
                environment_context(
                    cwd=cfg.cwd,
                    approval_policy=cfg.approval_policy,
                    sandbox_mode=cfg.sandbox_mode,
                    network_access=cfg.sandbox_mode == "danger-full-access"
                    or (cfg.sandbox_mode == "workspace-write" and cfg.sandbox_workspace_write.network_access),
                    writable_roots=roots if cfg.sandbox_mode == "workspace-write" else None,
                )
            )
        )
        return items

    async def _refresh_models(self) -> None:
        from codexbro.models.manager import refresh

        try:
            await refresh(
                self.client.http, self.client.base_url, self.client.build_headers(), self.config.codexbro_home
            )
        except ApiError as exc:
            log.info("model list refresh failed: %s", exc.message)

    async def _run_turn_task(self, ctx: TurnContext, items: list[ResponseItem]) -> None:
        if self._refresh_models_due and self._models_refresh is None:
            self._models_refresh = asyncio.get_running_loop().create_task(self._refresh_models())
        state = TurnState()
        cfg = self.config
        if self.recorder.failed is not None:  # an earlier write failed: the file catches up first
            try:
                self.recorder.resync(self.history.items)
                self._rollout_error = None
            except RolloutWriteError as err:
                self._rollout_error = None
                self.active = None
                self.emit(p.TaskStarted(ctx.turn_id, self._context_window()))
                self.emit(p.Error(f"{err.message} (nothing was sent to the model)", err.kind))
                self.emit(p.TaskComplete(ctx.turn_id, None))
                return
        self.emit(p.TaskStarted(ctx.turn_id, self._context_window()))
        self._persist(
            lambda v: self.recorder.write("turn_context", v),
            {
                "turn_id": ctx.turn_id,
                "cwd": str(cfg.cwd),
                "approval_policy": cfg.approval_policy,
                "sandbox_policy": {"mode": cfg.sandbox_mode},
                "model": self.model.slug,
                "effort": cfg.model_reasoning_effort or self.model.default_reasoning_level,
                "summary": cfg.model_reasoning_summary or self.model.default_reasoning_summary,
            },
        )
        mark, had_context = len(self.history.items), self._context_recorded
        if not self._context_recorded:
            for item in self._initial_context():
                self.record(item)
            self._context_recorded = True
        for item in items:
            self.record(item)
            self.emit(p.UserMessage(_first_text(item)))
        try:
            if self._rollout_error is not None:
                # Recording the turn's start failed: nothing was sent, so nothing of it stays in
                # the history either (the next turn must not carry this prompt along unasked).
                self.history.replace(self.history.items[:mark])
                self._context_recorded = had_context
                raise asyncio.CancelledError
            last = await run_turn(self, ctx, state)
        except asyncio.CancelledError:
            for call in self.history.pending_calls():
                self.record(output_item_for(call, "aborted"))
            self.active = None
            if self._rollout_error is not None:
                failure, self._rollout_error = self._rollout_error, None
                self.emit(p.Error(failure.message, failure.kind))
                self.emit(p.TaskComplete(ctx.turn_id, None))
                return
            self.record(user_message(TURN_ABORTED_NOTE))
            self.emit(p.TurnAborted(ctx.turn_id, "interrupted"))
            return
        except ApiError as err:
            self.emit(p.Error(err.message, err.kind))
            last = None
        except CodexbroError as err:
            self.emit(p.Error(err.message, err.kind))
            last = None
        except Exception as err:  # a bug: report it, keep the session alive
            log.exception("turn failed")
            self.emit(p.Error(f"internal error: {type(err).__name__}: {err}", "other"))
            last = None
        self.active = None
        self.emit(p.TaskComplete(ctx.turn_id, last))

    def _context_window(self) -> int | None:
        window = self.model.context_window
        return window * self.model.effective_context_window_percent // 100 if window else None

    async def _shutdown(self) -> None:
        if self.active is not None:
            self.active.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.active.task
        await self.close()
        self.emit(p.ShutdownComplete())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.active is not None and not self.active.task.done():
            # Never leave a turn (and its child processes) running behind a closed session.
            self.active.task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self.active.task), 10)
        if self._models_refresh is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._models_refresh, 5)
        await self.tool_resources.aclose()
        await self.client.aclose()
        self.recorder.close()


def _model_source(config: Config, resume: LoadedRollout | None, slug: str) -> str:
    if config.model is not None:
        origin = config.origins.get("model", "config")
        return {"flag": "the -m/--model flag", "-c": "a -c override"}.get(origin, origin)
    if resume is not None and resume.last_turn_context and resume.last_turn_context.get("model") == slug:
        return "the resumed session's last turn"
    return "the catalog default (lowest priority listed model)"


def _input_item(inputs: tuple[p.UserInput, ...]) -> ResponseItem:
    content: list[dict[str, Any]] = []
    for piece in inputs:
        if piece.type == "text":
            content.append({"type": "input_text", "text": piece.text})
        elif piece.type == "image":
            content.append({"type": "input_image", "image_url": piece.image_url})
        elif piece.type == "local_image":
            content.append({"type": "input_image", "image_url": _data_url(Path(piece.path))})
    return {"type": "message", "role": "user", "content": content}


def _data_url(path: Path) -> str:
    import base64
    import mimetypes

    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _first_text(item: ResponseItem) -> str:
    for part in item.get("content") or []:
        if isinstance(part, dict) and part.get("type") == "input_text":
            return str(part.get("text") or "")
    return ""


def _index_in_codex_home(
    recorder: RolloutRecorder, config: Config, thread_id: str, provider: str, model: str, originator: str,
    source: str,
) -> None:  # fmt: skip
    """In a home shared with upstream Codex, list this session in Codex's index after each turn."""
    from codexbro.core import codex_index

    if not codex_index.applies(config.codexbro_home):
        return
    started = time.time()

    def index(rec: RolloutRecorder) -> None:
        codex_index.record(
            config.codexbro_home,
            codex_index.ThreadRow(
                thread_id=thread_id, rollout_path=str(rec.path), cwd=str(config.cwd), source=source,
                model_provider=provider, model=model, sandbox_mode=config.sandbox_mode,
                approval_policy=config.approval_policy, cli_version=__version__, originator=originator,
                first_user_message=rec.first_user_message, paginated=rec.paginated, created_at=started,
            ),
        )  # fmt: skip

    recorder.on_turn_end.append(index)

"""``Session``: one conversation. Consumes ``Op``s, emits ``Event``s, runs one turn at a time.

A session is given its collaborators — the model client, the request log, the rollout recorder,
the approval rules, the tool resources — by the composition root (``codexbro.composition``);
it builds none of them. Front ends call ``submit(op)`` and read ``next_event()``; nothing else.

Interrupt cancels the active turn's task: running tools kill their process groups, unanswered
calls get an ``aborted`` output, a ``<turn_aborted>`` note is added to history so the model knows
on the next turn, and ``turn_aborted`` is emitted. The session stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from msgspec import Struct

from codexbro import protocol as p
from codexbro import textsafe
from codexbro.api.events import RateLimitSnapshot, TokenUsage
from codexbro.api.http import RequestRecord
from codexbro.api.model_client import ModelClient, RequestLog, RequestPreview
from codexbro.config.types import Config
from codexbro.core import thread_ops, turn_task
from codexbro.core.context_policy import ContextPolicy
from codexbro.core.history import History
from codexbro.core.initial_context import initial_context
from codexbro.core.rollout import RolloutRecorder, RolloutWriteError, new_thread_id
from codexbro.core.turn import TurnContext, make_prompt
from codexbro.models.catalog import ModelInfo
from codexbro.protocol.items import ResponseItem, developer_message, user_input_item
from codexbro.records import as_dict
from codexbro.sandbox.exec_policy import ApprovalStore, PrefixRule
from codexbro.tools.menu import build_router
from codexbro.tools.resources import ToolResources

if TYPE_CHECKING:
    from codexbro.config.requirements import Requirements
    from codexbro.core.subagents import SubAgents

log = logging.getLogger(__name__)


class ActiveTurn(Struct):
    """The running turn (or manual compaction): its id and the task, which Interrupt cancels."""

    turn_id: str
    task: asyncio.Task[None]


class Session:
    """One conversation: thread id, history, config snapshot and the session-scoped model client;
    lives across turns, takes ``Op``s with ``submit`` and gives ``Event``s from ``next_event``."""

    def __init__(
        self, *, config: Config, model: ModelInfo, client: ModelClient, thread_id: str, recorder: RolloutRecorder,
        history: History, resumed: bool, warnings: list[str], request_log: RequestLog | None = None,
        rules: tuple[PrefixRule, ...] = (), resolution: p.ModelResolved | None = None,
        tool_resources: ToolResources | None = None, first_turn_job: Callable[[], Awaitable[None]] | None = None,
        can_ask_user: bool = False, model_lookup: Callable[[str], ModelInfo] | None = None,
        requirements: Requirements | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self.model = model
        self.client = client
        self.thread_id = thread_id
        self.recorder = recorder
        self.history = history
        self.resumed = resumed
        self.rules = rules
        self.resolution = resolution
        self.tool_resources = tool_resources or ToolResources(thread_id)
        self.subagents: SubAgents | None = None  # set by the composition root when it can spawn
        self.can_ask_user = can_ask_user  # an interactive front end answers request_user_input
        self.model_lookup = model_lookup  # slug → metadata, for OverrideTurnContext (None: fixed model)
        self.requirements = requirements  # a workspace's managed requirements: settings changed later too
        self.stream_max_retries = config.model_provider.stream_max_retries
        self.retry_wait_max_s = config.retry_wait_max_ms / 1000
        self.total_usage = TokenUsage()
        self.last_usage = TokenUsage()
        self.active: ActiveTurn | None = None
        self.approvals = ApprovalStore()
        self.context = ContextPolicy(self)
        self.context_recorded = resumed  # the initial context is in the history already
        self.rollout_error: RolloutWriteError | None = None  # a failed write stopping the turn
        self._pending_input: list[ResponseItem] = []  # steered into the running turn
        self._steer = asyncio.Event()  # set when input is steered into the running turn
        self._notes: list[ResponseItem] = []  # sub-agent notifications for the running turn's next request
        self._queued: list[tuple[str, ResponseItem, dict[str, Any] | None]] = []  # turns waiting their go
        self._pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}  # call id → (kind, answer)
        self._events: asyncio.Queue[p.Event] = asyncio.Queue()
        self._sub_ids = itertools.count(1)
        self._elicit_ids = itertools.count(1)
        self._current_sub = "0"
        self._closed = False  # no new turn starts (shutting down)
        self._released = False  # close() ran
        self._first_turn_job = first_turn_job
        self._background: asyncio.Task[None] | None = None
        recorder.snapshot = lambda: self.history.items
        if request_log is not None:
            request_log.observers.append(self._on_request)
        client.on_wait = lambda note: self.emit(p.WarningEvent(note))
        self._emit_startup(warnings)
        mcp = self.tool_resources.mcp
        if mcp is not None:  # servers start now, beside the session; a turn waits for them
            mcp.emit = self.emit
            mcp.elicit = self.elicit
            mcp.start()

    def _emit_startup(self, warnings: list[str]) -> None:
        self.emit_configured()
        if self.resolution is not None:
            self.emit(self.resolution)
        for warning in warnings:
            self.emit(p.WarningEvent(warning))

    def emit_configured(self) -> None:
        cfg = self.config
        self.emit(
            p.SessionConfigured(
                session_id=self.thread_id, model=self.model.slug, model_provider_id=cfg.model_provider_id,
                cwd=str(cfg.cwd), approval_policy=cfg.approval_policy, sandbox_policy=cfg.sandbox_mode,
                reasoning_effort=cfg.model_reasoning_effort or self.model.default_reasoning_level,
                rollout_path=str(self.recorder.path) if self.recorder.enabled else None, resumed=self.resumed,
            )
        )  # fmt: skip

    def _on_request(self, record: RequestRecord) -> None:
        self.emit(
            p.ModelRequest(
                record.route, record.bucket, record.method, record.url, record.attempt, record.status,
                record.error, record.duration_ms, record.extra.get("local"),
            )
        )  # fmt: skip

    # ---- what the turn loop and the context policy call ---------------------------------------

    def emit(self, msg: p.EventMsg) -> None:
        self._events.put_nowait(p.Event(self._current_sub, msg))
        self.persist(self.recorder.event, msg.to_dict())

    def record(self, item: ResponseItem) -> None:
        # A lone surrogate (a path or output that is not UTF-8) never enters the history: every
        # request, estimate and file write after this point could not encode it.
        item = textsafe.scrub(item)
        self.history.append(item)
        self.persist(self.recorder.item, item)

    def record_compacted(self, value: dict[str, Any]) -> None:
        self.persist(lambda v: self.recorder.write("compacted", v), value)

    def persist(self, write: Callable[[Any], None], value: Any) -> None:
        """Record through the rollout; when that fails the running turn stops (it is cancelled, and
        ends with the error) — nothing goes on that the session file would not hold."""
        try:
            write(value)
        except RolloutWriteError as err:
            log.error("%s", err.message)
            if self.active is not None and not self.active.task.done():
                self.rollout_error = err
                self.active.task.cancel()
            else:  # between turns (a turn's last events): said now, the next turn catches up
                self._events.put_nowait(p.Event(self._current_sub, p.ErrorEvent(err.message, err.kind)))

    def initial_context(self) -> list[ResponseItem]:
        items = initial_context(self.config)
        if self.tool_resources.agents_factory is not None:  # a session that can spawn agents
            from codexbro.tools.menu import code_mode, multi_agent_v2

            if multi_agent_v2(self.model, self.config, code_mode(self.model, self.config)):
                from codexbro.tools.handlers.agents_v2 import developer_texts

                at = 1 if self.config.developer_instructions else 0
                child = self.tool_resources.agent_path != "/root"
                items[at:at] = [developer_message(text) for text in developer_texts(child=child)]
        mcp = self.tool_resources.mcp
        if mcp is not None and self.model.raw.get("supports_search_tool") is True:
            from codexbro.mcp.search import deferred_developer_text

            text = deferred_developer_text(mcp)  # the deferred namespaces tool_search can find
            if text is not None:
                items.insert(1 if self.config.developer_instructions else 0, developer_message(text))
        return items

    def add_usage(self, usage: TokenUsage, rate_limits: RateLimitSnapshot | None) -> None:
        self.context.compacted_since_response = False
        self.total_usage = self.total_usage + usage
        self.last_usage = usage
        info = {"total_token_usage": self.total_usage.to_dict(), "last_token_usage": usage.to_dict(),
                "model_context_window": self.context.context_window()}  # fmt: skip
        self.emit(p.TokenCount(info, as_dict(rate_limits) if rate_limits is not None else None))

    def inject(self, item: ResponseItem) -> None:
        """Put ``item`` into the conversation: into the running turn's next request, or the
        history when no turn runs (a sub-agent's notification)."""
        if self.active is not None:
            self._notes.append(item)
        else:
            self.record(item)

    def steered(self) -> bool:
        """Whether input typed during the running turn waits for its next request."""
        return bool(self._pending_input)

    async def wait_steered(self) -> None:
        """Until input for the running turn waits for its next request (at once when some does)."""
        while not self._pending_input:
            self._steer.clear()
            await self._steer.wait()

    def _steer_in(self, item: ResponseItem) -> None:
        self._pending_input.append(item)
        self._steer.set()

    def pending(self, item: ResponseItem) -> bool:
        """Whether ``inject``ed ``item`` still waits for the running turn's next request."""
        return any(note is item for note in self._notes)

    def submit_item(self, item: ResponseItem, *, queue: bool = False) -> str:
        """Start a turn from ``item`` (a sub-agent's task, an ``agent_message``); with a turn
        running, ``queue`` starts it after that one, else the item joins the running turn."""
        if self._closed:
            raise RuntimeError("the agent's session is closed")
        sub_id = str(next(self._sub_ids))
        if self.active is None:
            self._current_sub = sub_id
            self._start(item, None)
        elif queue:
            self._queued.append((sub_id, item, None))
        else:
            self._steer_in(item)
        return sub_id

    def drain_pending_input(self) -> list[ResponseItem]:
        items, self._pending_input = self._pending_input, []
        notes, self._notes = self._notes, []
        return items + notes

    async def before_sample(self, ctx: TurnContext) -> None:
        await self.context.before_sample(ctx)

    async def on_context_overflow(self, ctx: TurnContext) -> bool:
        return await self.context.on_context_overflow(ctx)

    async def ask(self, request: p.EventMsg) -> Any:
        """Emit an approval request, a question or an elicitation and wait for the front end's
        answer (an Op of the matching kind: a question is not answered by an approval, nor the reverse)."""
        key = str(getattr(request, "call_id", "") or getattr(request, "id", ""))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        kind = _ANSWER_KIND.get(type(request), "approval request")
        self._pending[key] = (kind, fut)
        self.emit(request)
        try:
            return await fut
        finally:
            self._pending.pop(key, None)

    async def request_approval(self, request: p.EventMsg) -> str:
        return str(await self.ask(request))

    async def elicit(
        self, server: str, message: str, schema: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any] | None]:
        """An MCP server's question for the user (``elicitation/create``): asked where a front end
        can answer, declined where none can (``exec``)."""
        if not self.can_ask_user:
            self.emit(
                p.WarningEvent(
                    f"MCP server `{server}` asked for input; declined (nobody to ask here): {message}"
                )
            )
            return "decline", None
        answer = await self.ask(
            p.ElicitationRequest(server, f"elicit-{next(self._elicit_ids)}", message, schema)
        )
        decision, content = answer
        return str(decision), content

    # ---- front-end API -----------------------------------------------------------------------

    def submit(self, op: p.Op) -> str:
        sub_id = str(next(self._sub_ids))
        if isinstance(op, p.UserTurn):
            item = user_input_item(op.items)
            if self.active is None:
                self._current_sub = sub_id
                self._start(item, op.final_output_json_schema)
            elif op.when == "queue":
                self._queued.append((sub_id, item, op.final_output_json_schema))
            else:
                self._steer_in(item)  # steer the running turn
        elif isinstance(op, p.Interrupt):
            if self.active is not None:
                # What waited behind the turn goes too: the user stopped; the front end still has it.
                self._queued.clear()
                self._pending_input.clear()
                self.active.task.cancel()
        elif isinstance(op, p.ExecApproval | p.PatchApproval | p.UserInputAnswer | p.ResolveElicitation):
            self._answer(op)
        elif isinstance(op, p.Compact | p.ThreadRollback | p.ForkThread) and self.active is not None:
            self.emit(p.WarningEvent(f"a turn is running: {op.kind} after it completes"))
        elif isinstance(op, p.Compact):
            self._current_sub = sub_id
            turn_id = new_thread_id()
            self.active = ActiveTurn(turn_id, self._spawn_turn(turn_task.run_compact(self, turn_id)))
        elif isinstance(op, p.ThreadRollback):
            self._current_sub = sub_id
            thread_ops.rollback(self, op.num_turns)
        elif isinstance(op, p.ForkThread):
            self._current_sub = sub_id
            thread_ops.fork(self, op.drop_turns)
        elif isinstance(op, p.OverrideTurnContext):
            self._current_sub = sub_id
            thread_ops.override(self, op)
        elif isinstance(op, p.ListMcpTools):
            mcp = self.tool_resources.mcp
            self.emit(p.McpListToolsResponse(mcp.status() if mcp is not None else []))
        elif isinstance(op, p.Shutdown):
            self._spawn(self._shutdown())
        return sub_id

    def _answer(
        self, op: p.ExecApproval | p.PatchApproval | p.UserInputAnswer | p.ResolveElicitation
    ) -> None:
        what = _ANSWER_KIND.get(type(op), "approval request")
        kind, fut = self._pending.get(op.id, ("", None))
        if fut is None or fut.done() or kind != what:
            self.emit(p.WarningEvent(f"no pending {what} with id `{op.id}`"))
            return
        if isinstance(op, p.UserInputAnswer):
            fut.set_result(op.answers)
        elif isinstance(op, p.ResolveElicitation):
            fut.set_result((op.decision, op.content))
        else:
            fut.set_result(op.decision)
            if op.decision == "abort" and self.active is not None:
                self.active.task.cancel()

    def _start(self, item: ResponseItem, output_schema: dict[str, Any] | None) -> None:
        if self._first_turn_job is not None:
            job, self._first_turn_job = self._first_turn_job, None
            self._background = asyncio.get_running_loop().create_task(_run_job(job))
        self._start_items([item], output_schema)

    def _spawn_turn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self._spawn(work)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[None]) -> None:
        """A turn task cancelled before its first step never ran its own ending: end it here, so
        the session does not wait forever on a task that is gone."""
        if self.active is not None and self.active.task is task:
            self.turn_ended(p.TurnAborted(self.active.turn_id, "interrupted"))

    def turn_ended(self, final: p.EventMsg | None) -> None:
        """The active turn is over: its last event; then input steered too late for it (it arrived
        after the turn's last request) starts a turn of its own, then the next queued turn."""
        self.active = None
        if isinstance(final, p.TurnAborted) and self.subagents is not None:
            self.subagents.interrupt_all()  # the user stopped the turn: its agents stop too
        if isinstance(final, p.TurnAborted):
            self.tool_resources.stop_scripts()  # and its code-mode scripts, running or yielded
        if final is not None:
            self.emit(final)
        # Notifications that came after the turn's last request join the history; unlike typed
        # input they never start a turn of their own (0.169's exec ends with the turn).
        notes, self._notes = self._notes, []
        for note in notes:
            self.record(note)
        if self._closed:
            return
        late, self._pending_input = self._pending_input, []
        if late:
            self._start_items(late, None)
        elif self._queued:
            self._current_sub, item, schema = self._queued.pop(0)
            self._start(item, schema)

    def _start_items(self, items: list[ResponseItem], output_schema: dict[str, Any] | None) -> None:
        ctx = turn_task.turn_context(self, output_schema)
        self.active = ActiveTurn(ctx.turn_id, self._spawn_turn(turn_task.run(self, ctx, items)))

    def preview_request(self, text: str) -> RequestPreview:
        """The exact first request a turn with ``text`` would send. Nothing is sent or recorded."""
        items = ([] if self.context_recorded else self.initial_context()) + [
            user_input_item((p.UserInput("text", text=text),))
        ]
        history = History([*self.history.items, *items])
        router = build_router(self.model, self.config, self.tool_resources)
        return self.client.preview(make_prompt(router, self.model, history))

    async def next_event(self) -> p.Event:
        return await self._events.get()

    def drain_events(self) -> list[p.Event]:
        """Events already queued, in order: at start-up (session_configured, model_resolved,
        warnings), or after ``close`` (the end of commands that were still running)."""
        out = []
        while not self._events.empty():
            out.append(self._events.get_nowait())
        return out

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(work)

    async def _shutdown(self) -> None:
        self._closed = True  # nothing queued starts while the running turn winds down
        self._queued.clear()
        if self.active is not None:
            self.active.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.active.task
        await self.close()
        self.emit(p.ShutdownComplete())

    async def close(self) -> None:
        if self._released:
            return
        self._closed = self._released = True
        self._queued.clear()
        if self.active is not None and not self.active.task.done():
            # Never leave a turn (and its child processes) running behind a closed session.
            self.active.task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self.active.task), 10)
        if self._background is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._background, 5)
        if self.subagents is not None:
            await self.subagents.close_all()
        await self.tool_resources.aclose()
        await self.client.aclose()
        self.recorder.close()


# What kind of answer each request waits for, and which answer Op gives it.
_ANSWER_KIND: dict[type, str] = {
    p.RequestUserInput: "question", p.UserInputAnswer: "question",
    p.ElicitationRequest: "elicitation", p.ResolveElicitation: "elicitation",
}  # fmt: skip


async def _run_job(job: Callable[[], Awaitable[None]]) -> None:
    await job()

"""One turn: request → tool calls → outputs → request … until the model answers without a call.

The turn talks to its session through the small ``TurnHost`` protocol (history, events, the model
stream) and to tools through the ``ToolRouter``; it never touches sockets, terminals or processes.

Tool calls start as soon as their item is done, while the stream is still running (parallel-capable
tools overlap; the router serializes the rest). Outputs are appended in call order once the
response completes. If the stream breaks after some items arrived, those items stay in history, the
started tools are awaited and their outputs recorded, and the request is re-sent — nothing runs
twice and nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from msgspec import Struct, field

from codexbro import protocol as p
from codexbro.api import events as ev
from codexbro.api.model_client import Prompt
from codexbro.api.responses import backoff_s, retry_wait
from codexbro.config.types import SandboxWorkspaceWrite, ShellEnvironmentPolicy
from codexbro.config.values import ApprovalPolicy, SandboxMode
from codexbro.core.history import History, message_text, output_item_for, reasoning_text
from codexbro.errors import ContextWindowExceeded, RetryableApiError
from codexbro.models.catalog import ModelInfo
from codexbro.protocol import (
    AgentMessage,
    AgentMessageDelta,
    AgentReasoning,
    AgentReasoningDelta,
    EventMsg,
    StreamError,
    WebSearchBegin,
    WebSearchEnd,
)
from codexbro.tools.base import ToolCall, ToolContext
from codexbro.tools.router import ToolRouter

if TYPE_CHECKING:
    from codexbro.sandbox.exec_policy import ApprovalStore, PrefixRule
    from codexbro.sandbox.policy import SandboxSpec


class TurnContext(Struct, frozen=True):
    """Immutable settings of one turn."""

    turn_id: str
    cwd: Path
    model: ModelInfo
    approval_policy: ApprovalPolicy
    sandbox_mode: SandboxMode
    sandbox_workspace_write: SandboxWorkspaceWrite
    env_policy: ShellEnvironmentPolicy
    router: ToolRouter
    output_schema: dict[str, Any] | None = None
    truncation_mode: str = "bytes"
    truncation_limit: int = 10_000
    sandbox: SandboxSpec | None = None
    sandbox_backend: str = "auto"
    approvals: ApprovalStore | None = None
    rules: tuple[PrefixRule, ...] = ()
    home: Path | None = None
    request_approval: Callable[[EventMsg], Awaitable[str]] | None = None
    ask_user: Callable[[EventMsg], Awaitable[Any]] | None = None
    # Called when the model starts a tool call: what a command waits for (the shell snapshot, the
    # sandbox container) starts while the call's arguments stream in. Idempotent.
    warm_up: Callable[[str], None] | None = None


class TurnState(Struct):
    """Mutable state of one turn."""

    last_agent_message: str | None = None
    usage: ev.TokenUsage = field(default_factory=ev.TokenUsage)
    requests: int = 0
    # The turn's model transport (``start_turn``: e.g. a WebSocket with its incremental baseline);
    # None: the session's client streams each request itself.
    model: ModelStream | None = None


class ModelStream(Protocol):
    """The one model-client method the turn loop calls."""

    def stream(self, prompt: Prompt) -> AsyncIterator[ev.ResponseEvent]: ...


class TurnHost(Protocol):
    """What the turn loop needs from its session (the ``Session`` implements it)."""

    history: History
    stream_max_retries: int
    retry_wait_max_s: float

    @property
    def client(self) -> ModelStream: ...

    def emit(self, msg: EventMsg) -> None: ...

    def record(self, item: ev.ResponseItem) -> None: ...

    def add_usage(self, usage: ev.TokenUsage, rate_limits: ev.RateLimitSnapshot | None) -> None: ...

    def drain_pending_input(self) -> list[ev.ResponseItem]: ...

    def steered(self) -> bool: ...

    async def wait_steered(self) -> None: ...

    async def before_sample(self, ctx: TurnContext) -> None: ...

    async def on_context_overflow(self, ctx: TurnContext) -> bool: ...


async def run_turn(host: TurnHost, ctx: TurnContext, state: TurnState) -> str | None:
    """Run the sampling loop; returns the last agent message. Errors propagate to the session."""
    start_turn = getattr(host.client, "start_turn", None)  # a client with turn-scoped transport state
    if start_turn is not None and state.model is None:
        state.model = start_turn(ctx.turn_id)
    first = True
    while True:
        if not first:
            for item in host.drain_pending_input():
                host.record(item)
        first = False
        await host.before_sample(ctx)
        needs_follow_up = await sample_with_retries(host, ctx, state)
        if not needs_follow_up:
            return state.last_agent_message


async def sample_with_retries(host: TurnHost, ctx: TurnContext, state: TurnState) -> bool:
    retries = 0
    overflow_retried = False
    while True:
        try:
            return await sample_once(host, ctx, state)
        except ContextWindowExceeded:
            # One retry after compaction (or trimming); a second overflow ends the turn.
            if overflow_retried or not await host.on_context_overflow(ctx):
                raise
            overflow_retried = True
        except RetryableApiError as err:
            retries += 1
            if retries > host.stream_max_retries:
                attempts = retries
                err.message = f"{err.message} (gave up after {attempts} attempt(s))"
                err.args = (err.message,)
                raise
            delay, note = retry_wait(err.retry_after, backoff_s(retries), host.retry_wait_max_s)
            details = err.message
            if err.kind == "response_stream_disconnected":  # upstream's wording for a broken stream
                details = f"stream disconnected before completion: {details}"
            host.emit(
                StreamError(
                    f"Reconnecting... {retries}/{host.stream_max_retries}",
                    err.kind,
                    additional_details=details,
                )
            )
            if note is not None:
                host.emit(p.WarningEvent(note))
            await asyncio.sleep(delay)


def make_prompt(router: ToolRouter, model: ModelInfo, history: History,
                output_schema: dict[str, Any] | None = None) -> Prompt:  # fmt: skip
    """A request's variable part. In code mode the menu travels in the input and calls come one at
    a time (0.169)."""
    code_mode = router.code_mode
    return Prompt(
        input=[*router.preamble(), *history.for_prompt(images="image" in model.input_modalities)],
        tools=router.specs(),
        parallel_tool_calls=model.supports_parallel_tool_calls and not code_mode,
        output_schema=output_schema,
        code_mode=code_mode,
    )


async def sample_once(host: TurnHost, ctx: TurnContext, state: TurnState) -> bool:
    """One model request. Returns True when tool calls need a follow-up request."""
    prompt = make_prompt(ctx.router, ctx.model, host.history, ctx.output_schema)
    injected: list[ev.ResponseItem] = []  # items a tool adds beside its output (code mode's notify)
    tool_ctx = ToolContext(
        cwd=ctx.cwd,
        turn_id=ctx.turn_id,
        sandbox_mode=ctx.sandbox_mode,
        approval_policy=ctx.approval_policy,
        sandbox_workspace_write=ctx.sandbox_workspace_write,
        env_policy=ctx.env_policy,
        truncation_mode=ctx.truncation_mode,
        truncation_limit=ctx.truncation_limit,
        emit=host.emit,
        sandbox=ctx.sandbox,
        sandbox_backend=ctx.sandbox_backend,
        request_approval=ctx.request_approval,
        approvals=ctx.approvals,
        rules=ctx.rules,
        home=ctx.home,
        ask_user=ctx.ask_user,
        inject=injected.append,
        wait_steered=host.wait_steered,
    )
    calls: list[tuple[ev.ResponseItem, asyncio.Task[Any]]] = []
    needs_follow_up = False
    rate_limits: ev.RateLimitSnapshot | None = None
    state.requests += 1
    try:
        async for event in (state.model or host.client).stream(prompt):
            if isinstance(event, ev.OutputItemDone):
                item = event.item
                host.record(item)
                call = ToolCall.from_item(item)
                if call is not None:
                    if ctx.warm_up is not None:
                        ctx.warm_up(call.name)
                    needs_follow_up = True
                    calls.append((item, asyncio.create_task(ctx.router.dispatch(call, tool_ctx))))
                elif item.get("type") == "message" and item.get("role") == "assistant":
                    text = message_text(item)
                    state.last_agent_message = text
                    host.emit(AgentMessage(text))
                elif item.get("type") == "reasoning":
                    text = reasoning_text(item)
                    if text:
                        host.emit(AgentReasoning(text))
                elif item.get("type") == "web_search_call":
                    raw = item.get("action")
                    action: dict[str, Any] = raw if isinstance(raw, dict) else {}
                    host.emit(
                        WebSearchEnd(
                            str(item.get("id") or ""), str(action.get("query") or ""), action or None
                        )
                    )
            elif isinstance(event, ev.OutputItemAdded) and event.item.get("type") == "web_search_call":
                host.emit(WebSearchBegin(str(event.item.get("id") or "")))
            elif isinstance(event, ev.OutputItemAdded) and ctx.warm_up is not None:
                name = event.item.get("name")
                if isinstance(name, str) or event.item.get("type") == "local_shell_call":
                    ctx.warm_up(name if isinstance(name, str) else "local_shell")
            elif isinstance(event, ev.OutputTextDelta):
                host.emit(AgentMessageDelta(event.delta))
            elif isinstance(event, ev.ReasoningSummaryDelta):
                host.emit(AgentReasoningDelta(event.delta))
            elif isinstance(event, ev.RateLimits):
                rate_limits = event.snapshot
            elif isinstance(event, ev.Completed):
                state.usage = state.usage + event.usage
                host.add_usage(event.usage, rate_limits)
        return needs_follow_up
    except asyncio.CancelledError:
        for _, task in calls:
            task.cancel()
        for _, task in calls:
            with contextlib.suppress(BaseException):
                await task
        calls.clear()
        raise
    finally:
        # Completed or broken stream: every started tool finishes and its output is recorded.
        for item, task in calls:
            try:
                result = await task
            except asyncio.CancelledError:
                raise
            host.record(output_item_for(item, result.output.content))
        for extra in injected:  # after the outputs, as 0.169 records them
            host.record(extra)
        injected.clear()

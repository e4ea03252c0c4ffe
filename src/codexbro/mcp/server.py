"""``codexbro mcp-server``: codexbro as an MCP server over stdio, as upstream's ``codex mcp-server``.

Two tools. ``codex`` opens a new session through the composition root (``originator
codex_mcp_server``, ``source mcp``), runs one turn and returns its last agent message as text plus
``structuredContent {threadId, content}``. ``codex-reply`` runs the next turn of a thread: one this
server holds in memory, or — after a restart — one resumed from its rollout file (upstream only
looked in memory). While a call runs, every core event goes to the client as a ``codex/event``
notification (``params`` = the event, ``_meta {requestId, threadId}``), and ``notifications/progress``
too when the call carried a progress token. Approval requests become ``elicitation/create``
requests with upstream's extra ``codex_*`` fields; the reply becomes the session's
``ExecApproval``/``PatchApproval`` op (``server_args.decision_of``: unparseable, an error reply or a
client that cannot be asked → denied; upstream hung on an error reply). ``notifications/cancelled``
interrupts the call's turn. At stdin EOF (or SIGTERM) every session is closed, so no command the
agent started outlives the server. Only the Op/Event protocol is used to drive sessions.

Checked against upstream's source (openai/codex ``codex-rs/mcp-server``), as stored versions could
be read: ``codex_tool_config.rs`` at 001f15e (tool names, titles, descriptions, input and output
schemas — its own test pins the exact JSON); ``exec_approval.rs`` at 136c14d (the exec elicitation
params: ``message``, ``requestedSchema``, ``threadId``, ``codex_elicitation``,
``codex_mcp_tool_call_id``, ``codex_event_id``, ``codex_call_id``, ``codex_command``, ``codex_cwd``,
``codex_parsed_cmd``; a reply that does not parse → denied); ``patch_approval.rs`` at 1a4bce1 (the
message and ``codex_reason``/``codex_grant_root``/``codex_changes``); ``message_processor.rs`` at
0682e78 and ``outgoing_message.rs`` excerpts (the error texts; ``codex/event`` = the event flattened
into ``params`` beside ``_meta.requestId``); ``codex_tool_runner.rs`` (the result shape with
``structuredContent {threadId, content}``, errors as ``isError`` results).
Not verified against a file whose commit is known: ``threadId`` and ``codex_call_id`` in patch
params and ``threadId`` in ``_meta`` (seen in a newer copy of the runner and in a third-party
write-up of 0.153.4, the last release that shipped the server), and that release's schema
(reportedly ``approval-policy`` narrowed to ``on-request|never``, no ``profile``,
``additionalProperties: false``). codexbro keeps the wider schema of the file read above and refuses
unknown keys as 0.153.4 reportedly did; ``include-plan-tool`` (removed upstream in 0.48) is
accepted and ignored; ``codex_parsed_cmd`` is always one ``unknown`` entry (codexbro does not
classify commands).

The ``mcp`` SDK is imported only inside ``serve`` and below: it costs ~0.5 s and the CLI must start
fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from codexbro import protocol as p
from codexbro.mcp.server_args import ArgumentError, ServerBase, parse_codex, parse_reply

if TYPE_CHECKING:
    import mcp_types as types
    from mcp.server.context import ServerRequestContext
    from mcp.shared.dispatcher import DispatchContext

    from codexbro.config.loader import Overrides
    from codexbro.core.session import Session

log = logging.getLogger(__name__)

ORIGINATOR = "codex_mcp_server"  # upstream's originator for this entry point
SOURCE = "mcp"  # upstream's SessionSource::Mcp
INTERRUPT_GRACE_S = 10.0  # how long a cancelled call waits for its turn's end
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def serve(config_overrides: list[str], profile: str | None) -> int:
    """Serve MCP on stdin/stdout until stdin ends; the exit code (1: the config is unusable)."""
    from codexbro.config.loader import Overrides, load_config
    from codexbro.errors import UserError
    from codexbro.logs import setup_file_logging

    base = ServerBase(tuple(config_overrides), profile, Path.cwd())
    try:  # checked once up front: a broken config.toml is said now, not on every call
        config = load_config(Overrides(cli_overrides=base.cli_overrides, profile=profile))
    except UserError as err:
        print(f"Error: {err.message}", file=sys.stderr)
        return 1
    setup_file_logging(config.codexbro_home)
    asyncio.run(CodexMcpServer(base, config.codexbro_home).run())
    return 0


class _Thread(Struct):
    session: Session
    busy: bool = False  # a call is running a turn on it
    stopping: bool = False  # that call was cancelled: its turn is being interrupted
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set when no call runs a turn on it


class CodexMcpServer:
    """The tools' state: the threads this server opened or resumed, by thread id."""

    def __init__(self, base: ServerBase, home: Path) -> None:
        self.base = base
        self.home = home
        self.threads: dict[str, _Thread] = {}
        self._dying: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references

    async def run(self) -> None:
        from mcp.server.lowlevel import Server
        from mcp.server.stdio import stdio_server

        from codexbro import __version__

        server: Server[Any] = Server(
            "codexbro-mcp-server", version=__version__, title="codexbro",
            on_list_tools=self._list_tools, on_call_tool=self._call_tool,
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
        finally:
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)
            await self.close()

    def _on_signal(self, sig: int) -> None:
        self._dying.add(asyncio.get_running_loop().create_task(self._die(sig)))

    async def _die(self, sig: int) -> None:
        """A signal: close every session (their processes die with them), then die of the signal.
        Not by cancelling the serving task: the SDK reads stdin in a thread that only a line or EOF
        wakes, so the server would wait for its client to speak first."""
        log.info("mcp-server: %s, closing %d session(s)", signal.Signals(sig).name, len(self.threads))
        await self.close()
        logging.shutdown()
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)

    async def close(self) -> None:
        """Close every session (running turns are stopped, their processes killed)."""
        threads, self.threads = list(self.threads.values()), {}
        for thread in threads:
            try:
                await thread.session.close()
            except Exception:  # one broken session must not keep the others' processes alive
                log.exception("closing session %s", thread.session.thread_id)

    # ---- MCP handlers --------------------------------------------------------------------------

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        import mcp_types as types

        from codexbro.mcp.server_args import CODEX_TOOL, REPLY_TOOL

        return types.ListToolsResult(tools=[types.Tool.model_validate(t) for t in (CODEX_TOOL, REPLY_TOOL)])

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            if params.name == "codex":
                call = parse_codex(params.arguments, self.base)
                await _prime(call.overrides)
                thread = self._open(call.overrides)
                return await self._turn(ctx, thread, call.prompt)
            if params.name == "codex-reply":
                thread_id, prompt = parse_reply(params.arguments)
                found = self.threads.get(thread_id) or self._resume(thread_id)
                if found is None:
                    return _result(f"Session not found for thread_id: {thread_id}", thread_id, error=True)
                if found.busy:  # a cancelled call's turn winding down is waited for; a live one refuses
                    await _wait_if_stopping(found)
                if found.busy:
                    return _result(f"thread {thread_id} is running a turn for another call; retry when it "
                                   "has answered", thread_id, error=True)  # fmt: skip
                return await self._turn(ctx, found, prompt)
            return _result(f"Unknown tool '{params.name}'", None, error=True)
        except ArgumentError as err:
            return _result(err.message, None, error=True)
        except Exception as exc:  # a bug or an unforeseen failure: this call fails, the server stays
            log.exception("tools/call %s", params.name)
            return _result(f"Codex runtime error: {type(exc).__name__}: {exc}", None, error=True)

    # ---- sessions ------------------------------------------------------------------------------

    def _open(self, overrides: Overrides) -> _Thread:
        from codexbro.composition import SessionOptions, start_session
        from codexbro.config.loader import load_config
        from codexbro.errors import UserError

        try:
            config = load_config(overrides)
        except UserError as err:
            raise ArgumentError(f"Failed to load Codex configuration from overrides: {err.message}") from None
        try:
            session = start_session(config, SessionOptions(originator=ORIGINATOR, source=SOURCE))
        except UserError as err:
            raise ArgumentError(f"Failed to start Codex session: {err.message}") from None
        thread = self.threads[session.thread_id] = _Thread(session)
        return thread

    def _resume(self, thread_id: str) -> _Thread | None:
        """A thread this server does not hold, from its rollout: with the approval policy, sandbox
        and directory it last ran with, over the server's own config."""
        from codexbro.composition import SessionOptions, start_session
        from codexbro.config.loader import Overrides, load_config
        from codexbro.core.rollout import find_rollout, load_rollout
        from codexbro.errors import UserError
        from codexbro.mcp.server_args import resume_flags

        try:
            loaded = load_rollout(find_rollout(self.home, thread_id))
        except (UserError, OSError):
            return None
        flags, cwd = resume_flags(loaded.last_turn_context)
        overrides = Overrides(self.base.cli_overrides, self.base.profile, flags, cwd or self.base.cwd)
        try:
            session = start_session(
                load_config(overrides), SessionOptions(originator=ORIGINATOR, source=SOURCE, resume=loaded)
            )
        except UserError as err:
            raise ArgumentError(f"Failed to resume Codex session {thread_id}: {err.message}") from None
        thread = self.threads[session.thread_id] = _Thread(session)
        return thread

    # ---- one turn ------------------------------------------------------------------------------

    async def _turn(
        self, ctx: ServerRequestContext[Any, Any], thread: _Thread, prompt: str
    ) -> types.CallToolResult:
        """Run one turn of ``thread`` for this call: its events to the client as they come, its
        approvals asked of the client, its last message (or its error) as the result."""
        import anyio

        session, thread_id = thread.session, thread.session.thread_id
        channel = _back_channel(ctx)
        meta = {"requestId": ctx.request_id, "threadId": thread_id}
        thread.busy = True
        thread.idle.clear()
        ended = False
        session.submit(p.UserTurn((p.UserInput("text", text=prompt),)))
        try:
            error: str | None = None
            async with anyio.create_task_group() as asks:
                sent = 0
                while True:
                    event = await session.next_event()
                    msg = event.msg
                    await _notify(channel, {"_meta": meta, **_jsonable(event.to_dict())})
                    if not msg.type.endswith("_delta"):
                        sent += 1
                        await _progress(channel, sent, msg.type)
                    if isinstance(msg, p.ExecApprovalRequest | p.ApplyPatchApprovalRequest):
                        asks.start_soon(_ask, channel, session, event, str(ctx.request_id), thread_id)
                    elif isinstance(msg, p.TaskStarted):
                        error = None
                    elif isinstance(msg, p.ErrorEvent):
                        error = msg.message
                    elif isinstance(msg, p.TaskComplete | p.TurnAborted):
                        ended = True
                        break
                asks.cancel_scope.cancel()  # approvals the turn no longer waits for
            if isinstance(msg, p.TurnAborted):
                return _result(error or "Turn aborted.", thread_id, error=True)
            if error is not None:
                return _result(error, thread_id, error=True)
            assert isinstance(msg, p.TaskComplete)
            return _result(msg.last_agent_message or "", thread_id)
        except BaseException:
            if not ended:  # the call was cancelled (or the server is stopping): stop its turn too
                thread.stopping = True
                with anyio.CancelScope(shield=True), anyio.move_on_after(INTERRUPT_GRACE_S):
                    await _interrupt(session)
            raise
        finally:
            thread.busy = thread.stopping = False
            thread.idle.set()


async def _ask(channel: DispatchContext[Any], session: Session, event: p.Event, tool_call_id: str,
               thread_id: str) -> None:  # fmt: skip
    """One approval as an ``elicitation/create`` request; the reply is the session's answer."""
    from codexbro.mcp.server_args import decision_of, exec_elicitation, patch_elicitation

    msg = event.msg
    ids = {"thread_id": thread_id, "tool_call_id": tool_call_id, "event_id": event.id}
    if isinstance(msg, p.ExecApprovalRequest):
        params = exec_elicitation(msg, **ids)
    else:
        assert isinstance(msg, p.ApplyPatchApprovalRequest)
        params = patch_elicitation(msg, **ids)
    try:
        reply = await channel.send_raw_request("elicitation/create", params)
    except Exception as exc:  # an error reply, a client that cannot be asked, a closed pipe
        log.warning("approval %s not answered (%s): denied", msg.call_id, exc)
        reply = {}
    decision = decision_of(reply)
    op = p.ExecApproval if isinstance(msg, p.ExecApprovalRequest) else p.PatchApproval
    session.submit(op(msg.call_id, decision))


async def _wait_if_stopping(thread: _Thread) -> None:
    """A call cancelled just before this one may not have started stopping its turn yet (the
    cancellation is handled in its own task): give it a moment, then wait for its turn's end."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(thread.idle.wait(), 1.0)
    if thread.busy and thread.stopping:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(thread.idle.wait(), INTERRUPT_GRACE_S)


async def _interrupt(session: Session) -> None:
    session.submit(p.Interrupt())
    while not isinstance((await session.next_event()).msg, p.TaskComplete | p.TurnAborted):
        pass


def _back_channel(ctx: ServerRequestContext[Any, Any]) -> DispatchContext[Any]:
    """This call's raw back-channel. Upstream's elicitation params carry top-level ``codex_*``
    fields and its clients reply ``{"decision": …}``, neither of which the SDK's typed
    ``elicit_form`` can carry, and ``codex/event`` is not a spec notification; SDK 2.3.0 exposes the
    request-scoped channel (``DispatchContext``: ``send_raw_request``, ``notify``, ``progress``) only
    on ``ServerSession`` itself."""
    return ctx.session._request_outbound


async def _notify(channel: DispatchContext[Any], params: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):  # the client left: the turn still ends normally
        await channel.notify("codex/event", params)


async def _progress(channel: DispatchContext[Any], count: int, what: str) -> None:
    with contextlib.suppress(Exception):  # a no-op unless the call carried a progress token
        await channel.progress(count, None, what)


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(value, default=str))
    return out


def _result(text: str, thread_id: str | None, *, error: bool = False) -> types.CallToolResult:
    """A tool result as upstream's: the text, and ``{threadId, content}`` once there is a thread."""
    import mcp_types as types

    extra: dict[str, Any] = {"is_error": True} if error else {}  # (the SDK writes `isError: false` anyway)
    if thread_id is not None:
        extra["structured_content"] = {"threadId": thread_id, "content": text}
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], **extra)


async def _prime(overrides: Overrides) -> None:
    """A workspace's managed requirements fetched off the event loop before a session opens on it
    (a slow server must not stall the other calls); a config that does not load is left for
    ``_open`` to report."""
    import contextlib

    from codexbro.composition import managed
    from codexbro.config.loader import load_config
    from codexbro.errors import CodexbroError

    with contextlib.suppress(CodexbroError):
        await managed.prime(load_config(overrides))

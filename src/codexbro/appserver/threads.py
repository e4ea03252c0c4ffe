"""A loaded thread of the app server: a core ``Session`` (opened through the composition root), the
task that turns its events into v2 notifications for the client, and the server→client requests
its approvals, questions and elicitations become — with the client's answer applied as the
matching Op.

Decisions, as upstream's v2: commands ``accept`` | ``acceptForSession`` | ``decline`` | ``cancel``
(and ``{acceptWithExecpolicyAmendment: …}``, taken as ``accept``); file changes the same four. A
client that answers with an error, or goes away, declines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from codexbro import __version__
from codexbro import protocol as p
from codexbro.appserver.events import TurnMapper, actions, now_ms
from codexbro.appserver.rpc import Connection, RpcError

if TYPE_CHECKING:
    from codexbro.core.session import Session

log = logging.getLogger(__name__)

DECISIONS = {
    "accept": "approved",
    "acceptForSession": "approved_for_session",
    "decline": "denied",
    "cancel": "abort",
}


def sandbox_policy(mode: str, network: bool) -> dict[str, Any]:
    """The v2 ``SandboxPolicy`` object for a sandbox mode."""
    if mode == "danger-full-access":
        return {"type": "dangerFullAccess"}
    if mode == "workspace-write":
        return {"type": "workspaceWrite", "writableRoots": [], "networkAccess": network,
                "excludeTmpdirEnvVar": False, "excludeSlashTmp": False}  # fmt: skip
    return {"type": "readOnly", "networkAccess": False}


@dataclass
class LiveThread:
    session: Session
    conn: Connection
    created_at: int = field(default_factory=lambda: int(time.time()))
    preview: str = ""
    mapper: TurnMapper = field(init=False)
    pump: asyncio.Task[None] | None = None
    turn_done: asyncio.Event = field(default_factory=asyncio.Event)
    asks: set[asyncio.Task[None]] = field(default_factory=set)
    # turn/start: the turn's id reaches the handler (started), and turn/started waits for its reply
    started: asyncio.Event = field(default_factory=asyncio.Event)
    replied: asyncio.Event = field(default_factory=asyncio.Event)
    awaiting_reply: bool = False
    starting: bool = False  # a turn/start is between its check and its turn's start
    pending: dict[int, asyncio.Task[None]] = field(default_factory=dict)  # request id → its ask

    def __post_init__(self) -> None:
        self.mapper = TurnMapper(self.session.thread_id)
        self.turn_done.set()

    @property
    def id(self) -> str:
        return self.session.thread_id

    @property
    def running_turn(self) -> str | None:
        return self.mapper.turn_id

    def json(self, *, turns: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        s, cfg = self.session, self.session.config
        status = {"type": "active", "activeFlags": []} if self.running_turn else {"type": "idle"}
        return {
            "id": self.id, "sessionId": self.id, "cliVersion": __version__, "createdAt": self.created_at,
            "updatedAt": int(time.time()), "cwd": str(cfg.cwd), "ephemeral": not s.recorder.enabled,
            "modelProvider": cfg.model_provider_id, "model": s.model.slug, "preview": self.preview,
            "projectId": None, "source": "appServer", "status": status, "turns": turns or [],
            "path": str(s.recorder.path) if s.recorder.enabled else None,
        }  # fmt: skip

    def settings(self) -> dict[str, Any]:
        """The fields thread/start, resume and fork answer with beside the thread."""
        cfg = self.session.config
        network = cfg.sandbox_workspace_write.network_access
        return {"model": self.session.model.slug, "modelProvider": cfg.model_provider_id, "cwd": str(cfg.cwd),
                "approvalPolicy": "on-request" if cfg.approval_policy == "on-failure" else cfg.approval_policy,
                "approvalsReviewer": "user",
                "sandbox": sandbox_policy(cfg.sandbox_mode, network),
                "reasoningEffort": cfg.model_reasoning_effort or self.session.model.default_reasoning_level}  # fmt: skip

    def start(self) -> None:
        self.pump = asyncio.get_running_loop().create_task(self._pump(), name=f"thread:{self.id}")

    async def _pump(self) -> None:
        """Core events → the client, for the thread's whole life: one failed send never stops it."""
        session = self.session
        while True:
            event = await session.next_event()
            try:
                await self._relay(event.msg)
            except Exception:  # a bug in one event's mapping must not wedge the thread
                log.exception("relaying %s", type(event.msg).__name__)
                if isinstance(event.msg, p.TaskComplete | p.TurnAborted):
                    self.mapper.turn_id = None
            if isinstance(event.msg, p.TaskComplete | p.TurnAborted):
                self.turn_done.set()
            if isinstance(event.msg, p.ShutdownComplete):
                return

    async def _relay(self, msg: p.EventMsg) -> None:
        if isinstance(msg, p.TaskStarted):
            self.turn_done.clear()
            self.mapper.turn_id = msg.turn_id
            self.started.set()
            if self.awaiting_reply:
                self.awaiting_reply = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.replied.wait(), 5)
        if isinstance(msg, p.UserMessage) and not self.preview:
            self.preview = msg.message[:200]
        if isinstance(msg, p.ExecApprovalRequest | p.ApplyPatchApprovalRequest):
            for method, params in self.mapper.approval_started(msg):
                await self.conn.notify(method, params)
        if isinstance(msg, p.ExecApprovalRequest | p.ApplyPatchApprovalRequest | p.RequestUserInput
                      | p.ElicitationRequest):  # fmt: skip
            self._ask(msg)
        elif isinstance(msg, p.WarningEvent):
            await self.conn.notify("warning", {"message": msg.message, "threadId": self.id})
        if isinstance(msg, p.TaskComplete | p.TurnAborted):
            await self._drop_pending()
        for method, params in self.mapper.map(msg):
            await self.conn.notify(method, params)

    async def _drop_pending(self) -> None:
        """The turn ended (interrupted, say) with requests still open: they are resolved now, and a
        late answer changes nothing."""
        for request_id, task in list(self.pending.items()):
            task.cancel()
            await self.conn.notify("serverRequest/resolved", {"threadId": self.id, "requestId": request_id})
        self.pending.clear()

    def _ask(self, msg: p.EventMsg) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(msg))
        self.asks.add(task)
        task.add_done_callback(self.asks.discard)

    async def _answer(self, msg: p.EventMsg) -> None:
        base: dict[str, Any] = {"threadId": self.id, "turnId": self.mapper.turn_id or ""}
        params: dict[str, Any]
        try:
            if isinstance(msg, p.ExecApprovalRequest):
                params = {**base, "itemId": msg.call_id, "startedAtMs": now_ms(), "command": _shell_join(msg.command),
                          "cwd": msg.cwd, "reason": msg.reason, "commandActions": []}  # fmt: skip
                if msg.proposed_prefix:
                    params["proposedExecpolicyAmendment"] = list(msg.proposed_prefix)
                params.update(kind="command", environmentId="local",
                              commandActions=actions(params["command"]),
                              availableDecisions=["accept", "acceptForSession", "decline", "cancel"])  # fmt: skip
                reply = await self._request("item/commandExecution/requestApproval", params)
                self.session.submit(p.ExecApproval(msg.call_id, _decision(reply)))  # type: ignore[arg-type]
            elif isinstance(msg, p.ApplyPatchApprovalRequest):
                params = {**base, "itemId": msg.call_id, "startedAtMs": now_ms(), "reason": msg.reason}
                reply = await self._request("item/fileChange/requestApproval", params)
                self.session.submit(p.PatchApproval(msg.call_id, _decision(reply)))  # type: ignore[arg-type]
            elif isinstance(msg, p.RequestUserInput):
                params = {**base, "itemId": msg.call_id, "isBlocking": True, "questions": [
                    {"id": str(q.get("id")), "header": str(q.get("header", "")), "question": str(q.get("question", "")),
                     "isOther": False, "isSecret": False,
                     "options": [{"label": str(o.get("label")), "description": str(o.get("description", ""))}
                                 for o in q.get("options") or []]}
                    for q in msg.questions]}  # fmt: skip
                reply = await self.conn.request("item/tool/requestUserInput", params)
                answers = reply.get("answers") if isinstance(reply, dict) else None
                chosen = {
                    k: (v.get("answers") or [""])[0]
                    for k, v in (answers or {}).items()
                    if isinstance(v, dict)
                }
                self.session.submit(p.UserInputAnswer(msg.call_id, chosen))
            elif isinstance(msg, p.ElicitationRequest):
                params = {"threadId": self.id, "turnId": self.mapper.turn_id, "serverName": msg.server_name,
                          "mode": "form", "message": msg.message,
                          "requestedSchema": msg.requested_schema or {"type": "object", "properties": {}}}  # fmt: skip
                reply = await self.conn.request("mcpServer/elicitation/request", params)
                action = reply.get("action") if isinstance(reply, dict) else None
                content = reply.get("content") if isinstance(reply, dict) else None
                decision = action if action in ("accept", "decline", "cancel") else "decline"
                self.session.submit(p.ResolveElicitation(msg.server_name, msg.id, decision, content))  # type: ignore[arg-type]
        except (RpcError, ConnectionError) as exc:  # the client refused or left: declined
            log.info("request for %s not answered (%s): declined", type(msg).__name__, exc)
            if isinstance(msg, p.ExecApprovalRequest):
                self.session.submit(p.ExecApproval(msg.call_id, "denied"))
            elif isinstance(msg, p.ApplyPatchApprovalRequest):
                self.session.submit(p.PatchApproval(msg.call_id, "denied"))
            elif isinstance(msg, p.RequestUserInput):
                self.session.submit(p.UserInputAnswer(msg.call_id, {}))
            elif isinstance(msg, p.ElicitationRequest):
                self.session.submit(p.ResolveElicitation(msg.server_name, msg.id, "decline"))

    async def _request(self, method: str, params: dict[str, Any]) -> Any:
        """An approval asked of the client; once answered, ``serverRequest/resolved`` (as upstream)."""
        request_id = self.conn.next_id()
        task = asyncio.current_task()
        if task is not None:
            self.pending[request_id] = task
        try:
            reply = await self.conn.request(method, params, request_id)
        finally:
            self.pending.pop(request_id, None)
        if self.mapper.turn_id is not None:
            for note, note_params in self.mapper.approval_resolved(request_id):
                await self.conn.notify(note, note_params)
        return reply

    async def close(self) -> None:
        for task in list(self.asks):
            task.cancel()
        await self.session.close()
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(BaseException):
                await self.pump


def _decision(reply: Any) -> str:
    value = reply.get("decision") if isinstance(reply, dict) else None
    if isinstance(value, dict) and "acceptWithExecpolicyAmendment" in value:
        return "approved"
    return DECISIONS.get(str(value), "denied")


def _shell_join(argv: list[str]) -> str:
    from codexbro.protocol.display import display_command

    return display_command(argv)

"""Sub-agents: child sessions a session spawns through upstream's ``multi_agent_v1`` tools.

Each child is a real ``Session`` opened by the composition root (``open_child``): the parent's
config — so the same sandbox, approval policy, provider and credential — a model override when the
call names one, its own thread and rollout, and requests tagged ``x-openai-subagent: collab_spawn``
with ``x-codex-parent-thread-id`` (as 0.169 sends them; fixture ``multi-agent-exec.json``). A child
has no collaboration tools of its own (upstream's default depth limit of 1), and at most
``max_threads`` children are open at once (``[agents] max_threads``, default 6 — upstream's default
as its config documents it; not checked against the binary).

A pump task per child reads its events: its final message makes its status
``{"completed": message}`` and puts a ``<subagent_notification>`` into the parent's conversation
(as 0.169 does); its approval requests and questions are asked through the parent's front end and
answered back. When the parent's turn is interrupted, every running child's turn is interrupted
too; when the parent closes, its children close.

Status values follow 0.169's serialisation: ``"pending_init"``, ``"running"``,
``{"completed": text}``, ``{"errored": text}``, ``"interrupted"``, ``"shutdown"``, ``"not_found"``.
Captured from the real 0.169 (fixtures ``multi-agent-exec.json``, ``collab-statuses.json``):
completed; errored (a child whose request was refused); a ``wait_agent`` that timed out
(``{"status": {}, "timed_out": true}``, an item reporting no agent); ``close_agent`` on a running
child (``previous_status: "running"``, then a ``"shutdown"`` notification); an agent closed or never
spawned is ``not_found`` to ``wait_agent``; an item is ``failed`` when an agent it reports on errored
or is not found. One difference is kept on purpose: an errored child's text is the error as
codexbro words it (``child request refused``), where 0.169 passes the server's raw error body on
(``{"error": {"message": …, "type": …}}``) — the model reads the cause either way, without the JSON
noise. ``"interrupted"`` (the parent's turn interrupted) is upstream's enum name, not captured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from codexbro import protocol as p
from codexbro.tools.base import RespondToModel

if TYPE_CHECKING:
    from codexbro.core.session import Session

log = logging.getLogger(__name__)
DEFAULT_MAX_THREADS = 6
FINAL = ("completed", "errored", "interrupted", "shutdown", "not_found")
# Upstream gives each agent a nickname from a list of names; these are codexbro's own.
NICKNAMES = (
    "Ada",
    "Locke",
    "Noether",
    "Turing",
    "Hopper",
    "Knuth",
    "Lovelace",
    "Dijkstra",
    "Liskov",
    "Ritchie",
)


class Child(Struct):
    id: str
    nickname: str
    session: Session
    status: Any = "pending_init"
    pump: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    last_message: str | None = None
    expect: str = ""  # the submission whose end is the status (an earlier turn's end is not)
    asking: bool = False  # the pump waits for the parent's front end (an approval, a question)
    closing: bool = False  # close_agent was called: a turn it stops ends as "shutdown", not "interrupted"
    evicted: bool = False  # v2: its session closed to free a slot; a followup_task reopens it
    inbox: list[Any] = field(default_factory=list)  # v2: messages sent while evicted, given at reopening
    model: str | None = None  # the overrides it was spawned with (kept when it is reopened)
    effort: str | None = None

    @property
    def kind(self) -> str:
        return self.status if isinstance(self.status, str) else next(iter(self.status))

    @property
    def loaded(self) -> bool:
        """Its session is open: neither shut down nor closed to free a slot (v2)."""
        return not self.evicted and self.kind != "shutdown"

    def state(self) -> dict[str, Any]:
        """``{status, message}`` as the ``collab_tool_call`` items show it."""
        message = None if isinstance(self.status, str) else next(iter(self.status.values()))
        return {"status": self.kind, "message": message}


class SubAgents:
    """The ``AgentControl`` of one session: its children, their lifecycle and statuses."""

    def __init__(self, parent: Session, open_child: Callable[..., Session], *, max_threads: int) -> None:
        self.parent = parent
        self.open_child = open_child
        self.max_threads = max(1, max_threads)
        self.children: dict[str, Child] = {}

    @property
    def thread_id(self) -> str:
        return self.parent.thread_id

    def states(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {i: (self.children[i].state() if self._kind(i) != "not_found" else {"status": "not_found",
                                                                                   "message": None})
                for i in ids}  # fmt: skip

    def _get(self, target: str) -> Child:
        child = self.children.get(target)
        if child is None:
            raise RespondToModel(f"no agent with id {target!r} (ids come from spawn_agent)")
        return child

    # ---- the tools -------------------------------------------------------------------------------

    async def spawn(
        self, message: str, *, model: str | None, fork_context: bool, effort: str | None = None
    ) -> dict[str, Any]:
        open_now = sum(1 for c in self.children.values() if c.kind != "shutdown")
        if open_now >= self.max_threads:
            raise RespondToModel(
                f"agent limit reached ({self.max_threads} open); close one with close_agent first"
            )
        try:
            session = self.open_child(model, effort=effort)
        except Exception as exc:  # a bad model override, a broken config: the model reads why
            raise RespondToModel(f"could not start the agent: {exc}") from None
        if fork_context:
            for item in self.parent.history.items:
                session.record(item)  # in its rollout too: a reopened agent keeps what it inherited
        child = Child(session.thread_id, NICKNAMES[len(self.children) % len(NICKNAMES)], session,
                      model=model, effort=effort)  # fmt: skip
        self.children[child.id] = child
        child.pump = asyncio.get_running_loop().create_task(self._pump(child))
        child.expect = session.submit(p.UserTurn((p.UserInput("text", message),)))
        return {"agent_id": child.id, "nickname": child.nickname}

    async def send(self, target: str, message: str, *, interrupt: bool) -> dict[str, Any]:
        child = self._get(target)
        if child.kind == "shutdown":
            raise RespondToModel(f"agent {target} is closed")
        if interrupt and child.session.active is not None:
            child.session.submit(p.Interrupt())
        submission = child.session.submit(p.UserTurn((p.UserInput("text", message),), when="queue"))
        child.expect = submission  # the running turn's end is not this message's answer
        self._set(child, "running")  # a wait_agent right after this waits for this turn, not the last
        return {"submission_id": submission}

    async def wait(self, targets: list[str], timeout_s: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            done = {t: self._status(t) for t in targets if self._kind(t) in FINAL}
            if done:
                return {"status": done, "timed_out": False}
            left = deadline - loop.time()
            if left <= 0:
                return {"status": {}, "timed_out": True}
            waits = [
                asyncio.ensure_future(self.children[t].changed.wait()) for t in targets if t in self.children
            ]
            try:
                await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    async def close(self, target: str) -> dict[str, Any]:
        child = self._get(target)
        previous = child.status
        await self._shutdown(child)
        return {"previous_status": previous}

    async def resume(self, target: str) -> dict[str, Any]:
        """A closed agent opened again from its rollout (its history kept), ready for
        ``send_input``; a live one is left as it is. The output shape is unverified."""
        child = self._get(target)
        if child.kind != "shutdown":
            return {"status": child.status}
        open_now = sum(1 for c in self.children.values() if c.kind != "shutdown")
        if open_now >= self.max_threads:
            raise RespondToModel(
                f"agent limit reached ({self.max_threads} open); close one with close_agent first"
            )
        try:
            session = self.open_child(child.model, resume=target, effort=child.effort)
        except Exception as exc:  # no rollout (an ephemeral session), or it cannot be read
            raise RespondToModel(f"could not reopen agent {target}: {exc}") from None
        child.session = session
        child.expect = ""
        child.closing = False
        child.status = "pending_init"  # reopened: no longer shut down (``_set`` keeps a closed one closed)
        self._set(child, {"completed": child.last_message} if child.last_message else "pending_init")
        child.pump = asyncio.get_running_loop().create_task(self._pump(child))
        return {"status": child.status}

    # ---- lifecycle ---------------------------------------------------------------------------------

    def _kind(self, target: str) -> str:
        """What ``wait_agent`` and the items report: a closed agent is ``not_found`` to them, as in
        0.169 (it is still known to ``resume_agent``)."""
        child = self.children.get(target)
        return child.kind if child is not None and child.kind != "shutdown" else "not_found"

    def _status(self, target: str) -> Any:
        child = self.children.get(target)
        return child.status if child is not None and child.kind != "shutdown" else "not_found"

    def _set(self, child: Child, status: Any) -> None:
        if child.kind == "shutdown" and status != "shutdown":
            return  # a closed agent stays closed (a late event of its last turn changes nothing)
        child.status = status
        child.changed.set()
        child.changed = asyncio.Event()

    async def _pump(self, child: Child) -> None:
        """The child's events: its status, its final answer (and the parent's notification), its
        approval requests and questions (asked through the parent's front end). A failure here
        makes the agent ``errored``; it never passes silently."""
        try:
            await self._read(child)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("sub-agent %s", child.id)
            self._set(child, {"errored": f"{type(exc).__name__}: {exc}"})

    async def _read(self, child: Child) -> None:
        session = child.session
        while True:
            event = await session.next_event()
            msg = event.msg
            current = event.id == child.expect  # an earlier turn's end is not the status
            if isinstance(msg, p.TaskStarted):
                if current:
                    self._set(child, "running")
            elif isinstance(msg, p.AgentMessage):
                child.last_message = msg.message
            elif isinstance(msg, p.ErrorEvent):
                if current:
                    self._set(child, {"errored": msg.message})
            elif isinstance(msg, p.TaskComplete):
                if current and child.kind != "errored":
                    self._set(child, {"completed": msg.last_agent_message or child.last_message})
                if current:
                    self._notify(child)
            elif isinstance(msg, p.TurnAborted):
                if current:
                    self._set(child, "shutdown" if child.closing else "interrupted")
                    self._notify(child)
            elif isinstance(msg, p.ExecApprovalRequest | p.ApplyPatchApprovalRequest):
                child.asking = True
                try:
                    decision = await self.parent.request_approval(msg)
                finally:
                    child.asking = False
                if decision == "abort":  # stops this agent's turn, never the parent's
                    session.submit(p.Interrupt())
                    decision = "denied"
                answer = p.ExecApproval if isinstance(msg, p.ExecApprovalRequest) else p.PatchApproval
                session.submit(answer(msg.call_id, decision))  # type: ignore[arg-type]
            elif isinstance(msg, p.RequestUserInput):
                child.asking = True
                try:
                    answers = await self.parent.ask(msg)
                finally:
                    child.asking = False
                session.submit(p.UserInputAnswer(msg.call_id, answers))
            elif isinstance(msg, p.ModelRequest | p.AgentTeamEvent):
                self.parent.emit(
                    msg
                )  # the child's requests and its own agents show in the parent's front end
            elif isinstance(msg, p.ShutdownComplete):
                return

    def _notify(self, child: Child) -> None:
        """0.169 tells the parent model what became of the agent in a user message."""
        body = json.dumps(
            {"agent_path": child.id, "status": child.status}, separators=(",", ":"), ensure_ascii=False
        )
        text = f"<subagent_notification>\n{body}\n</subagent_notification>"
        self.parent.inject(
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        )

    async def _shutdown(self, child: Child) -> None:
        if child.kind == "shutdown":
            return
        child.closing = True
        child.session.submit(p.Shutdown())
        if child.pump is not None:
            if child.asking:  # waiting for the user on the child's behalf: nobody needs the answer now
                child.pump.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(child.pump), 15)
            child.pump.cancel()
        with contextlib.suppress(Exception):
            await child.session.close()
        self._set(child, "shutdown")

    def interrupt_all(self) -> None:
        """The parent's turn was interrupted: so is every child's running turn."""
        for child in self.children.values():
            if child.session.active is not None:
                child.session.submit(p.Interrupt())

    async def close_all(self) -> None:
        await asyncio.gather(
            *(self._shutdown(c) for c in list(self.children.values())), return_exceptions=True
        )

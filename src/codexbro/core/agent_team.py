"""Sub-agents as 0.169's ``multi_agent_v2`` runs them (the ``collaboration`` namespace of code-mode
models): a tree of agents addressed by task path (``/root/worker/sub``), work handed over and
answers returned as ``agent_message`` items, and a mailbox per agent to wait on.

Built on ``SubAgents`` (the same child sessions: the parent's config, sandbox and approvals, their
own threads and rollouts, ``x-openai-subagent: collab_spawn``; approvals asked through the parent,
so a grandchild's reach the user through every level). What 0.169 showed and this follows
(``tests/fixtures/codex-0.169/multi-agent-v2.json``, ``multi-agent-v2-nested.json``):

- ``spawn_agent {task_name, message, fork_turns?}`` → ``{"task_name": "<caller>/NAME"}``; the child's
  turn starts from an ``agent_message`` item (``Message Type: NEW_TASK``, the message as
  ``encrypted_content``); ``fork_turns`` ``all`` (the default) gives it the parent's history, the
  unanswered spawn call answered ``aborted``, and 0.169's "newly spawned child agent" note;
- every agent has the collaboration tools and a ``<multi_agent_role>`` of its own (the root's or the
  child's text) and spawns into the same tree: one set of **4 slots, the root included**. A finished
  agent keeps its slot until a spawn needs one; then the one that finished first (without a loaded
  agent under it) is closed and leaves ``list_agents``; with every slot running, a spawn fails
  ``collab spawn failed: agent thread limit reached``; a ``followup_task`` to a closed agent reopens
  it from its rollout when a slot is free (else ``collab tool failed: agent thread limit reached``);
  a ``send_message`` to it is kept and given at reopening (0.169 answers ``""`` too);
- targets are paths, absolute or relative to the caller (``worker/sub`` from the root, ``sub`` from
  ``/root/worker``); ``send_message`` reaches any agent, ``/root`` included;
- ``followup_task`` → ``""`` (``NEW_TASK``, a turn started, or joined when one runs),
  ``send_message`` → ``""`` (``MESSAGE``, no new turn), ``interrupt_agent`` →
  ``{"previous_status": …}``, ``list_agents`` → the whole tree sorted by path, the root ``running``,
  ``path_prefix`` matching the agent itself too;
- a child's answer reaches its parent (not the root) as an ``agent_message`` (``FINAL_ANSWER``);
  ``wait_agent`` → ``{"message": "Wait completed.", "timed_out": false}`` when a message for the
  caller arrives (an answer or a ``send_message``; or one has not yet reached the model), else
  ``Wait timed out.`` after ``timeout_ms`` (10 s–1 h, default 30 s);
- errors: ``agent_name must use only lowercase letters, digits, and underscores``,
  ``live agent path `/root/NAME` not found``.

Not as 0.169, on purpose or unverified: a ``reasoning_effort`` the child's model does not support
is refused in codexbro's words; the ``FINAL_ANSWER`` of a child that did not complete carries its status as JSON; the texts refusing a
duplicate name, a bad ``fork_turns``, an override on a full-history fork, a task for ``/root`` or
for oneself, and a reopening under a closed parent are codexbro's; ``[agents] max_threads`` (when
below 3) lowers the number of children loaded at once.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

from codexbro import protocol as p
from codexbro.core.subagents import Child, SubAgents
from codexbro.protocol.items import ResponseItem, developer_message
from codexbro.tools.base import RespondToModel

if TYPE_CHECKING:
    from codexbro.core.session import Session

ROOT = "/root"
SLOTS = 4  # agents loaded at once, the root included (0.169's role message says so; captured)
SPAWN_FULL = "collab spawn failed: agent thread limit reached"  # 0.169's words (captured)
TOOL_FULL = "collab tool failed: agent thread limit reached"
_NAME = re.compile(r"[a-z0-9_]+")
_DONE = ("completed", "errored", "interrupted")


def agent_message(author: str, recipient: str, kind: str, payload: str, *, sealed: bool) -> ResponseItem:
    """An ``agent_message`` item as 0.169 writes one (a sealed payload rides as ``encrypted_content``,
    the form the model's own ``message`` argument takes)."""
    head = f"Message Type: {kind}\nTask name: {recipient}\nSender: {author}\nPayload:\n"
    content: list[dict[str, Any]] = (
        [{"type": "input_text", "text": head}, {"type": "encrypted_content", "encrypted_content": payload}]
        if sealed
        else [{"type": "input_text", "text": head + payload}]
    )
    return {"type": "agent_message", "author": author, "recipient": recipient, "content": content}


def parent_of(path: str) -> str:
    return path.rsplit("/", 1)[0]


class Tree:
    """Every agent under one root session, by path, shared by the teams of all of them: the same
    slots, the same agents to reach, one mailbox per agent."""

    def __init__(self, root: Session, max_threads: int) -> None:
        self.root = root
        self.max_threads = max_threads
        self.agents: dict[str, Child] = {}  # every agent but the root
        self.teams: dict[str, AgentTeam] = {}  # the live team of each agent that has one
        self.finished: dict[str, float] = {}  # when each last finished a task (who is closed first)
        self.lock = asyncio.Lock()  # one spawn or reopening at a time: two cannot take one slot
        self._mail: dict[str, asyncio.Event] = {}
        self._sent: dict[str, list[ResponseItem]] = {}

    def loaded(self) -> list[Child]:
        return [c for c in self.agents.values() if c.loaded]

    def session(self, path: str) -> Session | None:
        if path == ROOT:
            return self.root
        child = self.agents.get(path)
        return child.session if child is not None and child.loaded else None

    def deliver(self, path: str, item: ResponseItem) -> None:
        """``item`` into the agent's conversation (its running turn's next request, or its history),
        and a wake-up for its ``wait_agent``."""
        session = self.session(path)
        if session is None:
            return
        session.inject(item)
        self._sent[path] = [i for i in self._sent.get(path, []) if session.pending(i)] + [item]
        event = self._mail.pop(path, None)
        if event is not None:
            event.set()

    def unread(self, path: str) -> bool:
        session = self.session(path)
        return session is not None and any(session.pending(i) for i in self._sent.get(path, []))

    def mailbox(self, path: str) -> asyncio.Event:
        return self._mail.setdefault(path, asyncio.Event())

    async def free_slot(self, refusal: str) -> None:
        """Make room for one more loaded agent (call with ``lock`` held): close the agent that
        finished first and has nothing loaded under it, or refuse with ``refusal``."""
        while True:
            loaded = self.loaded()
            if 1 + len(loaded) < SLOTS and len(loaded) < self.max_threads:
                return
            idle = [c for c in loaded if c.kind in _DONE and c.session.active is None and not c.asking
                    and not any(o.id.startswith(c.id + "/") for o in loaded)]  # fmt: skip
            if not idle:
                raise RespondToModel(refusal)
            await self.evict(min(idle, key=lambda c: self.finished.get(c.id, 0.0)))

    async def evict(self, child: Child) -> None:
        """Close ``child``'s session to free its slot. It counts as closed from the start: work sent
        to it meanwhile waits in its inbox (or for the lock, to reopen it), never reaches a session
        on its way out."""
        status = child.status
        child.evicted = True
        team = self.teams.get(parent_of(child.id))
        if team is not None:
            await team.shut(child)
            team.children.pop(child.id, None)
        self.teams.pop(child.id, None)
        child.status = status  # its last status, for when it is reopened
        from codexbro.core.history import History

        child.session.history = History(None)  # its rollout holds it; a closed agent keeps no copy


class AgentTeam(SubAgents):
    """``SubAgents`` with 0.169's v2 surface beside the v1 one (a session offers one of the two):
    the team of the agent at ``me``, spawning into ``tree`` (a new one for the root)."""

    def __init__(
        self, parent: Session, open_child: Any, *, max_threads: int, tree: Tree | None = None, me: str = ROOT
    ) -> None:
        super().__init__(parent, open_child, max_threads=max_threads)
        self.me = me
        self.tree = tree if tree is not None else Tree(parent, self.max_threads)
        self.tree.teams[me] = self
        self._v2: set[str] = set()

    def path(self, target: str) -> str:
        target = target.strip().rstrip("/")
        return target if target.startswith("/") else f"{self.me}/{target}"

    def _live(self, target: str, *, closed_too: bool = False) -> Child:
        path = self.path(target)
        child = self.tree.agents.get(path)
        if child is None or child.kind == "shutdown" or (child.evicted and not closed_too):
            raise RespondToModel(f"live agent path `{path}` not found")
        return child

    def _not_self(self, path: str, what: str) -> None:
        if path == self.me:
            raise RespondToModel(f"an agent cannot {what} itself")
        if self.me.startswith(path + "/") and path != ROOT:
            raise RespondToModel(
                f"`{path}` is an agent above you; it takes no {what} from you (send_message reaches it)"
            )
        if path == ROOT:
            raise RespondToModel(f"`{ROOT}` takes no {what} from its agents; use send_message to reach it")

    # ---- the tools -------------------------------------------------------------------------------

    async def spawn_task(self, task_name: str, message: str, *, fork_turns: str | None,
                         model: str | None, effort: str | None = None) -> dict[str, Any]:  # fmt: skip
        if not _NAME.fullmatch(task_name) or len(task_name) > 64:
            raise RespondToModel(
                "agent_name must use only lowercase letters, digits, and underscores"
                + (" (at most 64)" if _NAME.fullmatch(task_name) else "")
            )
        path = f"{self.me}/{task_name}"
        known = self.tree.agents.get(path)
        if known is not None and known.kind != "shutdown":
            raise RespondToModel(f"agent path `{path}` already exists; give the new agent another task_name")
        fork = fork_turns or "all"
        if fork not in ("all", "none"):
            raise RespondToModel('fork_turns must be "all" or "none"')
        if fork == "all" and (model or effort):
            raise RespondToModel(
                "full-history forks inherit the parent model and reasoning effort; "
                'set fork_turns to "none" to choose another'
            )
        async with self.tree.lock:
            known = self.tree.agents.get(path)  # again: another spawn may have taken it meanwhile
            if known is not None and known.kind != "shutdown":
                raise RespondToModel(
                    f"agent path `{path}` already exists; give the new agent another task_name"
                )
            await self.tree.free_slot(SPAWN_FULL)
            try:
                session = self.open_child(model, path=path, tree=self.tree, effort=effort)
            except Exception as exc:  # a bad model override, a broken config: the model reads why
                raise RespondToModel(f"could not start the agent: {exc}") from None
            if fork == "all":  # recorded, so that a reopened fork keeps what it inherited
                for item in self.parent.history.items:  # the unanswered spawn call goes as "aborted"
                    session.record(item)
                from codexbro.tools.handlers.agents_v2 import developer_texts

                role, mode = developer_texts(child=True)  # after the note, as 0.169's forks get them
                for text in (self._fork_note(), role, mode):
                    session.record(developer_message(text))
                session.context_recorded = True  # the parent's context came with its history
            child = Child(path, task_name, session, model=model, effort=effort)
            self._adopt(child)
        child.expect = session.submit_item(agent_message(self.me, path, "NEW_TASK", message, sealed=True))
        self.parent.emit(p.AgentTeamEvent("spawn", self.me, path, message))
        return {"task_name": path}

    def _adopt(self, child: Child) -> None:
        self.children[child.id] = child
        self.tree.agents[child.id] = child
        self._v2.add(child.id)
        child.pump = asyncio.get_running_loop().create_task(self._pump(child))

    async def followup(self, target: str, message: str) -> str:
        """A new task: into the child's running turn at its next request (0.169: "delivered
        promptly at message boundaries"), or a turn of its own when the child is idle; a closed
        child is reopened first."""
        child = self._live(target, closed_too=True)
        self._not_self(child.id, "tasks")
        if child.evicted:
            async with self.tree.lock:
                if child.evicted:
                    if parent_of(child.id) not in self.tree.teams:  # before closing anyone for it
                        raise RespondToModel(
                            f"`{parent_of(child.id)}` is closed; give it a task first, then its agents"
                        )
                    await self.tree.free_slot(TOOL_FULL)
                    await self._reopen(child)
        item = agent_message(self.me, child.id, "NEW_TASK", message, sealed=True)
        self.parent.emit(p.AgentTeamEvent("task", self.me, child.id, message))
        if child.session.active is not None:
            child.session.submit_item(item)  # steered: the running turn's end answers it
            return ""
        child.expect = child.session.submit_item(item)
        self._set(child, "running")
        return ""

    async def _reopen(self, child: Child) -> None:
        team = self.tree.teams[parent_of(child.id)]
        try:
            session = team.open_child(child.model, resume=child.session.thread_id, path=child.id, tree=self.tree,
                                      effort=child.effort)  # fmt: skip
        except Exception as exc:  # no rollout (an ephemeral session), or it cannot be read
            raise RespondToModel(f"could not reopen agent `{child.id}`: {exc}") from None
        child.session, child.evicted, child.closing, child.expect = session, False, False, ""
        for item in child.inbox:  # what was sent while it was closed
            session.inject(item)
        child.inbox.clear()
        team._adopt(child)

    async def message(self, target: str, message: str) -> str:
        path = self.path(target)
        item = agent_message(self.me, path, "MESSAGE", message, sealed=True)
        if path != ROOT:
            self._live(target, closed_too=True)  # a path that does not exist is refused before it shows
        self.parent.emit(p.AgentTeamEvent("message", self.me, path, message))
        if path == ROOT:
            self.tree.deliver(ROOT, item)
            return ""
        child = self._live(target, closed_too=True)
        if child.evicted:
            child.inbox.append(item)
        else:
            self.tree.deliver(path, item)
        return ""

    async def interrupt(self, target: str) -> dict[str, Any]:
        child = self._live(target)
        self._not_self(child.id, "interrupts")
        previous = child.status
        if child.session.active is not None:
            child.session.submit(p.Interrupt())
        self.parent.emit(p.AgentTeamEvent("interrupt", self.me, child.id))
        return {"previous_status": previous}

    def list_agents(self, prefix: str | None) -> dict[str, Any]:
        agents = [{"agent_name": ROOT, "agent_status": "running"}]
        agents += [{"agent_name": c.id, "agent_status": "running" if c.id == self.me else c.status}
                   for c in self.tree.loaded()]  # fmt: skip
        if prefix:
            want = self.path(prefix)
            agents = [a for a in agents if str(a["agent_name"]).startswith(want)]
        return {"agents": sorted(agents, key=lambda a: str(a["agent_name"]))}

    async def wait_mail(self, timeout_s: float) -> dict[str, Any]:
        """Until a message for this agent arrives, or the user steers new input into the turn
        (0.169's description; the wording of that answer is codexbro's), or ``timeout_s``."""
        if self.tree.unread(self.me):
            return {"message": "Wait completed.", "timed_out": False}
        if self.parent.steered():
            return {"message": "Wait interrupted: the user sent new input.", "timed_out": False}
        mail = asyncio.ensure_future(self.tree.mailbox(self.me).wait())
        steer = asyncio.ensure_future(self.parent.wait_steered())
        try:
            await asyncio.wait((mail, steer), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            mail.cancel()
            steer.cancel()
        if mail.done() and not mail.cancelled():
            return {"message": "Wait completed.", "timed_out": False}
        if steer.done() and not steer.cancelled():
            return {"message": "Wait interrupted: the user sent new input.", "timed_out": False}
        return {"message": "Wait timed out.", "timed_out": True}

    # ---- lifecycle ---------------------------------------------------------------------------------

    def _notify(self, child: Child) -> None:
        if child.id not in self._v2:
            super()._notify(child)
            return
        status = child.status
        payload = (
            str(next(iter(status.values())) or "")
            if isinstance(status, dict) and "completed" in status
            else json.dumps(status, separators=(",", ":"), ensure_ascii=False)
        )
        self.tree.finished[child.id] = asyncio.get_running_loop().time()
        self.parent.emit(p.AgentTeamEvent("answer", child.id, self.me, payload))
        self.tree.deliver(self.me, agent_message(child.id, self.me, "FINAL_ANSWER", payload, sealed=False))

    async def shut(self, child: Child) -> None:
        await super()._shutdown(child)

    async def _shutdown(self, child: Child) -> None:
        if not child.evicted:  # a closed agent's session is closed already
            await super()._shutdown(child)

    def _fork_note(self) -> str:
        from codexbro.tools.handlers.agents_v2 import spec_texts

        return str(spec_texts()["fork_note"])

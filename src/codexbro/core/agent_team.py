"""Sub-agents as 0.169's ``multi_agent_v2`` runs them (the ``collaboration`` namespace of code-mode
models): agents addressed by task path (``/root/worker``), work handed over and answers returned
as ``agent_message`` items, and a mailbox the parent waits on.

Built on ``SubAgents`` (the same child sessions: the parent's config, sandbox and approvals, their
own threads and rollouts, ``x-openai-subagent: collab_spawn``; approvals asked through the parent).
What 0.169 showed (``tests/fixtures/codex-0.169/multi-agent-v2.json``) and this follows:

- ``spawn_agent {task_name, message, fork_turns?}`` → ``{"task_name": "/root/NAME"}``; the child's
  turn starts from an ``agent_message`` item (``Message Type: NEW_TASK``, the message as
  ``encrypted_content``); ``fork_turns`` ``all`` (the default) gives it the parent's history, the
  unanswered spawn call answered ``aborted``, and 0.169's "newly spawned child agent" note;
- ``followup_task`` → ``""`` (``NEW_TASK``, a turn started or queued), ``send_message`` → ``""``
  (``MESSAGE``, no new turn), ``interrupt_agent`` → ``{"previous_status": …}``, ``list_agents`` →
  ``{"agents": [{"agent_name", "agent_status"}]}`` (the root included, ``running``);
- a child's answer reaches the parent as an ``agent_message`` (``FINAL_ANSWER``); ``wait_agent``
  → ``{"message": "Wait completed.", "timed_out": false}`` when such a message arrives (or one has
  not yet reached the model), else ``Wait timed out.`` after ``timeout_ms`` (10 s–1 h, default 30 s);
- errors: ``agent_name must use only lowercase letters, digits, and underscores``,
  ``live agent path `/root/NAME` not found``.

Not as 0.169, on purpose or unverified: children get no collaboration tools (depth 1, where 0.169
lets them spawn their own), hence no ``<multi_agent_role>`` of their own; at most 3 children run at
once (0.169's "4 concurrency slots, including you"; the refusal's wording is codexbro's); a
``reasoning_effort`` override is not applied; the ``FINAL_ANSWER`` of a child that did not complete
carries its status as JSON; the texts refusing a duplicate name, a bad ``fork_turns`` or an override
on a full-history fork are codexbro's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any

from codexbro import protocol as p
from codexbro.core.subagents import Child, SubAgents
from codexbro.protocol.items import ResponseItem, developer_message
from codexbro.tools.base import RespondToModel

ROOT = "/root"
SLOTS = 4  # agents active at once, the root included (0.169's role message says so)
_NAME = re.compile(r"[a-z0-9_]+")


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


class AgentTeam(SubAgents):
    """``SubAgents`` with 0.169's v2 surface beside the v1 one (a session offers one of the two)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._v2: set[str] = set()
        self._mail: asyncio.Event = asyncio.Event()
        self._sent: list[ResponseItem] = []  # answers given to the parent, maybe not yet read

    @staticmethod
    def path(target: str) -> str:
        target = target.strip()
        return target if target.startswith("/") else f"{ROOT}/{target}"

    def _live(self, target: str) -> Child:
        path = self.path(target)
        child = self.children.get(path)
        if child is None or child.kind == "shutdown":
            raise RespondToModel(f"live agent path `{path}` not found")
        return child

    # ---- the tools -------------------------------------------------------------------------------

    async def spawn_task(self, task_name: str, message: str, *, fork_turns: str | None,
                         model: str | None) -> dict[str, Any]:  # fmt: skip
        if not _NAME.fullmatch(task_name) or len(task_name) > 64:
            raise RespondToModel(
                "agent_name must use only lowercase letters, digits, and underscores"
                + (" (at most 64)" if _NAME.fullmatch(task_name) else "")
            )
        path = f"{ROOT}/{task_name}"
        if path in self.children and self.children[path].kind != "shutdown":
            raise RespondToModel(f"agent path `{path}` already exists; give the new agent another task_name")
        fork = fork_turns or "all"
        if fork not in ("all", "none"):
            raise RespondToModel('fork_turns must be "all" or "none"')
        if fork == "all" and model:
            raise RespondToModel(
                'full-history forks inherit the parent model; set fork_turns to "none" to choose another'
            )
        self._check_slots()
        if sum(1 for c in self.children.values() if c.kind != "shutdown") >= self.max_threads:
            raise RespondToModel(f"agent limit reached ({self.max_threads} agents in this session)")
        try:
            session = self.open_child(model)
        except Exception as exc:  # a bad model override, a broken config: the model reads why
            raise RespondToModel(f"could not start the agent: {exc}") from None
        if fork == "all":
            for item in self.parent.history.items:  # the unanswered spawn call goes as "aborted"
                session.history.append(item)
            session.history.append(developer_message(self._fork_note()))
            session.context_recorded = True  # the parent's context came with its history
        child = Child(path, task_name, session)
        self.children[path] = child
        self._v2.add(path)
        child.pump = asyncio.get_running_loop().create_task(self._pump(child))
        child.expect = session.submit_item(agent_message(ROOT, path, "NEW_TASK", message, sealed=True))
        return {"task_name": path}

    async def followup(self, target: str, message: str) -> str:
        """A new task: into the child's running turn at its next request (0.169: "delivered
        promptly at message boundaries"), or a turn of its own when the child is idle."""
        child = self._live(target)
        item = agent_message(ROOT, child.id, "NEW_TASK", message, sealed=True)
        if child.session.active is not None:
            child.session.submit_item(item)  # steered: the running turn's end answers it
            return ""
        self._check_slots()
        child.expect = child.session.submit_item(item)
        self._set(child, "running")
        return ""

    def _check_slots(self) -> None:
        active = sum(1 for c in self.children.values() if c.kind in ("pending_init", "running"))
        if active >= SLOTS - 1:
            raise RespondToModel(
                f"no concurrency slot is free: up to {SLOTS} agents can be active at once, including you; "
                "wait for one to finish or interrupt one"
            )

    async def message(self, target: str, message: str) -> str:
        child = self._live(target)
        child.session.inject(agent_message(ROOT, child.id, "MESSAGE", message, sealed=True))
        return ""

    async def interrupt(self, target: str) -> dict[str, Any]:
        child = self._live(target)
        previous = child.status
        if child.session.active is not None:
            child.session.submit(p.Interrupt())
        return {"previous_status": previous}

    def list_agents(self, prefix: str | None) -> dict[str, Any]:
        agents = [{"agent_name": ROOT, "agent_status": "running"}]
        agents += [{"agent_name": path, "agent_status": c.status} for path, c in self.children.items()
                   if path in self._v2 and c.kind != "shutdown"]  # fmt: skip
        if prefix:
            agents = [a for a in agents if str(a["agent_name"]).startswith(prefix)]
        return {"agents": agents}

    async def wait_mail(self, timeout_s: float) -> dict[str, Any]:
        """Until a message arrives, or the user steers new input into the turn (0.169's description;
        the wording of that answer is codexbro's), or ``timeout_s``."""
        if any(self.parent.pending(item) for item in self._sent):
            return {"message": "Wait completed.", "timed_out": False}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        mail = self._mail
        while not mail.is_set():
            if self.parent.steered():
                return {"message": "Wait interrupted: the user sent new input.", "timed_out": False}
            left = deadline - loop.time()
            if left <= 0:
                return {"message": "Wait timed out.", "timed_out": True}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(mail.wait(), min(left, 0.25))
        return {"message": "Wait completed.", "timed_out": False}

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
        item = agent_message(child.id, ROOT, "FINAL_ANSWER", payload, sealed=False)
        self._sent = [i for i in self._sent if self.parent.pending(i)] + [item]
        self.parent.inject(item)
        self._mail.set()
        self._mail = asyncio.Event()

    def _fork_note(self) -> str:
        from codexbro.tools.handlers.agents_v2 import spec_texts

        return str(spec_texts()["fork_note"])

"""Upstream 0.169's collaboration tools: the ``multi_agent_v1`` namespace (``spawn_agent``,
``send_input``, ``wait_agent``, ``close_agent``, ``resume_agent``).

The spec is upstream's, captured from the real binary (``tests/fixtures/codex-0.169/
multi-agent-tools.json``; ``specs/multi_agent_v1.json`` here), with the list of models
``spawn_agent``'s description starts with rebuilt from codexbro's catalog. The outputs are the JSON
0.169 returns (captured for spawn, wait and close; ``send_input`` and ``resume_agent`` follow the
same shapes and are marked unverified). The agents themselves — child sessions — are the core's
(``core/subagents.py``); a handler only reaches them through the ``AgentControl`` it is given.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Protocol

from codexbro.tools.base import RespondToModel, ToolCall, ToolContext, ToolOutput, parse_arguments
from codexbro.tools.namespace import Namespace, NamespaceFunction

NAMESPACE = "multi_agent_v1"
DEFAULT_WAIT_MS, MIN_WAIT_MS, MAX_WAIT_MS = 30_000, 10_000, 3_600_000


class AgentControl(Protocol):
    """What the collaboration tools need from the session that owns the agents."""

    @property
    def thread_id(self) -> str: ...
    def states(self, ids: list[str]) -> dict[str, dict[str, Any]]: ...

    async def spawn(
        self, message: str, *, model: str | None, fork_context: bool, effort: str | None = None
    ) -> dict[str, Any]: ...
    async def send(self, target: str, message: str, *, interrupt: bool) -> dict[str, Any]: ...
    async def wait(self, targets: list[str], timeout_s: float) -> dict[str, Any]: ...
    async def close(self, target: str) -> dict[str, Any]: ...
    async def resume(self, target: str) -> dict[str, Any]: ...


@cache
def _namespace_spec() -> dict[str, Any]:
    text = (Path(__file__).parent.parent / "specs" / "multi_agent_v1.json").read_text(encoding="utf-8")
    spec: dict[str, Any] = json.loads(text)
    return spec


def namespace_spec(models: list[tuple[str, str]]) -> dict[str, Any]:
    """The namespace tool as the model sees it; ``models`` are (slug, description) pairs listed in
    ``spawn_agent``'s description as upstream does."""
    spec = copy.deepcopy(_namespace_spec())
    if models:
        listing = "Available model overrides (optional; inherited parent model is preferred):\n" + "\n".join(
            f"- `{slug}`: {description}" for slug, description in models
        )
        for tool in spec["tools"]:
            if tool["name"] == "spawn_agent":
                tool["description"] = f"{listing}\n{tool['description']}"
    return spec


def _function_spec(name: str) -> dict[str, Any]:
    for tool in _namespace_spec()["tools"]:
        if tool["name"] == name:
            return dict(tool)
    raise KeyError(name)


def _message(args: dict[str, Any]) -> str:
    """``message``, or the text of ``items`` (the structured form; text items only here)."""
    message = args.get("message")
    if isinstance(message, str) and message.strip():
        return message
    items = args.get("items")
    if isinstance(items, list):
        texts = [
            str(i.get("text"))
            for i in items
            if isinstance(i, dict) and i.get("type") == "text" and i.get("text")
        ]
        if texts:
            return "\n".join(texts)
    raise RespondToModel("provide a non-empty `message` (or `items` with text)")


class AgentsNamespace(Namespace):
    """The one menu entry: the namespace with its five functions (never called itself)."""

    def __init__(self, models: list[tuple[str, str]], functions: list[NamespaceFunction]) -> None:
        super().__init__(NAMESPACE, "", functions)
        self._models = models

    def spec(self) -> dict[str, Any]:
        return namespace_spec(self._models)


class _AgentFunction(NamespaceFunction):
    """One function of the namespace, dispatched as ``multi_agent_v1::NAME``; each call shows up as
    a ``collab_tool_call`` (begin/end events with the agents' states)."""

    namespace = NAMESPACE
    event_tool: ClassVar[str] = ""  # the name 0.169's events use, when it differs
    states_before: ClassVar[bool] = False  # the end event shows the agents as they were (close)

    def __init__(self, agents: AgentControl) -> None:
        self.agents = agents

    def spec(self) -> dict[str, Any]:
        return _function_spec(self.function)

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        from codexbro.protocol import CollabToolCallBegin, CollabToolCallEnd

        args = parse_arguments(call, self.spec()["parameters"])
        tool = self.event_tool or self.function
        before = self.targets(args)
        prompt = args.get("message") if isinstance(args.get("message"), str) else None
        sender = self.agents.thread_id
        ctx.emit(CollabToolCallBegin(call.call_id, tool, sender, before, prompt))
        earlier = self.agents.states(before)
        try:
            result = await self.run(args)
        except RespondToModel:
            ctx.emit(CollabToolCallEnd(call.call_id, tool, sender, before, prompt, {}, success=False))
            raise
        after = self.receivers(before, result)
        states = dict(sorted((earlier if self.states_before else self.agents.states(after)).items()))
        # as 0.169 (captured: fixtures/codex-0.169/collab-statuses.json): the item failed when an agent
        # it reports on errored or is not found; its states are listed by id
        failed = any(state["status"] in ("errored", "not_found") for state in states.values())
        ctx.emit(CollabToolCallEnd(call.call_id, tool, sender, after, prompt, states, success=not failed))
        return ToolOutput(json.dumps(result, separators=(",", ":"), ensure_ascii=False))

    def receivers(self, before: list[str], result: dict[str, Any]) -> list[str]:
        """The agents the finished call reports on."""
        return before or ([str(result["agent_id"])] if "agent_id" in result else [])

    def targets(self, args: dict[str, Any]) -> list[str]:
        """The agents the call is about, as known before it runs."""
        for key in ("target", "id"):
            if isinstance(args.get(key), str):
                return [args[key]]
        return [str(t) for t in args.get("targets") or []]

    async def run(self, args: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class SpawnAgent(_AgentFunction):
    function = "spawn_agent"

    async def run(self, args: dict[str, Any]) -> dict[str, Any]:
        model = args.get("model") if isinstance(args.get("model"), str) and args.get("model") else None
        effort = args.get("reasoning_effort") if isinstance(args.get("reasoning_effort"), str) else None
        return await self.agents.spawn(
            _message(args), model=model, fork_context=bool(args.get("fork_context")), effort=effort or None
        )


class SendInput(_AgentFunction):
    function = "send_input"

    async def run(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self.agents.send(
            str(args["target"]), _message(args), interrupt=bool(args.get("interrupt"))
        )


class WaitAgent(_AgentFunction):
    function = "wait_agent"
    event_tool = "wait"

    async def run(self, args: dict[str, Any]) -> dict[str, Any]:
        targets = [str(t) for t in args.get("targets") or [] if str(t)]
        if not targets:
            raise RespondToModel("`targets` must name at least one agent id (from spawn_agent)")
        raw = args.get("timeout_ms")
        timeout_ms = (
            DEFAULT_WAIT_MS if not isinstance(raw, (int, float)) else min(MAX_WAIT_MS, max(MIN_WAIT_MS, raw))
        )
        return await self.agents.wait(targets, timeout_ms / 1000)

    def receivers(self, before: list[str], result: dict[str, Any]) -> list[str]:
        """Those whose final status the wait returns (none when it timed out), as 0.169 shows them."""
        done = result.get("status") or {}
        return [t for t in before if t in done]


class CloseAgent(_AgentFunction):
    function = "close_agent"
    states_before = True

    async def run(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self.agents.close(str(args["target"]))


class ResumeAgent(_AgentFunction):
    function = "resume_agent"

    async def run(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self.agents.resume(str(args["id"]))


def agent_handlers(agents: AgentControl, models: list[tuple[str, str]]) -> list[Any]:
    functions = [cls(agents) for cls in (SpawnAgent, SendInput, WaitAgent, CloseAgent, ResumeAgent)]
    return AgentsNamespace(models, list(functions)).handlers()

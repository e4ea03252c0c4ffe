"""0.169's ``multi_agent_v2`` tools: the ``collaboration`` namespace of code-mode models
(``spawn_agent``, ``followup_task``, ``send_message``, ``wait_agent``, ``interrupt_agent``,
``list_agents``), called directly by the model (never from ``exec``). The namespace's spec and the
developer messages that go with it are 0.169's (``specs/multi_agent_v2.json``); ``spawn_agent``'s
list of models is rebuilt from the catalog. The agents are the core's (``core/agent_team.py``).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from codexbro.tools.base import RespondToModel, ToolCall, ToolContext, ToolOutput, parse_arguments
from codexbro.tools.namespace import Namespace, NamespaceFunction

NAMESPACE = "collaboration"
DEFAULT_WAIT_MS, MIN_WAIT_MS, MAX_WAIT_MS = 30_000, 10_000, 3_600_000


class TeamControl(Protocol):
    @property
    def thread_id(self) -> str: ...

    async def spawn_task(self, task_name: str, message: str, *, fork_turns: str | None,
                         model: str | None, effort: str | None = None) -> dict[str, Any]: ...  # fmt: skip
    async def followup(self, target: str, message: str) -> str: ...
    async def message(self, target: str, message: str) -> str: ...
    async def interrupt(self, target: str) -> dict[str, Any]: ...
    def list_agents(self, prefix: str | None) -> dict[str, Any]: ...
    async def wait_mail(self, timeout_s: float) -> dict[str, Any]: ...


@cache
def spec_texts() -> dict[str, Any]:
    text = (Path(__file__).parent.parent / "specs" / "multi_agent_v2.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def namespace_spec(models: list[tuple[str, str]]) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(spec_texts()["namespace"])
    if models:
        listing = (
            "\n        Available model overrides (optional; inherited parent model is preferred):\n"
            + "\n".join(f"- `{slug}`: {description}" for slug, description in models)
        )
        for tool in spec["tools"]:
            if tool["name"] == "spawn_agent":
                tool["description"] = f"{listing}\n        {tool['description']}"
    return spec


def developer_texts(*, child: bool = False) -> list[str]:
    """The ``<multi_agent_role>`` (the root's, or every child's) and ``<multi_agent_mode>``
    messages (0.169's)."""
    texts = spec_texts()
    return [texts["role_child" if child else "role_root"], texts["mode"]]


class TeamNamespace(Namespace):
    def __init__(self, models: list[tuple[str, str]], functions: list[NamespaceFunction]) -> None:
        super().__init__(NAMESPACE, "", functions)
        self._models = models

    def spec(self) -> dict[str, Any]:
        return namespace_spec(self._models)


def _text(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RespondToModel(f"failed to parse function arguments: `{key}` must be a non-empty string")
    return value


class _TeamFunction(NamespaceFunction):
    namespace = NAMESPACE

    def __init__(self, team: TeamControl) -> None:
        self.team = team

    def spec(self) -> dict[str, Any]:
        for tool in spec_texts()["namespace"]["tools"]:
            if tool["name"] == self.function:
                return dict(tool)
        raise KeyError(self.function)

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        args = parse_arguments(call, self.spec()["parameters"])
        result = await self.run(args, ctx, call.call_id)
        return ToolOutput(result if isinstance(result, str) else json.dumps(result, separators=(",", ":"),
                                                                             ensure_ascii=False))  # fmt: skip

    async def run(self, args: dict[str, Any], ctx: ToolContext, call_id: str) -> Any:
        raise NotImplementedError


class SpawnAgent(_TeamFunction):
    function = "spawn_agent"

    async def run(self, args: dict[str, Any], ctx: ToolContext, call_id: str) -> Any:
        model = args.get("model") if isinstance(args.get("model"), str) and args.get("model") else None
        fork = args.get("fork_turns") if isinstance(args.get("fork_turns"), str) else None
        effort = args.get("reasoning_effort") if isinstance(args.get("reasoning_effort"), str) else None
        return await self.team.spawn_task(_text(args, "task_name"), _text(args, "message"), fork_turns=fork,
                                          model=model, effort=effort or None)  # fmt: skip


class FollowupTask(_TeamFunction):
    function = "followup_task"

    async def run(self, args: dict[str, Any], ctx: ToolContext, call_id: str) -> Any:
        return await self.team.followup(_text(args, "target"), _text(args, "message"))


class SendMessage(_TeamFunction):
    function = "send_message"

    async def run(self, args: dict[str, Any], ctx: ToolContext, call_id: str) -> Any:
        return await self.team.message(_text(args, "target"), _text(args, "message"))


class InterruptAgent(_TeamFunction):
    function = "interrupt_agent"

    async def run(self, args: dict[str, Any], ctx: ToolContext, call_id: str) -> Any:
        return await self.team.interrupt(_text(args, "target"))


class ListAgents(_TeamFunction):
    function = "list_agents"

    async def run(self, args: dict[str, Any], ctx: ToolContext, call_id: str) -> Any:
        prefix = args.get("path_prefix")
        return self.team.list_agents(prefix.rstrip("/") if isinstance(prefix, str) and prefix else None)


class WaitAgent(_TeamFunction):
    """Each wait is a ``collab_tool_call`` (tool ``wait``, no agents named) in ``exec --json``, as
    0.169 shows it; the other functions make no item there (captured)."""

    function = "wait_agent"

    async def run(self, args: dict[str, Any], ctx: ToolContext, call_id: str) -> Any:
        from codexbro.protocol import CollabToolCallBegin, CollabToolCallEnd

        raw = args.get("timeout_ms")
        timeout_ms = (
            DEFAULT_WAIT_MS if not isinstance(raw, int | float) else min(MAX_WAIT_MS, max(MIN_WAIT_MS, raw))
        )
        ctx.emit(CollabToolCallBegin(call_id, "wait", self.team.thread_id, [], None))
        try:
            result = await self.team.wait_mail(timeout_ms / 1000)
        finally:
            ctx.emit(CollabToolCallEnd(call_id, "wait", self.team.thread_id, [], None, {}, success=True))
        return result


def team_handlers(team: TeamControl, models: list[tuple[str, str]]) -> list[Any]:
    functions = [
        cls(team) for cls in (FollowupTask, InterruptAgent, ListAgents, SendMessage, SpawnAgent, WaitAgent)
    ]
    return TeamNamespace(models, list(functions)).handlers()

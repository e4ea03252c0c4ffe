"""What a tool is: a spec for the menu, a handler for calls, and the context a call runs in.

Tools know nothing of transports or sessions: a handler gets a ``ToolCall`` and a ``ToolContext``
(cwd, policies, an ``emit`` callback for progress events) and returns a ``ToolOutput``. Errors the
model should see are raised as ``RespondToModel`` and become ordinary output text.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from msgspec import Struct, field

from codexbro import textsafe
from codexbro.config.types import SandboxWorkspaceWrite, ShellEnvironmentPolicy
from codexbro.config.values import ApprovalPolicy, SandboxMode
from codexbro.protocol import EventMsg

if TYPE_CHECKING:
    from codexbro.sandbox.exec_policy import ApprovalStore, PrefixRule
    from codexbro.sandbox.policy import SandboxSpec


class RespondToModel(Exception):
    """A problem with the call that the model should read and fix (becomes the output text)."""


class ToolCall(Struct, frozen=True):
    """A call parsed from a wire item: ``function`` (JSON arguments), ``custom`` (raw input) or
    ``local_shell`` (an action object)."""

    call_id: str
    name: str
    kind: str  # function | custom | local_shell | tool_search
    arguments: str = ""
    input: str = ""
    action: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ToolCall | None:
        kind = item.get("type")
        call_id = str(item.get("call_id") or item.get("id") or "")
        if kind == "function_call":
            name = str(item.get("name") or "")
            if item.get("namespace"):  # a deferred tool found by tool_search (0.169): NAMESPACE::NAME
                name = f"{item['namespace']}::{name}"
            return cls(call_id, name, "function", arguments=str(item.get("arguments") or ""))
        if kind == "tool_search_call":
            args = item.get("arguments")
            return cls(
                call_id,
                "tool_search",
                "tool_search",
                arguments=json.dumps(args if isinstance(args, dict) else {}),
            )
        if kind == "custom_tool_call":
            return cls(call_id, str(item.get("name") or ""), "custom", input=str(item.get("input") or ""))
        if kind == "local_shell_call":
            action = item.get("action")
            return cls(
                call_id, "local_shell", "local_shell", action=action if isinstance(action, dict) else {}
            )
        return None


class ToolOutput(Struct, frozen=True):
    """Text for the model, or a list of content items (images); ``success`` is for events/traces."""

    content: str | list[dict[str, Any]]
    success: bool = True


async def _never() -> None:
    await asyncio.Event().wait()


class ToolContext(Struct, frozen=True):
    """What a tool call may use: the turn's cwd and policies, the sandbox, the approval channel, the event sink."""

    cwd: Path
    turn_id: str
    sandbox_mode: SandboxMode
    approval_policy: ApprovalPolicy
    sandbox_workspace_write: SandboxWorkspaceWrite
    env_policy: ShellEnvironmentPolicy
    truncation_mode: str = "bytes"
    truncation_limit: int = 10_000
    emit: Callable[[EventMsg], None] = lambda _msg: None
    # Sandbox and approvals. ``sandbox`` None means no sandbox (danger-full-access). Without
    # ``request_approval`` nobody can be asked, and anything that needs approval is refused.
    sandbox: SandboxSpec | None = None
    sandbox_backend: str = "auto"
    request_approval: Callable[[EventMsg], Awaitable[str]] | None = None
    approvals: ApprovalStore | None = None
    rules: tuple[PrefixRule, ...] = ()
    home: Path | None = None
    # Ask the user questions (``request_user_input``): only where a front end can answer.
    ask_user: Callable[[EventMsg], Awaitable[Any]] | None = None
    # Add an item to the history beside the call's output (code mode's ``notify``); None: nowhere.
    inject: Callable[[dict[str, Any]], None] | None = None
    # Returns once input for the running turn waits for its next request (a ``clock.sleep`` ends
    # early); never, where no one can steer.
    wait_steered: Callable[[], Awaitable[None]] = _never

    def resolve_path(self, path: str | None) -> Path:
        if not path:
            return self.cwd
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.cwd / p)


class ToolHandler(Protocol):
    """One tool: its spec for the menu and the coroutine that handles a call."""

    name: str
    supports_parallel: bool

    def spec(self) -> dict[str, Any]: ...

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput: ...


class FunctionTool:
    """Base for JSON-function tools: the spec lives in ``SPEC``; ``args`` checks and decodes a call."""

    name = ""
    supports_parallel = True
    SPEC: ClassVar[dict[str, Any]] = {}

    def spec(self) -> dict[str, Any]:
        return self.SPEC

    def args(self, call: ToolCall) -> dict[str, Any]:
        if call.kind != "function":
            raise RespondToModel(f"{self.name} handler received unsupported payload")
        return parse_arguments(call, self.SPEC["parameters"])


def int_arg(args: dict[str, Any], key: str, default: int, *, zero_message: str | None = None) -> int:
    """A whole, non-negative number argument; ``zero_message`` makes 0 an error with that text."""
    value = args.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or int(value) != value:
        raise RespondToModel(f"failed to parse function arguments: `{key}` must be a non-negative integer")
    if value == 0 and zero_message is not None:
        raise RespondToModel(zero_message)
    return int(value)


# ---- argument checking ------------------------------------------------------------------------


def parse_arguments(call: ToolCall, schema: dict[str, Any]) -> dict[str, Any]:
    """Decode and check JSON arguments against the tool's own (JSON Schema subset) parameters.

    Messages name the field and what was expected, so the model can fix its next call.
    """
    try:
        args = textsafe.loads(call.arguments or "{}")
    except ValueError as exc:
        raise RespondToModel(f"failed to parse function arguments: {exc}") from None
    if not isinstance(args, dict):
        raise RespondToModel("failed to parse function arguments: expected a JSON object")
    _check(args, schema, "")
    return args


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _check(value: Any, schema: dict[str, Any], where: str) -> None:
    expected = schema.get("type")
    label = f"`{where}`" if where else "arguments"
    if isinstance(expected, str) and expected in _TYPES and not _TYPES[expected](value):
        if value is None and where:
            return  # explicit null for an optional field behaves like absence
        raise RespondToModel(
            f"failed to parse function arguments: {label} must be {_article(expected)}, "
            f"got {type(value).__name__} {json.dumps(value)[:80]}"
        )
    if "enum" in schema and value not in schema["enum"]:
        raise RespondToModel(
            f"failed to parse function arguments: {label} must be one of {schema['enum']}, got {value!r}"
        )
    if expected == "object" and isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        for req in schema.get("required", []):
            if value.get(req) is None:
                name = f"{where}.{req}" if where else req
                raise RespondToModel(f"failed to parse function arguments: missing field `{name}`")
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                raise RespondToModel(
                    f"failed to parse function arguments: unknown field `{extra[0]}`, expected one of "
                    + ", ".join(f"`{p}`" for p in props)
                )
        for key, sub in value.items():
            if key in props:
                _check(sub, props[key], f"{where}.{key}" if where else key)
    if expected == "array" and isinstance(value, list) and "items" in schema:
        for i, sub in enumerate(value):
            _check(sub, schema["items"], f"{where}[{i}]")


def _article(kind: str) -> str:
    return {"array": "an array", "object": "an object", "integer": "an integer"}.get(kind, f"a {kind}")


def function_spec(
    name: str, description: str, properties: dict[str, Any], required: list[str]
) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "description": description,
        "strict": False,
        "parameters": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        },
    }

"""The Op/Event protocol: the only thing front ends (exec, TUI, servers) speak to the core.

``Submission{id, op}`` goes in, ``Event{id, msg}`` comes out; ``msg`` kinds and their field names
follow upstream's ``EventMsg`` (snake_case ``type`` tags) so a JSON dump reads like Codex's.
Values are dataclasses treated as immutable; ``to_dict()`` gives the tagged JSON form. Event classes
are not ``frozen`` and skip generated ``__eq__``/``__hash__``/``__repr__``: dataclass code generation was
most of this module's import time, and the CLI must start fast. Ops stay frozen.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from msgspec import Struct, field

from codexbro.records import as_dict

ReviewDecision = Literal["approved", "approved_for_session", "approved_for_workspace", "denied", "abort"]

# ---- Ops (front end → core) -------------------------------------------------------------------


class UserInput(Struct, frozen=True):
    """One piece of user input: ``text``, ``image`` (URL / data URL) or ``local_image`` (path)."""

    type: str
    text: str = ""
    image_url: str = ""
    path: str = ""


class UserTurn(Struct, frozen=True):
    """Start a turn with these inputs (settings are the session's unless given). While a turn
    runs, ``when="steer"`` adds the input to it (sent with its next request, as upstream does with
    text typed mid-turn); ``when="queue"`` starts a turn of its own once the running one ends."""

    items: tuple[UserInput, ...]
    final_output_json_schema: dict[str, Any] | None = None
    when: Literal["steer", "queue"] = "steer"
    kind: ClassVar[str] = "user_turn"


class Interrupt(Struct, frozen=True):
    """Stop the running turn (running commands are killed, unanswered calls answered ``aborted``)."""

    kind: ClassVar[str] = "interrupt"


class ExecApproval(Struct, frozen=True):
    """The answer to an ``exec_approval_request``."""

    id: str
    decision: ReviewDecision
    kind: ClassVar[str] = "exec_approval"


class PatchApproval(Struct, frozen=True):
    """The answer to an ``apply_patch_approval_request``."""

    id: str
    decision: ReviewDecision
    kind: ClassVar[str] = "patch_approval"


class Shutdown(Struct, frozen=True):
    """Stop the turn, close the session, then ``shutdown_complete``."""

    kind: ClassVar[str] = "shutdown"


class Compact(Struct, frozen=True):
    """Compact the conversation now (``/compact``)."""

    kind: ClassVar[str] = "compact"


class OverrideTurnContext(Struct, frozen=True):
    """Settings for the turns that follow (``/model``, ``/approvals``): each given one replaces the
    session's; answered with a fresh ``session_configured``."""

    model: str | None = None
    effort: str | None = None
    approval_policy: str | None = None
    sandbox_mode: str | None = None
    cwd: str | None = None  # an existing directory: the next turns (and their sandbox) run there
    kind: ClassVar[str] = "override_turn_context"


class ThreadRollback(Struct, frozen=True):
    """Drop the last ``num_turns`` user turns (each from the user's message on) from the history;
    recorded, so a resumed session has them dropped too. Only between turns."""

    num_turns: int
    kind: ClassVar[str] = "thread_rollback"


class UserInputAnswer(Struct, frozen=True):
    """The answer to a ``request_user_input`` event: question id → the chosen option's label (or
    the user's own words)."""

    id: str  # the request's call id
    answers: dict[str, str]
    kind: ClassVar[str] = "user_input_answer"


class ResolveElicitation(Struct, frozen=True):
    """The answer to an ``elicitation_request``: ``accept`` (with ``content``), ``decline`` or ``cancel``."""

    server_name: str
    id: str
    decision: Literal["accept", "decline", "cancel"]
    content: dict[str, Any] | None = None
    kind: ClassVar[str] = "resolve_elicitation"


class ListMcpTools(Struct, frozen=True):
    """Ask for the MCP servers' state and tools; answered with ``mcp_list_tools_response``."""

    kind: ClassVar[str] = "list_mcp_tools"


class ForkThread(Struct, frozen=True):
    """Copy this conversation (less its last ``drop_turns`` turns) into a new thread with its own
    session file; answered with ``thread_forked``. Only between turns."""

    drop_turns: int = 0
    kind: ClassVar[str] = "fork_thread"


Op = (
    UserTurn | Interrupt | ExecApproval | PatchApproval | Shutdown | Compact | ThreadRollback | UserInputAnswer
    | ForkThread | OverrideTurnContext | ResolveElicitation | ListMcpTools
)  # fmt: skip

# ---- Events (core → front end) ----------------------------------------------------------------


class EventMsg(Struct, eq=False):
    """Base of every event the core emits; ``to_dict`` gives upstream's tagged JSON."""

    type: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **as_dict(self)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"


class SessionConfigured(EventMsg, eq=False):
    session_id: str
    model: str
    model_provider_id: str
    cwd: str
    approval_policy: str
    sandbox_policy: str
    reasoning_effort: str | None
    rollout_path: str | None
    resumed: bool = False
    type: ClassVar[str] = "session_configured"


class ModelResolved(EventMsg, eq=False):
    """How this session's model, provider and endpoint were chosen (for inspection and traces)."""

    requested: str | None
    model: str
    model_source: str
    catalog: str
    warning: str | None
    match: str  # exact | prefix | namespace | fallback (how the slug found its metadata)
    catalog_entry: str | None  # the catalog slug whose metadata is used
    provider_id: str
    provider_source: str
    base_url: str
    base_url_reason: str
    bucket: str
    auth: str
    requirements: tuple[str, ...] = ()  # a ChatGPT workspace's managed requirements in force (lines)
    type: ClassVar[str] = "model_resolved"


class ModelRequest(EventMsg, eq=False):
    """One HTTP attempt on a route of the route table (no headers, no bodies)."""

    route: str
    bucket: str
    method: str
    url: str
    attempt: int
    status: int | None
    error: str | None
    duration_ms: float | None
    local: dict[str, Any] | None = None  # in-process models: tokens evaluated/reused, first-token time
    type: ClassVar[str] = "model_request"


class ToolDecision(EventMsg, eq=False):
    """The policy/sandbox/approval decision for one command before it ran (or did not)."""

    call_id: str
    tool: str
    verdict: Literal["run", "ask", "reject"]
    sandbox: str  # landlock | bubblewrap | none
    approval: str | None
    reason: str
    type: ClassVar[str] = "tool_decision"


class TaskStarted(EventMsg, eq=False):
    turn_id: str
    model_context_window: int | None
    type: ClassVar[str] = "task_started"


class TaskComplete(EventMsg, eq=False):
    turn_id: str
    last_agent_message: str | None
    type: ClassVar[str] = "task_complete"


class TurnAborted(EventMsg, eq=False):
    turn_id: str
    reason: str  # "interrupted"
    type: ClassVar[str] = "turn_aborted"


class UserMessage(EventMsg, eq=False):
    message: str
    type: ClassVar[str] = "user_message"


class AgentMessageDelta(EventMsg, eq=False):
    delta: str
    type: ClassVar[str] = "agent_message_delta"


class AgentMessage(EventMsg, eq=False):
    message: str
    type: ClassVar[str] = "agent_message"


class AgentReasoningDelta(EventMsg, eq=False):
    delta: str
    type: ClassVar[str] = "agent_reasoning_delta"


class AgentReasoning(EventMsg, eq=False):
    text: str
    type: ClassVar[str] = "agent_reasoning"


class ExecCommandBegin(EventMsg, eq=False):
    call_id: str
    command: list[str]
    cwd: str
    type: ClassVar[str] = "exec_command_begin"


class ExecCommandOutputDelta(EventMsg, eq=False):
    call_id: str
    stream: str  # stdout | stderr
    chunk: str
    type: ClassVar[str] = "exec_command_output_delta"


class ExecCommandEnd(EventMsg, eq=False):
    call_id: str
    command: list[str]
    cwd: str
    exit_code: int
    duration_ms: int
    aggregated_output: str
    formatted_output: str
    status: str = "completed"  # completed | failed | declined
    sandbox_denied: bool = False
    type: ClassVar[str] = "exec_command_end"


class ExecApprovalRequest(EventMsg, eq=False):
    """Answer with ``ExecApproval(id=call_id, decision)``: approved | approved_for_session (this
    prefix, this workspace, this session) | approved_for_workspace (persisted as a rule scoped to
    this workspace) | denied | abort (stop the turn)."""

    call_id: str
    turn_id: str
    command: list[str]
    cwd: str
    reason: str | None
    proposed_prefix: list[str]
    type: ClassVar[str] = "exec_approval_request"


class ApplyPatchApprovalRequest(EventMsg, eq=False):
    call_id: str
    turn_id: str
    changes: dict[str, dict[str, Any]]
    reason: str | None
    type: ClassVar[str] = "apply_patch_approval_request"


class PatchApplyBegin(EventMsg, eq=False):
    call_id: str
    changes: dict[str, dict[str, Any]]
    auto_approved: bool = True
    type: ClassVar[str] = "patch_apply_begin"


class PatchApplyEnd(EventMsg, eq=False):
    call_id: str
    success: bool
    stdout: str
    stderr: str
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    type: ClassVar[str] = "patch_apply_end"


class PlanUpdate(EventMsg, eq=False):
    explanation: str | None
    plan: list[dict[str, str]]
    type: ClassVar[str] = "plan_update"


class WebSearchBegin(EventMsg, eq=False):
    call_id: str
    type: ClassVar[str] = "web_search_begin"


class WebSearchEnd(EventMsg, eq=False):
    call_id: str
    query: str
    action: dict[str, Any] | None = None
    type: ClassVar[str] = "web_search_end"


class ToolCallEnd(EventMsg, eq=False):
    """A tool without a dedicated event (read_file, list_dir, …) finished: for traces and UIs."""

    call_id: str
    tool: str
    success: bool
    duration_ms: int
    output_bytes: int
    type: ClassVar[str] = "tool_call_end"


class McpStartupUpdate(EventMsg, eq=False):
    """One MCP server's start-up state: ``{"state": "starting"|"ready"|"failed"|"cancelled"}``
    (failed adds ``error``: the reason and the server's last stderr lines)."""

    server: str
    status: dict[str, Any]
    type: ClassVar[str] = "mcp_startup_update"


class McpStartupComplete(EventMsg, eq=False):
    """Every configured server has started or failed: ``failed`` is ``[{server, error}]``."""

    ready: list[str]
    failed: list[dict[str, str]]
    cancelled: list[str]
    type: ClassVar[str] = "mcp_startup_complete"


class CollabToolCallBegin(EventMsg, eq=False):
    """A collaboration tool call (``multi_agent_v1``) started: ``tool`` is upstream's short name
    (``spawn_agent``, ``send_input``, ``wait``, ``close_agent``, ``resume_agent``)."""

    call_id: str
    tool: str
    sender_thread_id: str
    receiver_thread_ids: list[str]
    prompt: str | None
    type: ClassVar[str] = "collab_tool_call_begin"


class CollabToolCallEnd(EventMsg, eq=False):
    """It ended: ``agents_states`` maps each agent id to ``{status, message}``."""

    call_id: str
    tool: str
    sender_thread_id: str
    receiver_thread_ids: list[str]
    prompt: str | None
    agents_states: dict[str, dict[str, Any]]
    success: bool = True
    type: ClassVar[str] = "collab_tool_call_end"


class AgentTeamEvent(EventMsg, eq=False):
    """``multi_agent_v2`` traffic, for front ends and traces (not in ``exec --json``: 0.169 shows
    only waits there): ``kind`` is ``spawn``, ``task``, ``message``, ``interrupt`` or ``answer``;
    ``author`` and ``recipient`` are task paths (``/root/worker``); ``text`` what was sent."""

    kind: str
    author: str
    recipient: str
    text: str | None = None
    type: ClassVar[str] = "agent_team_event"


class McpToolCallBegin(EventMsg, eq=False):
    """``invocation`` is ``{server, tool, arguments}`` (the tool's own name, not the model's)."""

    call_id: str
    invocation: dict[str, Any]
    type: ClassVar[str] = "mcp_tool_call_begin"


class McpToolCallEnd(EventMsg, eq=False):
    """``result`` is ``{"Ok": CallToolResult}`` or ``{"Err": message}``; ``duration`` is
    ``{secs, nanos}`` — upstream's serialization of both."""

    call_id: str
    invocation: dict[str, Any]
    duration: dict[str, int]
    result: dict[str, Any]
    type: ClassVar[str] = "mcp_tool_call_end"

    @property
    def ok(self) -> bool:
        ok = self.result.get("Ok")
        return isinstance(ok, dict) and not ok.get("isError")


class McpListToolsResponse(EventMsg, eq=False):
    """Each configured MCP server: ``{name, state, error, transport, tools, ready_after_ms}``."""

    servers: list[dict[str, Any]]
    type: ClassVar[str] = "mcp_list_tools_response"


class ElicitationRequest(EventMsg, eq=False):
    """An MCP server asks the user something mid-call (``elicitation/create``); answered with
    ``Op`` ``ResolveElicitation``. Front ends that cannot ask decline."""

    server_name: str
    id: str
    message: str
    requested_schema: dict[str, Any] | None = None
    type: ClassVar[str] = "elicitation_request"


class TokenCount(EventMsg, eq=False):
    info: dict[str, Any] | None
    rate_limits: dict[str, Any] | None = None
    type: ClassVar[str] = "token_count"


class ContextUsage(EventMsg, eq=False):
    """Estimated size of the next request, before it is sent."""

    estimated_tokens: int
    context_window: int | None
    auto_compact_limit: int | None
    type: ClassVar[str] = "context_usage"


class ContextCompacted(EventMsg, eq=False):
    strategy: str  # remote | inline | local | trim
    reason: str  # auto | manual | overflow
    tokens_before: int
    tokens_after: int
    trimmed_outputs: int = 0
    type: ClassVar[str] = "context_compacted"


class StreamError(EventMsg, eq=False):
    message: str
    codex_error_info: str = "response_stream_disconnected"
    additional_details: str | None = None
    type: ClassVar[str] = "stream_error"


class ErrorEvent(EventMsg, eq=False):
    """A failure the front end must show (the turn still ends with task_complete)."""

    message: str
    codex_error_info: str = "other"
    type: ClassVar[str] = "error"


class WarningEvent(EventMsg, eq=False):
    """Something worth knowing that did not stop anything."""

    message: str
    type: ClassVar[str] = "warning"


class ThreadRolledBack(EventMsg, eq=False):
    num_turns: int
    type: ClassVar[str] = "thread_rolled_back"


class ThreadForked(EventMsg, eq=False):
    thread_id: str
    rollout_path: str | None
    type: ClassVar[str] = "thread_forked"


class RequestUserInput(EventMsg, eq=False):
    """The model asks the user (``request_user_input``); answered with ``UserInputAnswer``."""

    call_id: str
    turn_id: str
    questions: list[dict[str, Any]]
    type: ClassVar[str] = "request_user_input"


class ShutdownComplete(EventMsg, eq=False):
    type: ClassVar[str] = "shutdown_complete"


class Event(Struct, frozen=True):
    """An event and the submission that caused it."""

    id: str  # the submission id that caused it
    msg: EventMsg

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "msg": self.msg.to_dict()}

"""The Op/Event protocol: the only thing front ends (exec, TUI, servers) speak to the core.

``Submission{id, op}`` goes in, ``Event{id, msg}`` comes out; ``msg`` kinds and their field names
follow upstream's ``EventMsg`` (snake_case ``type`` tags) so a JSON dump reads like Codex's.
Values are dataclasses treated as immutable; ``to_dict()`` gives the tagged JSON form. Event classes
are not ``frozen`` and skip generated ``__eq__``/``__hash__``/``__repr__``: dataclass code generation was
most of this module's import time, and the CLI must start fast. Ops stay frozen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

ReviewDecision = Literal["approved", "approved_for_session", "approved_for_workspace", "denied", "abort"]

# ---- Ops (front end → core) -------------------------------------------------------------------


@dataclass(frozen=True)
class UserInput:
    """One piece of user input: ``text``, ``image`` (URL / data URL) or ``local_image`` (path)."""

    type: str
    text: str = ""
    image_url: str = ""
    path: str = ""


@dataclass(frozen=True)
class UserTurn:
    """Start a turn with these inputs (settings are the session's unless given). While a turn
    runs, ``when="steer"`` adds the input to it (sent with its next request, as upstream does with
    text typed mid-turn); ``when="queue"`` starts a turn of its own once the running one ends."""

    items: tuple[UserInput, ...]
    final_output_json_schema: dict[str, Any] | None = None
    when: Literal["steer", "queue"] = "steer"
    kind: ClassVar[str] = "user_turn"


@dataclass(frozen=True)
class Interrupt:
    """Stop the running turn (running commands are killed, unanswered calls answered ``aborted``)."""

    kind: ClassVar[str] = "interrupt"


@dataclass(frozen=True)
class ExecApproval:
    """The answer to an ``exec_approval_request``."""

    id: str
    decision: ReviewDecision
    kind: ClassVar[str] = "exec_approval"


@dataclass(frozen=True)
class PatchApproval:
    """The answer to an ``apply_patch_approval_request``."""

    id: str
    decision: ReviewDecision
    kind: ClassVar[str] = "patch_approval"


@dataclass(frozen=True)
class Shutdown:
    """Stop the turn, close the session, then ``shutdown_complete``."""

    kind: ClassVar[str] = "shutdown"


@dataclass(frozen=True)
class Compact:
    """Compact the conversation now (``/compact``)."""

    kind: ClassVar[str] = "compact"


@dataclass(frozen=True)
class OverrideTurnContext:
    """Settings for the turns that follow (``/model``, ``/approvals``): each given one replaces the
    session's; answered with a fresh ``session_configured``."""

    model: str | None = None
    effort: str | None = None
    approval_policy: str | None = None
    sandbox_mode: str | None = None
    cwd: str | None = None  # an existing directory: the next turns (and their sandbox) run there
    kind: ClassVar[str] = "override_turn_context"


@dataclass(frozen=True)
class ThreadRollback:
    """Drop the last ``num_turns`` user turns (each from the user's message on) from the history;
    recorded, so a resumed session has them dropped too. Only between turns."""

    num_turns: int
    kind: ClassVar[str] = "thread_rollback"


@dataclass(frozen=True)
class UserInputAnswer:
    """The answer to a ``request_user_input`` event: question id → the chosen option's label (or
    the user's own words)."""

    id: str  # the request's call id
    answers: dict[str, str]
    kind: ClassVar[str] = "user_input_answer"


@dataclass(frozen=True)
class ResolveElicitation:
    """The answer to an ``elicitation_request``: ``accept`` (with ``content``), ``decline`` or ``cancel``."""

    server_name: str
    id: str
    decision: Literal["accept", "decline", "cancel"]
    content: dict[str, Any] | None = None
    kind: ClassVar[str] = "resolve_elicitation"


@dataclass(frozen=True)
class ListMcpTools:
    """Ask for the MCP servers' state and tools; answered with ``mcp_list_tools_response``."""

    kind: ClassVar[str] = "list_mcp_tools"


@dataclass(frozen=True)
class ForkThread:
    """Copy this conversation (less its last ``drop_turns`` turns) into a new thread with its own
    session file; answered with ``thread_forked``. Only between turns."""

    drop_turns: int = 0
    kind: ClassVar[str] = "fork_thread"


Op = (
    UserTurn | Interrupt | ExecApproval | PatchApproval | Shutdown | Compact | ThreadRollback | UserInputAnswer
    | ForkThread | OverrideTurnContext | ResolveElicitation | ListMcpTools
)  # fmt: skip

# ---- Events (core → front end) ----------------------------------------------------------------


@dataclass(eq=False, repr=False)
class EventMsg:
    """Base of every event the core emits; ``to_dict`` gives upstream's tagged JSON."""

    type: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"


@dataclass(eq=False, repr=False)
class SessionConfigured(EventMsg):
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


@dataclass(eq=False, repr=False)
class ModelResolved(EventMsg):
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
    type: ClassVar[str] = "model_resolved"


@dataclass(eq=False, repr=False)
class ModelRequest(EventMsg):
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


@dataclass(eq=False, repr=False)
class ToolDecision(EventMsg):
    """The policy/sandbox/approval decision for one command before it ran (or did not)."""

    call_id: str
    tool: str
    verdict: Literal["run", "ask", "reject"]
    sandbox: str  # landlock | bubblewrap | none
    approval: str | None
    reason: str
    type: ClassVar[str] = "tool_decision"


@dataclass(eq=False, repr=False)
class TaskStarted(EventMsg):
    turn_id: str
    model_context_window: int | None
    type: ClassVar[str] = "task_started"


@dataclass(eq=False, repr=False)
class TaskComplete(EventMsg):
    turn_id: str
    last_agent_message: str | None
    type: ClassVar[str] = "task_complete"


@dataclass(eq=False, repr=False)
class TurnAborted(EventMsg):
    turn_id: str
    reason: str  # "interrupted"
    type: ClassVar[str] = "turn_aborted"


@dataclass(eq=False, repr=False)
class UserMessage(EventMsg):
    message: str
    type: ClassVar[str] = "user_message"


@dataclass(eq=False, repr=False)
class AgentMessageDelta(EventMsg):
    delta: str
    type: ClassVar[str] = "agent_message_delta"


@dataclass(eq=False, repr=False)
class AgentMessage(EventMsg):
    message: str
    type: ClassVar[str] = "agent_message"


@dataclass(eq=False, repr=False)
class AgentReasoningDelta(EventMsg):
    delta: str
    type: ClassVar[str] = "agent_reasoning_delta"


@dataclass(eq=False, repr=False)
class AgentReasoning(EventMsg):
    text: str
    type: ClassVar[str] = "agent_reasoning"


@dataclass(eq=False, repr=False)
class ExecCommandBegin(EventMsg):
    call_id: str
    command: list[str]
    cwd: str
    type: ClassVar[str] = "exec_command_begin"


@dataclass(eq=False, repr=False)
class ExecCommandOutputDelta(EventMsg):
    call_id: str
    stream: str  # stdout | stderr
    chunk: str
    type: ClassVar[str] = "exec_command_output_delta"


@dataclass(eq=False, repr=False)
class ExecCommandEnd(EventMsg):
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


@dataclass(eq=False, repr=False)
class ExecApprovalRequest(EventMsg):
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


@dataclass(eq=False, repr=False)
class ApplyPatchApprovalRequest(EventMsg):
    call_id: str
    turn_id: str
    changes: dict[str, dict[str, Any]]
    reason: str | None
    type: ClassVar[str] = "apply_patch_approval_request"


@dataclass(eq=False, repr=False)
class PatchApplyBegin(EventMsg):
    call_id: str
    changes: dict[str, dict[str, Any]]
    auto_approved: bool = True
    type: ClassVar[str] = "patch_apply_begin"


@dataclass(eq=False, repr=False)
class PatchApplyEnd(EventMsg):
    call_id: str
    success: bool
    stdout: str
    stderr: str
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    type: ClassVar[str] = "patch_apply_end"


@dataclass(eq=False, repr=False)
class PlanUpdate(EventMsg):
    explanation: str | None
    plan: list[dict[str, str]]
    type: ClassVar[str] = "plan_update"


@dataclass(eq=False, repr=False)
class WebSearchBegin(EventMsg):
    call_id: str
    type: ClassVar[str] = "web_search_begin"


@dataclass(eq=False, repr=False)
class WebSearchEnd(EventMsg):
    call_id: str
    query: str
    action: dict[str, Any] | None = None
    type: ClassVar[str] = "web_search_end"


@dataclass(eq=False, repr=False)
class ToolCallEnd(EventMsg):
    """A tool without a dedicated event (read_file, list_dir, …) finished: for traces and UIs."""

    call_id: str
    tool: str
    success: bool
    duration_ms: int
    output_bytes: int
    type: ClassVar[str] = "tool_call_end"


@dataclass(eq=False, repr=False)
class McpStartupUpdate(EventMsg):
    """One MCP server's start-up state: ``{"state": "starting"|"ready"|"failed"|"cancelled"}``
    (failed adds ``error``: the reason and the server's last stderr lines)."""

    server: str
    status: dict[str, Any]
    type: ClassVar[str] = "mcp_startup_update"


@dataclass(eq=False, repr=False)
class McpStartupComplete(EventMsg):
    """Every configured server has started or failed: ``failed`` is ``[{server, error}]``."""

    ready: list[str]
    failed: list[dict[str, str]]
    cancelled: list[str]
    type: ClassVar[str] = "mcp_startup_complete"


@dataclass(eq=False, repr=False)
class CollabToolCallBegin(EventMsg):
    """A collaboration tool call (``multi_agent_v1``) started: ``tool`` is upstream's short name
    (``spawn_agent``, ``send_input``, ``wait``, ``close_agent``, ``resume_agent``)."""

    call_id: str
    tool: str
    sender_thread_id: str
    receiver_thread_ids: list[str]
    prompt: str | None
    type: ClassVar[str] = "collab_tool_call_begin"


@dataclass(eq=False, repr=False)
class CollabToolCallEnd(EventMsg):
    """It ended: ``agents_states`` maps each agent id to ``{status, message}``."""

    call_id: str
    tool: str
    sender_thread_id: str
    receiver_thread_ids: list[str]
    prompt: str | None
    agents_states: dict[str, dict[str, Any]]
    success: bool = True
    type: ClassVar[str] = "collab_tool_call_end"


@dataclass(eq=False, repr=False)
class McpToolCallBegin(EventMsg):
    """``invocation`` is ``{server, tool, arguments}`` (the tool's own name, not the model's)."""

    call_id: str
    invocation: dict[str, Any]
    type: ClassVar[str] = "mcp_tool_call_begin"


@dataclass(eq=False, repr=False)
class McpToolCallEnd(EventMsg):
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


@dataclass(eq=False, repr=False)
class McpListToolsResponse(EventMsg):
    """Each configured MCP server: ``{name, state, error, transport, tools, ready_after_ms}``."""

    servers: list[dict[str, Any]]
    type: ClassVar[str] = "mcp_list_tools_response"


@dataclass(eq=False, repr=False)
class ElicitationRequest(EventMsg):
    """An MCP server asks the user something mid-call (``elicitation/create``); answered with
    ``Op`` ``ResolveElicitation``. Front ends that cannot ask decline."""

    server_name: str
    id: str
    message: str
    requested_schema: dict[str, Any] | None = None
    type: ClassVar[str] = "elicitation_request"


@dataclass(eq=False, repr=False)
class TokenCount(EventMsg):
    info: dict[str, Any] | None
    rate_limits: dict[str, Any] | None = None
    type: ClassVar[str] = "token_count"


@dataclass(eq=False, repr=False)
class ContextUsage(EventMsg):
    """Estimated size of the next request, before it is sent."""

    estimated_tokens: int
    context_window: int | None
    auto_compact_limit: int | None
    type: ClassVar[str] = "context_usage"


@dataclass(eq=False, repr=False)
class ContextCompacted(EventMsg):
    strategy: str  # remote | inline | local | trim
    reason: str  # auto | manual | overflow
    tokens_before: int
    tokens_after: int
    trimmed_outputs: int = 0
    type: ClassVar[str] = "context_compacted"


@dataclass(eq=False, repr=False)
class StreamError(EventMsg):
    message: str
    codex_error_info: str = "response_stream_disconnected"
    additional_details: str | None = None
    type: ClassVar[str] = "stream_error"


@dataclass(eq=False, repr=False)
class ErrorEvent(EventMsg):
    """A failure the front end must show (the turn still ends with task_complete)."""

    message: str
    codex_error_info: str = "other"
    type: ClassVar[str] = "error"


@dataclass(eq=False, repr=False)
class WarningEvent(EventMsg):
    """Something worth knowing that did not stop anything."""

    message: str
    type: ClassVar[str] = "warning"


@dataclass(eq=False, repr=False)
class ThreadRolledBack(EventMsg):
    num_turns: int
    type: ClassVar[str] = "thread_rolled_back"


@dataclass(eq=False, repr=False)
class ThreadForked(EventMsg):
    thread_id: str
    rollout_path: str | None
    type: ClassVar[str] = "thread_forked"


@dataclass(eq=False, repr=False)
class RequestUserInput(EventMsg):
    """The model asks the user (``request_user_input``); answered with ``UserInputAnswer``."""

    call_id: str
    turn_id: str
    questions: list[dict[str, Any]]
    type: ClassVar[str] = "request_user_input"


@dataclass(eq=False, repr=False)
class ShutdownComplete(EventMsg):
    type: ClassVar[str] = "shutdown_complete"


@dataclass(frozen=True)
class Event:
    """An event and the submission that caused it."""

    id: str  # the submission id that caused it
    msg: EventMsg

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "msg": self.msg.to_dict()}

"""Core events → app-server v2 notifications (upstream 0.169's methods and item shapes).

One ``TurnMapper`` per thread follows the running turn: it numbers items, remembers the items of
the turn (``turn/completed`` carries them), and turns each core event into zero or more
``(method, params)`` notifications. Requests that need the client's answer (approvals, questions,
elicitations) are not mapped here: ``threads.py`` asks them.
"""

from __future__ import annotations

import time
from typing import Any

from codexbro import protocol as p
from codexbro.protocol.display import display_command

Note = tuple[str, dict[str, Any]]


def now_ms() -> int:
    return int(time.time() * 1000)


def token_breakdown(usage: dict[str, Any]) -> dict[str, int]:
    return {
        "totalTokens": int(usage.get("total_tokens", 0)), "inputTokens": int(usage.get("input_tokens", 0)),
        "cachedInputTokens": int(usage.get("cached_input_tokens", 0)), "cacheWriteInputTokens": 0,
        "outputTokens": int(usage.get("output_tokens", 0)),
        "reasoningOutputTokens": int(usage.get("reasoning_output_tokens", 0)),
    }  # fmt: skip


def _changes(changes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for path, change in changes.items():
        kind = str(change.get("type") or change.get("kind") or "update")
        diff = str(change.get("unified_diff") or change.get("content") or "")
        entry: dict[str, Any] = {"type": kind}
        if kind == "update":
            entry["move_path"] = change.get("move_path")
        out.append({"path": path, "kind": entry, "diff": diff})
    return out


class TurnMapper:
    """The running turn of one thread, as the client sees it."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        self.turn_id: str | None = None
        self.items: list[dict[str, Any]] = []
        self.started_at = 0.0
        self.error: str | None = None
        self._open: dict[str, dict[str, Any]] = {}  # call id → item in progress
        self._agent: dict[str, Any] | None = None
        self._reasoning: dict[str, Any] | None = None
        self._n = 0
        self.review: str | None = None  # review/start: the next turn is a review of this
        self._last_text = ""

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def _base(self) -> dict[str, Any]:
        return {"threadId": self.thread_id, "turnId": self.turn_id or ""}

    def _started(self, item: dict[str, Any]) -> Note:
        return "item/started", {"item": item, **self._base(), "startedAtMs": now_ms()}

    def _completed(self, item: dict[str, Any]) -> Note:
        self.items.append(item)
        return "item/completed", {"item": item, **self._base(), "completedAtMs": now_ms()}

    def turn(self, status: str) -> dict[str, Any]:
        turn: dict[str, Any] = {"id": self.turn_id or "", "items": list(self.items), "status": status,
                                "startedAt": int(self.started_at) or None}  # fmt: skip
        if status != "inProgress":
            turn["completedAt"] = int(time.time())
            turn["durationMs"] = int((time.time() - self.started_at) * 1000) if self.started_at else None
        if status == "failed" and self.error:
            turn["error"] = {"message": self.error}
        return turn

    def approval_started(self, msg: p.ExecApprovalRequest | p.ApplyPatchApprovalRequest) -> list[Note]:
        """Before an approval request, as upstream: the thread waits on approval, and the item it
        is about has started (its own begin event later does not start it again)."""
        notes: list[Note] = [("thread/status/changed", {"threadId": self.thread_id,
                              "status": {"type": "active", "activeFlags": ["waitingOnApproval"]}})]  # fmt: skip
        if msg.call_id in self._open:
            return notes
        item: dict[str, Any]
        if isinstance(msg, p.ExecApprovalRequest):
            command = display_command(msg.command)
            item = {"type": "commandExecution", "id": msg.call_id, "command": command, "cwd": msg.cwd,
                    "commandActions": actions(command), "status": "inProgress", "aggregatedOutput": None,
                    "exitCode": None, "durationMs": None, "source": "agent"}  # fmt: skip
        else:
            item = {
                "type": "fileChange",
                "id": msg.call_id,
                "changes": _changes(msg.changes),
                "status": "inProgress",
            }
        self._open[msg.call_id] = item
        return [*notes, self._started(dict(item))]

    def approval_resolved(self, request_id: int) -> list[Note]:
        return [("serverRequest/resolved", {"threadId": self.thread_id, "requestId": request_id}),
                ("thread/status/changed", {"threadId": self.thread_id, "status": {"type": "active", "activeFlags": []}})]  # fmt: skip

    def map(self, msg: p.EventMsg) -> list[Note]:
        item: dict[str, Any]
        pending: dict[str, Any] | None
        if isinstance(msg, p.TaskStarted):
            self.turn_id, self.items, self.error, self.started_at = msg.turn_id, [], None, time.time()
            self._open.clear()
            self._last_text = ""
            return [("thread/status/changed", {"threadId": self.thread_id, "status": {"type": "active", "activeFlags": []}}),
                    ("turn/started", {"threadId": self.thread_id, "turn": self.turn("inProgress")})]  # fmt: skip
        if self.turn_id is None:
            return []
        if isinstance(msg, p.UserMessage):
            if self.review is not None:  # a review turn shows its mode, not the review prompt
                item = {"type": "enteredReviewMode", "id": self._id("review"), "review": self.review}
                return [self._started(item), self._completed(item)]
            item = {"type": "userMessage", "id": self._id("user"),
                    "content": [{"type": "text", "text": msg.message, "text_elements": []}]}  # fmt: skip
            return [self._started(item), self._completed(item)]
        if isinstance(msg, p.AgentMessageDelta):
            notes: list[Note] = []
            if self._agent is None:
                self._agent = {"type": "agentMessage", "id": self._id("msg"), "text": ""}
                notes.append(self._started(dict(self._agent)))
            self._agent["text"] += msg.delta
            notes.append(
                ("item/agentMessage/delta", {**self._base(), "itemId": self._agent["id"], "delta": msg.delta})
            )
            return notes
        if isinstance(msg, p.AgentMessage):
            pending, self._agent = self._agent, None
            notes = []
            if pending is None:
                pending = {"type": "agentMessage", "id": self._id("msg"), "text": ""}
                notes.append(self._started(dict(pending)))
            item = pending
            item["text"] = msg.message
            self._last_text = msg.message
            return [*notes, self._completed(item)]
        if isinstance(msg, p.AgentReasoningDelta):
            notes = []
            if self._reasoning is None:
                self._reasoning = {"type": "reasoning", "id": self._id("rs"), "summary": [""], "content": []}
                notes.append(self._started(dict(self._reasoning, summary=[])))
            self._reasoning["summary"][0] += msg.delta
            notes.append(("item/reasoning/summaryTextDelta",
                          {**self._base(), "itemId": self._reasoning["id"], "delta": msg.delta, "summaryIndex": 0}))  # fmt: skip
            return notes
        if isinstance(msg, p.AgentReasoning):
            pending, self._reasoning = self._reasoning, None
            notes = []
            if pending is None:
                pending = {"type": "reasoning", "id": self._id("rs"), "summary": [], "content": []}
                notes.append(self._started(dict(pending)))
            item = pending
            item["summary"] = [msg.text]
            return [*notes, self._completed(item)]
        if isinstance(msg, p.ExecCommandBegin):
            if msg.call_id in self._open:  # started when its approval was asked
                return []
            command = display_command(msg.command)
            item = {"type": "commandExecution", "id": msg.call_id, "command": command, "source": "agent",
                    "commandActions": actions(command), "cwd": msg.cwd, "status": "inProgress",
                    "aggregatedOutput": None, "exitCode": None, "durationMs": None}  # fmt: skip
            self._open[msg.call_id] = item
            return [self._started(dict(item))]
        if isinstance(msg, p.ExecCommandOutputDelta):
            return [
                (
                    "item/commandExecution/outputDelta",
                    {**self._base(), "itemId": msg.call_id, "delta": msg.chunk},
                )
            ]
        if isinstance(msg, p.ExecCommandEnd):
            item = self._open.pop(msg.call_id, {}) or {
                "type": "commandExecution", "id": msg.call_id, "command": display_command(msg.command),
                "commandActions": [], "cwd": "", }  # fmt: skip
            status = (
                "completed" if msg.exit_code == 0 else ("declined" if msg.status == "declined" else "failed")
            )
            item.update(status=status, aggregatedOutput=msg.aggregated_output, exitCode=msg.exit_code,
                        durationMs=msg.duration_ms)  # fmt: skip
            return [self._completed(item)]
        if isinstance(msg, p.PatchApplyBegin):
            if msg.call_id in self._open:
                return []
            item = {
                "type": "fileChange",
                "id": msg.call_id,
                "changes": _changes(msg.changes),
                "status": "inProgress",
            }
            self._open[msg.call_id] = item
            return [self._started(dict(item))]
        if isinstance(msg, p.PatchApplyEnd):
            item = self._open.pop(msg.call_id, {}) or {"type": "fileChange", "id": msg.call_id,
                                                         "changes": _changes(msg.changes)}  # fmt: skip
            item["status"] = "completed" if msg.success else "failed"
            return [self._completed(item)]
        if isinstance(msg, p.McpToolCallBegin):
            inv = msg.invocation
            item = {"type": "mcpToolCall", "id": msg.call_id, "server": inv.get("server"), "tool": inv.get("tool"),
                    "arguments": inv.get("arguments"), "status": "inProgress", "result": None, "error": None}  # fmt: skip
            self._open[msg.call_id] = item
            return [self._started(dict(item))]
        if isinstance(msg, p.McpToolCallEnd):
            inv = msg.invocation
            item = self._open.pop(msg.call_id, {}) or {"type": "mcpToolCall", "id": msg.call_id,
                "server": inv.get("server"), "tool": inv.get("tool"), "arguments": inv.get("arguments")}  # fmt: skip
            ok = msg.result.get("Ok")
            if isinstance(ok, dict):
                item.update(status="failed" if ok.get("isError") else "completed", error=None,
                            result={"content": ok.get("content") or [], "structuredContent": ok.get("structuredContent")})  # fmt: skip
            else:
                item.update(status="failed", result=None, error={"message": str(msg.result.get("Err"))})
            item["durationMs"] = msg.duration["secs"] * 1000 + msg.duration["nanos"] // 1_000_000
            return [self._completed(item)]
        if isinstance(msg, p.WebSearchBegin):
            item = {"type": "webSearch", "id": msg.call_id, "query": ""}
            self._open[msg.call_id] = item
            return [self._started(dict(item))]
        if isinstance(msg, p.WebSearchEnd):
            item = self._open.pop(msg.call_id, {}) or {"type": "webSearch", "id": msg.call_id}
            item["query"] = msg.query
            return [self._completed(item)]
        if isinstance(msg, p.PlanUpdate):
            return [("turn/plan/updated", {**self._base(), "explanation": msg.explanation,
                     "plan": [{"step": s.get("step", ""), "status": _plan_status(s.get("status"))} for s in msg.plan]})]  # fmt: skip
        if isinstance(msg, p.ContextCompacted):
            item = {"type": "contextCompaction", "id": self._id("compact")}
            return [self._started(dict(item)), self._completed(item),
                    ("thread/compacted", {"threadId": self.thread_id, "turnId": self.turn_id})]  # fmt: skip
        if isinstance(msg, p.TokenCount) and msg.info:
            usage = {"total": token_breakdown(msg.info.get("total_token_usage") or {}),
                     "last": token_breakdown(msg.info.get("last_token_usage") or {}),
                     "modelContextWindow": msg.info.get("model_context_window")}  # fmt: skip
            return [("thread/tokenUsage/updated", {**self._base(), "tokenUsage": usage})]
        if isinstance(msg, p.StreamError):
            detail = msg.additional_details
            return [("error", {**self._base(), "willRetry": True,
                               "error": {"message": msg.message, "additionalDetails": detail}})]  # fmt: skip
        if isinstance(msg, p.ErrorEvent):
            self.error = msg.message
            return [("error", {**self._base(), "willRetry": False, "error": {"message": msg.message}})]
        if isinstance(msg, p.TaskComplete | p.TurnAborted):
            status = (
                "interrupted" if isinstance(msg, p.TurnAborted) else ("failed" if self.error else "completed")
            )
            for item in self._open.values():  # whatever was still running ended with the turn
                item["status"] = "failed"
                self.items.append(item)
            self._open.clear()
            notes = []
            if self.review is not None:
                review_item = {
                    "type": "exitedReviewMode",
                    "id": self._id("review"),
                    "review": self._last_text,
                }
                notes = [self._started(dict(review_item)), self._completed(review_item)]
                self.review = None
            turn = self.turn(status)
            self.turn_id = None
            return [*notes, ("thread/status/changed", {"threadId": self.thread_id, "status": {"type": "idle"}}),
                    ("turn/completed", {"threadId": self.thread_id, "turn": turn})]  # fmt: skip
        return []


def actions(command: str) -> list[dict[str, Any]]:
    """What a command does, as upstream's ``commandActions`` (codexbro does not parse commands into
    reads/searches/listings: every command is one ``unknown`` action)."""
    inner = command
    for prefix in ("/bin/bash -lc ", "/bin/bash -c ", "bash -lc ", "bash -c "):
        if command.startswith(prefix):
            import shlex

            try:
                inner = shlex.split(command[len(prefix) :])[0]
            except (ValueError, IndexError):
                inner = command[len(prefix) :]
            break
    return [{"type": "unknown", "command": inner}]


def _plan_status(status: Any) -> str:
    return {"in_progress": "inProgress", "completed": "completed"}.get(str(status), "pending")

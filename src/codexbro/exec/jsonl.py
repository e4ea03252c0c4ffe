"""``exec --json``: core events → upstream's JSONL thread-event schema, one compact JSON object
per stdout line (serialised as upstream: no spaces).

As Codex 0.169 observed (``tests/test_exec_json.py``):
- an ``exec_command`` session continued by ``write_stdin`` is one ``command_execution`` item,
  started once and completed once under the same id, with the whole aggregated output;
- a command still running when the turn ends stays open; when exec exits it is completed with the
  output captured so far and its final status (Codex 0.169 never completes it — beyond upstream);
- a stream reconnect is a top-level ``error`` event (``Reconnecting... 1/5 (stream disconnected
  before completion: …)``), not an item;
- ``web_search`` is started (empty query, ``action: {"type": "other"}``) and completed (query and
  action). Its object carries ``id`` twice — the item id, then the search call's id — exactly as
  Codex 0.169 serialises it (a JSON parser keeps the last).

Different on purpose: an item still running when a turn is *interrupted* is completed with status
``failed`` (its process was killed), never reported as ``completed``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from codexbro import protocol as p
from codexbro.protocol.display import display_command


class JsonlProcessor:
    """Turns events into upstream's ``exec --json`` lines."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._next_id = 0
        self._running: dict[str, dict[str, Any]] = {}  # call_id -> item in progress
        self._todo: dict[str, Any] | None = None
        self._searches: dict[str, str] = {}  # web search call id -> item id
        self._usage: dict[str, int] = {}
        self.turn_error: str | None = None
        self.last_message: str | None = None

    def _id(self) -> str:
        item_id = f"item_{self._next_id}"
        self._next_id += 1
        return item_id

    def _emit(self, obj: dict[str, Any]) -> None:
        self._write(_dumps(obj))

    def _item(self, kind: str, item: dict[str, Any]) -> None:
        self._emit({"type": kind, "item": item})

    def process(self, event: p.Event) -> None:
        msg = event.msg
        if isinstance(msg, p.SessionConfigured):
            self._emit({"type": "thread.started", "thread_id": msg.session_id})
        elif isinstance(msg, p.TaskStarted):
            self.turn_error = None
            self._emit({"type": "turn.started"})
        elif isinstance(msg, p.AgentMessage):
            self.last_message = msg.message
            self._item("item.completed", {"id": self._id(), "type": "agent_message", "text": msg.message})
        elif isinstance(msg, p.AgentReasoning):
            self._item("item.completed", {"id": self._id(), "type": "reasoning", "text": msg.text})
        elif isinstance(msg, p.ExecCommandBegin):
            item: dict[str, Any] = {
                "id": self._id(),
                "type": "command_execution",
                "command": display_command(msg.command),
                "aggregated_output": "",
                "exit_code": None,
                "status": "in_progress",
            }
            self._running[msg.call_id] = item
            self._item("item.started", item)
        elif isinstance(msg, p.ExecCommandEnd):
            item = self._take(msg.call_id) or {
                "id": self._id(),
                "type": "command_execution",
                "command": display_command(msg.command),
            }
            item = {
                **item,
                "aggregated_output": msg.aggregated_output,
                "exit_code": msg.exit_code,
                "status": "completed"
                if msg.exit_code == 0
                else ("declined" if msg.status == "declined" else "failed"),
            }
            self._item("item.completed", item)
        elif isinstance(msg, p.PatchApplyBegin):
            item = {
                "id": self._id(),
                "type": "file_change",
                "changes": _changes(msg.changes),
                "status": "in_progress",
            }
            self._running[msg.call_id] = item
            self._item("item.started", item)
        elif isinstance(msg, p.PatchApplyEnd):
            item = self._take(msg.call_id) or {
                "id": self._id(),
                "type": "file_change",
                "changes": _changes(msg.changes),
            }
            self._item("item.completed", {**item, "status": "completed" if msg.success else "failed"})
        elif isinstance(msg, p.CollabToolCallBegin):  # as 0.169's exec --json (fixture multi-agent-exec)
            item = {"id": self._id(), "type": "collab_tool_call", "tool": msg.tool,
                    "sender_thread_id": msg.sender_thread_id, "receiver_thread_ids": list(msg.receiver_thread_ids),
                    "prompt": msg.prompt, "agents_states": {}, "status": "in_progress"}  # fmt: skip
            self._running[msg.call_id] = item
            self._item("item.started", item)
        elif isinstance(msg, p.CollabToolCallEnd):
            item = self._take(msg.call_id) or {"id": self._id(), "type": "collab_tool_call", "tool": msg.tool,
                                               "sender_thread_id": msg.sender_thread_id, "prompt": msg.prompt}  # fmt: skip
            self._item("item.completed", {**item, "receiver_thread_ids": list(msg.receiver_thread_ids),
                                          "agents_states": msg.agents_states,
                                          "status": "completed" if msg.success else "failed"})  # fmt: skip
        elif isinstance(msg, p.McpToolCallBegin):
            item = {"id": self._id(), "type": "mcp_tool_call", **_invocation(msg.invocation),
                    "result": None, "error": None, "status": "in_progress"}  # fmt: skip
            self._running[msg.call_id] = item
            self._item("item.started", item)
        elif isinstance(msg, p.McpToolCallEnd):
            item = self._take(msg.call_id) or {"id": self._id(), "type": "mcp_tool_call",
                                               **_invocation(msg.invocation)}  # fmt: skip
            ok = msg.result.get("Ok")
            if isinstance(ok, dict):
                result = {
                    "content": ok.get("content") or [],
                    "structured_content": ok.get("structuredContent"),
                }
                item = {
                    **item,
                    "result": result,
                    "error": None,
                    "status": "failed" if ok.get("isError") else "completed",
                }
            else:
                item = {
                    **item,
                    "result": None,
                    "error": {"message": str(msg.result.get("Err"))},
                    "status": "failed",
                }
            self._item("item.completed", item)
        elif isinstance(msg, p.PlanUpdate):
            items = [
                {"text": s.get("step", ""), "completed": s.get("status") == "completed"} for s in msg.plan
            ]
            if self._todo is None:
                self._todo = {"id": self._id(), "type": "todo_list", "items": items}
                self._item("item.started", self._todo)
            else:
                self._todo = {**self._todo, "items": items}
                self._item("item.updated", self._todo)
        elif isinstance(msg, p.WebSearchBegin):
            self._searches[msg.call_id] = self._id()
            self._web_search("item.started", self._searches[msg.call_id], msg.call_id, "", {"type": "other"})
        elif isinstance(msg, p.WebSearchEnd):
            item_id = self._searches.pop(msg.call_id, None) or self._id()
            action = msg.action or {"type": "search", "query": msg.query}
            self._web_search("item.completed", item_id, msg.call_id, msg.query, action)
        elif isinstance(msg, p.StreamError):
            text = msg.message + (f" ({msg.additional_details})" if msg.additional_details else "")
            self._emit({"type": "error", "message": text})
        elif isinstance(msg, p.WarningEvent):
            self._item("item.completed", {"id": self._id(), "type": "error", "message": msg.message})
        elif isinstance(msg, p.ErrorEvent):
            self.turn_error = msg.message
            self._emit({"type": "error", "message": msg.message})
        elif isinstance(msg, p.TokenCount) and msg.info:
            total = msg.info.get("total_token_usage") or {}
            self._usage = total
        elif isinstance(msg, p.TaskComplete):
            self._finish_todo()  # a command still running stays open (completed when exec exits)
            if self.turn_error is not None:
                self._emit({"type": "turn.failed", "error": {"message": self.turn_error}})
            else:
                self._emit({"type": "turn.completed", "usage": _usage(self._usage)})
        elif isinstance(msg, p.TurnAborted):
            self._finish_items()
            self.turn_error = "turn interrupted by the user"
            self._emit({"type": "turn.failed", "error": {"message": self.turn_error}})

    def _take(self, call_id: str) -> dict[str, Any] | None:
        return self._running.pop(call_id) if call_id in self._running else None

    def _web_search(self, kind: str, item_id: str, call_id: str, query: str, action: dict[str, Any]) -> None:
        body = _dumps({"query": query, "action": action})[1:]
        self._write(
            f'{{"type":"{kind}","item":{{"id":{_dumps(item_id)},"type":"web_search","id":{_dumps(call_id)},{body}}}'
        )

    def _finish_items(self) -> None:
        for item in self._running.values():
            self._item("item.completed", {**item, "status": "failed"})
        self._running.clear()
        self._finish_todo()

    def _finish_todo(self) -> None:
        if self._todo is not None:
            self._item("item.completed", self._todo)
            self._todo = None

    def finish(self) -> None:
        """Exec is exiting: anything still open is completed (failed: nothing says otherwise)."""
        self._finish_items()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _invocation(invocation: dict[str, Any]) -> dict[str, Any]:
    return {"server": invocation.get("server"), "tool": invocation.get("tool"),
            "arguments": invocation.get("arguments")}  # fmt: skip


def _changes(changes: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {"path": path, "kind": str(c.get("type") or c.get("kind") or "update")} for path, c in changes.items()
    ]


def _usage(total: dict[str, int]) -> dict[str, int]:
    return {
        "input_tokens": total.get("input_tokens", 0),
        "cached_input_tokens": total.get("cached_input_tokens", 0),
        "cache_write_input_tokens": 0,
        "output_tokens": total.get("output_tokens", 0),
        "reasoning_output_tokens": total.get("reasoning_output_tokens", 0),
    }

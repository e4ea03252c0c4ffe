"""``--trace FILE``: one JSON line per decision and exchange, from the core's events only.

Records (``kind``): ``model_resolution``, ``session``, ``turn_started``, ``request`` (route,
bucket, status, attempt, timing), ``usage``, ``stream_retry``, ``tool_decision`` (verdict, sandbox
backend, approval), ``approval_request``, ``command`` / ``patch`` / ``tool`` (what ran, result,
duration, output size), ``error``, ``turn_completed`` / ``turn_aborted``. Every line carries ``t``
(seconds since the trace began) and ``time`` (UTC).

No headers and no bodies are ever recorded, and every line passes through a redactor that removes
known secret values (the session's credential and environment values whose names look secret)
before it is written. The file is created with mode 0600 and flushed line by line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from codexbro import protocol as p

_SECRET_NAME = re.compile(r"(?i)(key|token|secret|passw|credential|auth)")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:api[-_]?key|key|token|access_token|sig|signature)=)[^&#\s\"]+")


class Redactor:
    """Replaces known secrets (the credential, planted environment values) in trace text."""

    def __init__(self, extra: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        values = {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 8}
        values |= {v for v in extra or [] if v and len(v) >= 4}
        self.secrets = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "<redacted>")
        return _QUERY_SECRET.sub(r"\1<redacted>", text)


class TraceWriter:
    """Writes the ``--trace`` JSONL file (0600), secrets redacted."""

    def __init__(self, path: Path, redactor: Redactor, *, sink: IO[str] | None = None) -> None:
        if sink is None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            sink = os.fdopen(fd, "w", encoding="utf-8", errors="replace")
        self._fh: IO[str] = sink
        self._redact = redactor
        self._path = path
        self._failed = False
        self._t0 = time.monotonic()

    def write(self, kind: str, **fields: Any) -> None:
        record = {
            "t": round(time.monotonic() - self._t0, 4),
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "kind": kind,
            **fields,
        }
        if self._failed:
            return
        try:
            self._fh.write(self._redact(json.dumps(record, ensure_ascii=False)) + "\n")
            self._fh.flush()
        except OSError as exc:  # disk full: the trace stops, the session goes on
            self._failed = True
            print(f"warning: the trace {self._path} stopped: {exc.strerror or exc}", file=sys.stderr)

    @classmethod
    def in_memory(cls, redactor: Redactor) -> TraceWriter:
        """A trace kept in memory (the TUI's ``/trace``); ``records()`` reads it back."""
        import io

        return cls(Path("<memory>"), redactor, sink=io.StringIO())

    def records(self) -> list[dict[str, Any]]:
        import io

        if not isinstance(self._fh, io.StringIO):
            return []
        return [json.loads(line) for line in self._fh.getvalue().splitlines() if line.strip()]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()

    def process(self, event: p.Event) -> None:
        msg = event.msg
        if isinstance(msg, p.ModelResolved):
            fields = msg.to_dict()
            fields.pop("type")
            self.write("model_resolution", **fields)
        elif isinstance(msg, p.SessionConfigured):
            self.write("session", session_id=msg.session_id, model=msg.model, provider=msg.model_provider_id,
                       cwd=msg.cwd, sandbox=msg.sandbox_policy, approval=msg.approval_policy,
                       resumed=msg.resumed)  # fmt: skip
        elif isinstance(msg, p.TaskStarted):
            self.write("turn_started", turn_id=msg.turn_id, context_window=msg.model_context_window)
        elif isinstance(msg, p.ModelRequest):
            self.write("request", route=msg.route, bucket=msg.bucket, method=msg.method, url=msg.url,
                       attempt=msg.attempt, status=msg.status, error=msg.error,
                       duration_ms=round(msg.duration_ms or 0, 1),
                       **({"local": msg.local} if msg.local else {}))  # fmt: skip
        elif isinstance(msg, p.TokenCount) and msg.info:
            self.write("usage", last=msg.info.get("last_token_usage"), total=msg.info.get("total_token_usage"),
                       context_window=msg.info.get("model_context_window"))  # fmt: skip
        elif isinstance(msg, p.ContextUsage):
            self.write("context", estimated_tokens=msg.estimated_tokens, context_window=msg.context_window,
                       auto_compact_limit=msg.auto_compact_limit)  # fmt: skip
        elif isinstance(msg, p.ContextCompacted):
            self.write("compaction", strategy=msg.strategy, reason=msg.reason, tokens_before=msg.tokens_before,
                       tokens_after=msg.tokens_after, trimmed_outputs=msg.trimmed_outputs)  # fmt: skip
        elif isinstance(msg, p.StreamError):
            self.write("stream_retry", message=msg.message, error_kind=msg.codex_error_info,
                       details=msg.additional_details)  # fmt: skip
        elif isinstance(msg, p.ToolDecision):
            self.write("tool_decision", call_id=msg.call_id, tool=msg.tool, verdict=msg.verdict,
                       sandbox=msg.sandbox, approval=msg.approval, reason=msg.reason)  # fmt: skip
        elif isinstance(msg, p.ExecApprovalRequest):
            self.write("approval_request", call_id=msg.call_id, what="command", command=msg.command,
                       reason=msg.reason, prefix=msg.proposed_prefix)  # fmt: skip
        elif isinstance(msg, p.ApplyPatchApprovalRequest):
            self.write("approval_request", call_id=msg.call_id, what="patch", paths=sorted(msg.changes),
                       reason=msg.reason)  # fmt: skip
        elif isinstance(msg, p.ExecCommandEnd):
            self.write("command", call_id=msg.call_id, command=msg.command, cwd=msg.cwd, exit_code=msg.exit_code,
                       duration_ms=msg.duration_ms, status=msg.status, sandbox_denied=msg.sandbox_denied,
                       output_bytes=len(msg.aggregated_output.encode()))  # fmt: skip
        elif isinstance(msg, p.PatchApplyEnd):
            files = {path: c.get("type") for path, c in msg.changes.items()}
            self.write("patch", call_id=msg.call_id, success=msg.success, files=files)
        elif isinstance(msg, p.AgentTeamEvent):
            self.write("agent_team", action=msg.kind, author=msg.author, recipient=msg.recipient,
                       text_chars=len(msg.text or ""))  # fmt: skip
        elif isinstance(msg, p.ToolCallEnd):
            self.write("tool", call_id=msg.call_id, tool=msg.tool, success=msg.success,
                       duration_ms=msg.duration_ms, output_bytes=msg.output_bytes)  # fmt: skip
        elif isinstance(msg, p.ErrorEvent):
            self.write("error", message=msg.message, error_kind=msg.codex_error_info)
        elif isinstance(msg, p.WarningEvent):
            self.write("warning", message=msg.message)
        elif isinstance(msg, p.TaskComplete):
            self.write("turn_completed", turn_id=msg.turn_id,
                       last_message_chars=len(msg.last_agent_message or ""))  # fmt: skip
        elif isinstance(msg, p.TurnAborted):
            self.write("turn_aborted", turn_id=msg.turn_id, reason=msg.reason)

"""Rollouts: one JSONL file per session, upstream's line format, appended and flushed line by line.

``$CODEXBRO_HOME/sessions/YYYY/MM/DD/rollout-YYYY-MM-DDThh-mm-ss-<thread-uuid>.jsonl``; each line is
``{"timestamp", "type", "payload"}`` with ``type`` one of ``session_meta``, ``response_item``,
``event_msg``, ``turn_context``, ``compacted``. The file is created on the first write. Because every
line is flushed as it is written, a process killed mid-turn leaves a readable file: the loader
skips a torn last line, and history normalization answers unanswered tool calls with "aborted".
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from codexbro.api.events import ResponseItem
from codexbro.errors import UserError

# Event kinds persisted in upstream's default "limited" mode.
PERSISTED_EVENTS = frozenset(
    {
        "user_message", "agent_message", "agent_reasoning", "token_count", "context_compacted",
        "turn_aborted", "task_started", "task_complete", "thread_rolled_back",
    }
)  # fmt: skip


def new_thread_id() -> str:
    """A UUIDv7 (time-ordered), as upstream 0.169 uses for thread ids."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    h = f"{value:032x}"  # formatted by hand: importing uuid (and platform with it) costs ~2 ms at start-up
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{datetime.now(UTC).microsecond // 1000:03d}Z"


class RolloutRecorder:
    """Appends rollout lines; ``None`` path means ephemeral (nothing written)."""

    def __init__(self, home: Path, thread_id: str, *, path: Path | None = None, enabled: bool = True) -> None:
        self.enabled = enabled
        if path is None:
            now = time.localtime()
            path = (
                home
                / "sessions"
                / time.strftime("%Y/%m/%d", now)
                / f"rollout-{time.strftime('%Y-%m-%dT%H-%M-%S', now)}-{thread_id}.jsonl"
            )
        self.path = path
        self._fh: IO[str] | None = None

    def write(self, kind: str, payload: Any) -> None:
        if not self.enabled:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the session
            os.chmod(self.path, 0o600)
        line = json.dumps({"timestamp": _now_iso(), "type": kind, "payload": payload}, ensure_ascii=False)
        # One write call per line so a crash can tear at most the last line.
        self._fh.write(line + "\n")
        self._fh.flush()

    def item(self, item: ResponseItem) -> None:
        self.write("response_item", item)

    def event(self, msg: dict[str, Any]) -> None:
        if msg.get("type") in PERSISTED_EVENTS:
            self.write("event_msg", msg)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@dataclass
class LoadedRollout:
    path: Path
    thread_id: str
    meta: dict[str, Any]
    history: list[ResponseItem] = field(default_factory=list)
    last_turn_context: dict[str, Any] | None = None
    skipped_lines: int = 0


def read_lines(path: Path) -> Iterator[dict[str, Any] | None]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            raw = raw.strip()
            if not raw:
                continue
            try:
                doc = json.loads(raw)
            except ValueError:
                yield None
                continue
            yield doc if isinstance(doc, dict) else None


def load_rollout(path: Path) -> LoadedRollout:
    """Rebuild a session's history from its rollout (tolerating a torn last line)."""
    meta: dict[str, Any] | None = None
    history: list[ResponseItem] = []
    turn_context = None
    skipped = 0
    for doc in read_lines(path):
        if doc is None:
            skipped += 1
            continue
        kind, payload = doc.get("type"), doc.get("payload")
        if kind == "session_meta" and isinstance(payload, dict) and meta is None:
            meta = payload
        elif kind == "response_item" and isinstance(payload, dict):
            history.append(payload)
        elif kind == "compacted" and isinstance(payload, dict):
            replacement = payload.get("replacement_history")
            if isinstance(replacement, list):
                history = [i for i in replacement if isinstance(i, dict)]
        elif kind == "turn_context" and isinstance(payload, dict):
            turn_context = payload
    if meta is None or not isinstance(meta.get("id"), str):
        raise UserError(f"{path} is not a codexbro/Codex rollout (no session_meta line)")
    return LoadedRollout(path, meta["id"], meta, history, turn_context, skipped)


def find_rollout(home: Path, thread_id: str) -> Path:
    """The rollout of ``thread_id`` (a full id, or a unique prefix of at least 8 characters)."""
    root = home / "sessions"
    matches = sorted(root.glob("*/*/*/rollout-*.jsonl")) if root.is_dir() else []
    exact = [p for p in matches if p.stem.endswith(thread_id)]
    if exact:
        return exact[-1]
    if len(thread_id) >= 8:
        by_prefix = [
            p for p in matches if p.stem[len("rollout-YYYY-MM-DDThh-mm-ss-") :].startswith(thread_id)
        ]
        if len(by_prefix) == 1:
            return by_prefix[0]
        if len(by_prefix) > 1:
            raise UserError(f"session id prefix `{thread_id}` is ambiguous ({len(by_prefix)} sessions)")
    raise UserError(f"no session `{thread_id}` under {root}")


def latest_rollout(home: Path, cwd: Path | None) -> Path:
    """Newest rollout, restricted to sessions started in ``cwd`` unless ``cwd`` is None."""
    root = home / "sessions"
    files = sorted(root.glob("*/*/*/rollout-*.jsonl"), reverse=True) if root.is_dir() else []
    for path in files:
        if cwd is None:
            return path
        first = next(iter(read_lines(path)), None)
        payload = (first or {}).get("payload") or {}
        if first and first.get("type") == "session_meta" and payload.get("cwd") == str(cwd):
            return path
    where = "" if cwd is None else f" started in {cwd} (use --all to look everywhere)"
    raise UserError(f"no previous session{where} under {root}")

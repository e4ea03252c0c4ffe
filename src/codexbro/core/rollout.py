"""Rollouts: one JSONL file per session, upstream's line format, appended and flushed line by line.

``$CODEXBRO_HOME/sessions/YYYY/MM/DD/rollout-YYYY-MM-DDThh-mm-ss-<thread-uuid>.jsonl``; each line is
``{"timestamp", "type", "payload"}`` with ``type`` one of ``session_meta``, ``response_item``,
``event_msg``, ``turn_context``, ``compacted``. The file is created on the first write. Because every
line is flushed as it is written, a process killed mid-turn leaves a readable file: the loader
skips a torn last line, and history normalization answers unanswered tool calls with "aborted".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from msgspec import Struct, field

from codexbro import textsafe
from codexbro.api.events import ResponseItem
from codexbro.errors import CodexbroError, UserError

log = logging.getLogger(__name__)

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
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


TAIL_BYTES = 256 * 1024


def _tail_state(path: Path) -> tuple[int | None, str, bool]:
    """What appending must continue: the next ordinal (None for a file without them — Codex's
    older, unpaginated format, which codexbro also writes), the last timestamp, and whether the
    file ends with a newline (a torn last line does not)."""
    with open(path, "rb") as fh:
        first = fh.readline()
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - TAIL_BYTES))
        tail = fh.read()
    try:
        paginated = "ordinal" in json.loads(first)
    except ValueError:
        paginated = False
    ordinal: int | None = None
    stamp = ""
    for raw in reversed(tail.splitlines()):
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        stamp = stamp or str(doc.get("timestamp") or "")
        if paginated and isinstance(doc.get("ordinal"), int):
            ordinal = doc["ordinal"] + 1
        if stamp and (ordinal is not None or not paginated):
            break
    if paginated and ordinal is None:
        ordinal = sum(1 for _ in read_lines(path))  # the tail held no complete record: count
    return ordinal, stamp, tail.endswith(b"\n") or not tail


class RolloutWriteError(CodexbroError):
    """The rollout could not be written (disk full, permissions): the turn stops here."""


class RolloutRecorder:
    """Appends rollout lines; ``None`` path means ephemeral (nothing written).

    A write that fails (disk full, a read-only or vanished directory) raises
    :class:`RolloutWriteError` once and marks the recorder ``failed``: later writes are dropped (so
    reporting the error cannot fail again) until :meth:`resync`, which appends a ``compacted``
    record carrying the whole in-memory history — the file is consistent again, and resumable,
    whatever was lost in between. Lines go out with one ``write`` of bytes each, unbuffered, so a
    failed write is cut back off the file (a crash still tears at most the last line, which the
    next write closes off).

    Appending to an existing file continues that file's own format, so a session shared with
    upstream Codex stays resumable by it: Codex 0.169 numbers every record (``ordinal``) and refuses
    a paginated file whose last record has none, so codexbro numbers its records too in such a file
    (and writes none in an unnumbered one, as Codex itself does). Lines are compact JSON, as Codex
    writes them; timestamps never go backwards (a clock stepping back is clamped to the previous
    line's); a new file is created 0600.
    """

    def __init__(self, home: Path, thread_id: str, *, path: Path | None = None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.home = home
        self.thread_id = thread_id
        if path is None:
            now = time.localtime()
            path = (
                home
                / "sessions"
                / time.strftime("%Y/%m/%d", now)
                / f"rollout-{time.strftime('%Y-%m-%dT%H-%M-%S', now)}-{thread_id}.jsonl"
            )
        self.path = path
        self._fd: int | None = None
        self.failed: str | None = None  # why the last write failed; writes are dropped meanwhile
        self._torn = False
        self._ordinal: int | None = None
        self._last_stamp = ""
        self._meta: Any = None  # the session_meta payload: a file recreated on resync starts with it
        self._turn_context: Any = None
        # The session's whole history, for a file recreated after it was deleted mid-session.
        self.snapshot: Any = None  # Callable[[], list[ResponseItem]] | None
        self.on_turn_end: list[Any] = []  # callbacks(recorder) after each task_complete (the Codex index)
        self.first_user_message = ""

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size:
            self._ordinal, self._last_stamp, ends_clean = _tail_state(self.path)
            self._torn = not ends_clean  # a crash tore the last line: the next line starts afresh
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def write(self, kind: str, payload: Any) -> None:
        if not self.enabled or self.failed is not None:
            return
        try:
            if self._fd is None:  # first: continuing a file takes its ordinals and last timestamp
                self._fd = self._open()
            elif os.fstat(self._fd).st_nlink == 0:
                self._recreate(payload if kind == "response_item" else None)
        except OSError as exc:
            self._fail(exc)
        self._record(kind, payload)

    def adopt(self, meta: dict[str, Any], turn_context: dict[str, Any] | None) -> None:
        """A resumed session's file already holds its meta and last turn context: remembered, so a
        file written again (deleted mid-session) or a fork of it starts with them."""
        self._meta = meta
        self._turn_context = turn_context

    def _recreate(self, in_flight: Any) -> None:
        """The file (or its directory) was deleted while the session ran — a user freeing space:
        a new file with the session's meta, its whole history so far, and its turn context, so
        nothing is lost and it stays resumable."""
        log.warning("the session file %s was deleted: writing it again", self.path)
        self.close()
        self._fd = self._open()
        self._ordinal = 0 if self._ordinal is not None else None
        if self._meta is not None:
            self._record("session_meta", self._meta)
        history = list(self.snapshot()) if self.snapshot is not None else []
        if history and in_flight is not None and history[-1] is in_flight:
            history.pop()  # written next, by the write that noticed
        self._record("compacted", {"message": "", "replacement_history": history})
        if self._turn_context is not None:
            self._record("turn_context", self._turn_context)

    def _record(self, kind: str, payload: Any) -> None:
        stamp = max(_now_iso(), self._last_stamp)
        record: dict[str, Any] = {"timestamp": stamp}
        if self._ordinal is not None:
            record["ordinal"] = self._ordinal
        record["type"] = kind
        record["payload"] = payload
        if kind == "session_meta":
            self._meta = payload
        elif kind == "turn_context":
            self._turn_context = payload
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        try:
            data = line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate got this far: recorded as U+FFFD
            data = textsafe.clean(line).encode("utf-8")
        try:
            self._append(b"\n" + data + b"\n" if self._torn else data + b"\n")
        except OSError as exc:
            self._fail(exc)
        self._torn = False
        self._last_stamp = stamp
        if self._ordinal is not None:
            self._ordinal += 1

    def _fail(self, exc: OSError) -> NoReturn:
        self.failed = f"{exc.strerror or exc} (os error {exc.errno})"
        self.close()  # reopened on resync: the directory may have been recreated meanwhile
        raise RolloutWriteError(
            f"could not write the session file {self.path}: {self.failed}. The turn stops here; what "
            "was recorded before is kept, and the session can be resumed once it can be written",
            kind="rollout_write_failed",
        ) from None

    def _append(self, data: bytes) -> None:
        """One ``write`` per line (a crash tears at most the last line); a short write goes on, and
        a failed one is cut back off (``ftruncate``), so no partial line stays in the file."""
        assert self._fd is not None
        start = os.fstat(self._fd).st_size
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):  # if even that fails, the reopen finds the torn line
                os.ftruncate(self._fd, start)
            raise

    def resync(self, history: list[ResponseItem]) -> None:
        """After a failed write: record the whole history (a ``compacted`` record, as compaction
        writes one), so a resume sees everything the session holds in memory. Raises
        RolloutWriteError if the file still cannot be written."""
        if self.failed is None:
            return
        self.failed = None
        try:
            fresh = os.stat(self.path).st_size == 0
        except OSError:
            fresh = True
        if fresh and self._meta is not None:  # the file went: a new one, readable on its own
            self._ordinal = 0 if self._ordinal is not None else None
            self.write("session_meta", self._meta)
        self.write("compacted", {"message": "", "replacement_history": history})
        if fresh and self._turn_context is not None:
            self.write("turn_context", self._turn_context)

    @property
    def paginated(self) -> bool:
        return self._ordinal is not None

    def item(self, item: ResponseItem) -> None:
        self.write("response_item", item)

    def event(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind in PERSISTED_EVENTS:
            self.write("event_msg", msg)
        if kind == "user_message" and not self.first_user_message:
            self.first_user_message = str(msg.get("message") or "")
        if kind == "task_complete" and self.enabled and self.failed is None:
            for callback in self.on_turn_end:
                callback(self)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class LoadedRollout(Struct):
    """A session file read back: its meta, its rebuilt history and its last turn context."""

    path: Path
    thread_id: str
    meta: dict[str, Any]
    history: list[ResponseItem] = field(default_factory=list)
    last_turn_context: dict[str, Any] | None = None
    skipped_lines: int = 0


def fork_file(source: RolloutRecorder, history: list[ResponseItem]) -> tuple[str, Path | None]:
    """A new thread holding ``history``: its own session file (``session_meta`` naming the thread
    it came from, the items, the last turn context), as ``codex fork`` writes one. The path is
    ``None`` for a session that records nothing."""
    thread_id = new_thread_id()
    if not source.enabled:
        return thread_id, None
    meta = dict(source._meta or {})
    meta.update(id=thread_id, timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                forked_from_id=source.thread_id)  # fmt: skip
    fork = RolloutRecorder(source.home, thread_id)
    try:
        fork.write("session_meta", meta)
        for item in history:
            fork.item(item)
        if source._turn_context is not None:
            fork.write("turn_context", source._turn_context)
    except RolloutWriteError:
        with contextlib.suppress(OSError):
            fork.path.unlink()
        raise
    finally:
        fork.close()
    return thread_id, fork.path


def read_lines(path: Path) -> Iterator[dict[str, Any] | None]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            raw = raw.strip()
            if not raw:
                continue
            try:
                doc = textsafe.loads(raw)  # an escaped lone surrogate becomes U+FFFD
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
        elif (
            kind == "event_msg" and isinstance(payload, dict) and payload.get("type") == "thread_rolled_back"
        ):
            from codexbro.core.history import drop_last_turns

            count = payload.get("num_turns")
            kept = drop_last_turns(history, count) if isinstance(count, int) else None
            history = kept if kept is not None else history
    if meta is None or not isinstance(meta.get("id"), str):
        raise UserError(f"{path} is not a codexbro/Codex rollout (no session_meta line)")
    return LoadedRollout(path, meta["id"], meta, history, turn_context, skipped)


def find_rollout(home: Path, thread_id: str) -> Path:
    """The rollout of ``thread_id`` (a full id, or a unique prefix of at least 8 characters)."""
    root = home / "sessions"
    matches = sorted(root.glob("*/*/*/rollout-*.jsonl")) if root.is_dir() else []
    # The id is what follows the timestamp in the file name, whole: never a suffix of it (an empty
    # or partial id named the newest session).
    exact = (
        [p for p in matches if p.stem[len("rollout-YYYY-MM-DDThh-mm-ss-") :] == thread_id]
        if thread_id
        else []
    )
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


# Sessions opened by another session (sub-agents, reviews): listed and resumed through their parent only.
HELPER_SOURCES = ("subagent", "review")


def latest_rollout(home: Path, cwd: Path | None) -> Path:
    """Newest rollout, restricted to sessions started in ``cwd`` unless ``cwd`` is None. Each
    file's session_meta comes from the session index (``core/session_index.py``): no rollout is
    opened unless the index does not know it yet."""
    from codexbro.core.session_index import SessionIndex, rollouts_newest_first

    root = home / "sessions"
    index = SessionIndex(home)
    try:
        for path in rollouts_newest_first(root):
            facts = index.facts(path)
            if facts is None or facts.source in HELPER_SOURCES:  # a sub-agent's session is not "the last one"
                continue
            if cwd is None or facts.cwd == str(cwd):
                return path
    finally:
        index.save()
    where = "" if cwd is None else f" started in {cwd} (use --all to look everywhere)"
    raise UserError(f"no previous session{where} under {root}")


class SessionSummary(Struct, frozen=True):
    """One session on disk, for a picker: its file, id, first message and when it last changed."""

    path: Path
    thread_id: str
    first_message: str
    modified: float


def list_sessions(home: Path, cwd: Path | None, limit: int = 50) -> list[SessionSummary]:
    """Sessions started in ``cwd`` (every one when None), newest first, from the session index;
    a file it does not know is read (its first lines only) and added to it."""
    from codexbro.core.session_index import SessionIndex, rollouts_newest_first

    index = SessionIndex(home)
    out: list[SessionSummary] = []
    try:
        for path in rollouts_newest_first(home / "sessions"):
            facts = index.facts(path)
            if facts is None or facts.id is None or facts.source in HELPER_SOURCES:
                continue
            if cwd is not None and facts.cwd != str(cwd):
                continue
            facts = index.facts(path, first_message=True) or facts
            with contextlib.suppress(OSError):
                out.append(SessionSummary(path, facts.id or "", facts.first or "", path.stat().st_mtime))
            if len(out) >= limit:
                break
    finally:
        index.save()
    return out

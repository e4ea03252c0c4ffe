"""Upstream Codex's session index, for homes shared with Codex.

Codex 0.169 finds sessions through ``$CODEX_HOME/state_5.sqlite`` (table ``threads``): ``codex
resume --last`` and its pickers read it, and a rollout file it has no row for is found only by id.
When ``CODEXBRO_HOME`` is a Codex home — that database exists — codexbro records its own sessions
there after each turn (and touches the row of a Codex session it continued), so Codex lists them
like its own. Only columns that exist are written; a database codexbro does not recognise (another
schema version) is left alone; a failure never affects the session (it is logged).

Checked against Codex 0.169 (see ``tests/fixtures/codex-0.169/NOTES.md``): the columns Codex needs
are ``id, rollout_path, created_at, updated_at, source, model_provider, cwd, title, sandbox_policy,
approval_mode``; ``--last`` orders by recency among threads with the current ``cwd``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from msgspec import Struct

from codexbro import __version__

if TYPE_CHECKING:
    from codexbro.config.types import Config
    from codexbro.core.rollout import RolloutRecorder

STATE_DB = "state_5.sqlite"
REQUIRED = ("id", "rollout_path", "created_at", "updated_at", "source", "model_provider", "cwd", "title",
            "sandbox_policy", "approval_mode")  # fmt: skip
log = logging.getLogger("codexbro.codex_index")


class ThreadRow(Struct, frozen=True):
    thread_id: str
    rollout_path: str
    cwd: str
    source: str
    model_provider: str
    model: str
    sandbox_mode: str
    approval_policy: str
    cli_version: str
    originator: str
    first_user_message: str
    paginated: bool
    created_at: float


def applies(home: Path) -> bool:
    return (home / STATE_DB).is_file()


def _sandbox_policy(mode: str, cwd: str) -> str:
    if mode == "danger-full-access":
        return json.dumps({"type": "disabled"}, separators=(",", ":"))
    entries = [{"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"}]
    if mode == "workspace-write":
        entries.append({"path": {"type": "path", "path": cwd}, "access": "write"})
    profile = {
        "type": "managed",
        "file_system": {"type": "restricted", "entries": entries},
        "network": "restricted",
    }
    return json.dumps(profile, separators=(",", ":"))


def record(home: Path, row: ThreadRow) -> None:
    """Insert the thread, or bring its recency up to date. Never raises."""
    import sqlite3

    now = time.time()
    values = {
        "id": row.thread_id, "rollout_path": row.rollout_path, "created_at": int(row.created_at),
        "updated_at": int(now), "source": row.source, "model_provider": row.model_provider, "cwd": row.cwd,
        "title": row.first_user_message[:200], "sandbox_policy": _sandbox_policy(row.sandbox_mode, row.cwd),
        "approval_mode": row.approval_policy, "cli_version": row.cli_version,
        "first_user_message": row.first_user_message, "model": row.model,
        "created_at_ms": int(row.created_at * 1000), "updated_at_ms": int(now * 1000),
        "preview": row.first_user_message[:200], "recency_at": int(now), "recency_at_ms": int(now * 1000),
        "history_mode": "paginated" if row.paginated else "legacy", "originator": row.originator,
    }  # fmt: skip
    touched = ("updated_at", "updated_at_ms", "recency_at", "recency_at_ms")
    try:
        with sqlite3.connect(home / STATE_DB, timeout=5) as db:
            columns = {r[1] for r in db.execute("PRAGMA table_info(threads)")}
            if not set(REQUIRED) <= columns:
                log.info("not recording in %s: its threads table is not Codex 0.169's", STATE_DB)
                return
            names = [k for k in values if k in columns]
            updates = ", ".join(f"{k} = excluded.{k}" for k in touched if k in columns)
            fill = ", ".join(
                f"{k} = CASE WHEN threads.{k} = '' THEN excluded.{k} ELSE threads.{k} END"
                for k in ("title", "first_user_message", "preview")
                if k in columns
            )
            db.execute(
                f"INSERT INTO threads ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
                f"ON CONFLICT(id) DO UPDATE SET {', '.join(filter(None, [updates, fill]))}",
                [values[k] for k in names],
            )
    except sqlite3.Error as exc:
        log.warning("could not record the session in %s: %s", home / STATE_DB, exc)


def index_after_turns(
    recorder: RolloutRecorder, config: Config, thread_id: str, provider: str, model: str, originator: str,
    source: str,
) -> None:  # fmt: skip
    """In a home shared with upstream Codex, list this session in Codex's index after each turn."""
    if not applies(config.codexbro_home):
        return
    started = time.time()

    def index(rec: RolloutRecorder) -> None:
        record(
            config.codexbro_home,
            ThreadRow(
                thread_id=thread_id, rollout_path=str(rec.path), cwd=str(config.cwd), source=source,
                model_provider=provider, model=model, sandbox_mode=config.sandbox_mode,
                approval_policy=config.approval_policy, cli_version=__version__, originator=originator,
                first_user_message=rec.first_user_message, paginated=rec.paginated, created_at=started,
            ),
        )  # fmt: skip

    recorder.on_turn_end.append(index)

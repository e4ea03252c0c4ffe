"""The session index (issue 19.4): `resume --last` and the pickers find sessions among thousands
without opening their rollouts; the index is a cache that heals itself and never decides what exists."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from codexbro.core import session_index
from codexbro.core.rollout import latest_rollout, list_sessions
from codexbro.core.session_index import INDEX_FILE, SessionIndex


def write_session(home: Path, n: int, cwd: str, *, source: str = "exec", message: str | None = "hi") -> Path:
    day = home / "sessions" / "2026" / "12" / f"{1 + n // 1000:02d}"
    day.mkdir(parents=True, exist_ok=True)
    path = day / f"rollout-2026-12-{1 + n // 1000:02d}T10-00-00-{n:08d}-0000-7000-8000-000000000000.jsonl"
    lines = [{"type": "session_meta", "payload": {"id": f"{n:08d}", "cwd": cwd, "source": source}}]
    if message is not None:
        lines.append({"type": "event_msg", "payload": {"type": "user_message", "message": message}})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every rollout the index opens."""
    seen: list[Path] = []
    real = session_index.read_facts

    def counting(path: Path, key: str) -> session_index.Facts | None:
        seen.append(path)
        return real(path, key)

    monkeypatch.setattr(session_index, "read_facts", counting)
    return seen


def test_resume_last_opens_no_rollout_once_the_index_knows_them(tmp_path: Path, reads: list[Path]) -> None:
    home = tmp_path
    mine = write_session(home, 0, "/mine")  # the oldest: every other session is newer
    for n in range(1, 300):
        write_session(home, n, "/elsewhere")
    assert latest_rollout(home, Path("/mine")) == mine
    assert len(reads) == 300  # the first search reads each file once (a home from before the index)
    reads.clear()
    assert latest_rollout(home, Path("/mine")) == mine
    assert reads == []  # … and then none
    newer = write_session(home, 300, "/mine")
    assert latest_rollout(home, Path("/mine")) == newer
    assert reads == [newer]  # a new session is read once, then known
    assert stat.S_IMODE((home / INDEX_FILE).stat().st_mode) == 0o600


def test_the_listing_decides_what_exists_and_helpers_are_skipped(tmp_path: Path, reads: list[Path]) -> None:
    home = tmp_path
    kept = write_session(home, 1, "/w")
    gone = write_session(home, 2, "/w")
    write_session(home, 3, "/w", source="subagent")
    assert latest_rollout(home, Path("/w")) == gone
    gone.unlink()  # deleted after it was indexed: not offered
    assert latest_rollout(home, Path("/w")) == kept
    assert [s.thread_id for s in list_sessions(home, Path("/w"))] == ["00000001"]


def test_a_damaged_or_foreign_index_is_ignored_line_by_line(tmp_path: Path, reads: list[Path]) -> None:
    home = tmp_path
    path = write_session(home, 1, "/w")
    key = str(path.relative_to(home / "sessions"))
    (home / INDEX_FILE).write_text(
        '{"file": "' + key + '", "cwd": 7}\n'  # wrong type
        "not json\n"
        '{"file": "x", "first": ' + '"' + "\\ud800" + '"}\n'  # a lone surrogate escape
        '{"fil'  # torn
    )
    assert latest_rollout(home, Path("/w")) == path
    assert reads == [path]
    assert latest_rollout(home, Path("/w")) == path and reads == [path]  # learnt: not read again


def test_first_messages_are_cached_once_known(tmp_path: Path, reads: list[Path]) -> None:
    home = tmp_path
    quiet = write_session(home, 1, "/w", message=None)
    talked = write_session(home, 2, "/w", message="fix the parser\nand more")
    assert [s.first_message for s in list_sessions(home, Path("/w"))] == ["fix the parser\nand more", ""]
    reads.clear()
    assert [s.first_message for s in list_sessions(home, Path("/w"))] == ["fix the parser\nand more", ""]
    assert reads == [quiet]  # no first message yet: looked for again; the other one is cached
    with open(quiet, "a") as fh:
        fh.write(
            json.dumps({"type": "event_msg", "payload": {"type": "user_message", "message": "later"}}) + "\n"
        )
    assert [s.first_message for s in list_sessions(home, Path("/w"))][1] == "later"
    assert talked.exists()


def test_stale_lines_are_compacted(tmp_path: Path) -> None:
    home = tmp_path
    write_session(home, 1, "/w")
    (home / INDEX_FILE).write_text("garbage\n" * 1500)
    latest_rollout(home, Path("/w"))
    lines = (home / INDEX_FILE).read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["cwd"] == "/w"
    assert stat.S_IMODE((home / INDEX_FILE).stat().st_mode) == 0o600


def test_an_index_path_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    target = tmp_path / "elsewhere.txt"
    planted = '{"file": "2026/12/01/rollout-2026-12-01T10-00-00-00000001-0000-7000-8000-000000000000.jsonl", "cwd": "/w", "source": "subagent"}\n'
    target.write_text(planted)
    write_session(home, 1, "/w")
    os.symlink(target, home / INDEX_FILE)
    assert latest_rollout(home, Path("/w")).name.endswith(
        ".jsonl"
    )  # found, the planted "subagent" not believed
    assert target.read_text() == planted  # nothing written through the link
    index = SessionIndex(home)
    assert index.known == {}  # and its content is not trusted either


def test_an_unwritable_home_still_finds_the_session(tmp_path: Path) -> None:
    home = tmp_path
    path = write_session(home, 1, "/w")
    (home / INDEX_FILE).mkdir()  # cannot be written: the search still works, the index is a cache
    assert latest_rollout(home, Path("/w")) == path


def test_codex_thread_names_in_a_shared_home_are_left_alone(tmp_path: Path) -> None:
    """Codex 0.169 keeps thread names in `session_index.jsonl`: ours is another file."""
    home = tmp_path
    names = "".join(
        json.dumps({"id": f"t{n}", "thread_name": "x", "updated_at": "now"}) + "\n" for n in range(1100)
    )
    (home / "session_index.jsonl").write_text(names)
    write_session(home, 1, "/w")
    latest_rollout(home, Path("/w"))
    assert (home / "session_index.jsonl").read_text() == names and INDEX_FILE != "session_index.jsonl"


def test_odd_names_and_hostile_lines_do_not_break_the_search(tmp_path: Path) -> None:
    home = tmp_path
    good = write_session(home, 1, "/w")
    odd = good.parent / os.fsdecode(b"rollout-2026-12-01T11-00-00-\xff\xfe-0000.jsonl")  # not UTF-8
    odd.write_text(good.read_text().replace("00000001", "0000000f"))
    with open(home / INDEX_FILE, "w") as fh:
        fh.write("[" * 100_000 + "]" * 100_000 + "\n")  # nested too deep to parse
    for _ in range(2):  # and again, with whatever the first search saved
        assert latest_rollout(home, Path("/w")) == odd
    assert [s.thread_id for s in list_sessions(home, Path("/w"))] == ["0000000f", "00000001"]


def test_compaction_drops_deleted_rollouts_and_linked_days_are_searched(tmp_path: Path) -> None:
    home = tmp_path
    gone = [write_session(home, n, "/w") for n in range(1, 11)]
    latest_rollout(home, Path("/w"))
    for path in gone:
        path.unlink()
    elsewhere = tmp_path / "archive" / "05"
    elsewhere.mkdir(parents=True)
    kept = elsewhere / "rollout-2026-12-05T10-00-00-00000099-0000-7000-8000-000000000000.jsonl"
    kept.write_text(json.dumps({"type": "session_meta", "payload": {"id": "00000099", "cwd": "/w"}}) + "\n")
    os.symlink(elsewhere, home / "sessions" / "2026" / "12" / "05")
    with open(home / INDEX_FILE, "a") as fh:
        fh.write("stale\n" * 1100)
    assert latest_rollout(home, Path("/w")) == home / "sessions" / "2026" / "12" / "05" / kept.name
    lines = (home / INDEX_FILE).read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["00000099"]  # the deleted ones are gone


def test_a_fifo_in_place_of_the_index_is_not_waited_on(tmp_path: Path) -> None:
    import threading

    home = tmp_path
    path = write_session(home, 1, "/w")
    os.mkfifo(home / INDEX_FILE)
    found: list[Path] = []
    worker = threading.Thread(target=lambda: found.append(latest_rollout(home, Path("/w"))), daemon=True)
    worker.start()
    worker.join(10)
    assert found == [path]

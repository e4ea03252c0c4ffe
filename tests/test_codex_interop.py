"""Sessions shared with upstream Codex 0.169 stay readable by it (fixtures: tests/fixtures/codex-0.169).

The fixture tests run everywhere; the round trip with the real ``codex`` binary runs where
``codex --version`` is 0.169.0 (``.ci/run`` installs it from npm) and skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from codexbro.core import rollout
from codexbro.core.rollout import RolloutRecorder
from tests.conftest import run_cli, write_config
from tests.fakes.events import message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply

FIXTURES = Path(__file__).parent / "fixtures" / "codex-0.169"
UPSTREAM = next(FIXTURES.glob("rollout-*.jsonl"))
UPSTREAM_ID = UPSTREAM.stem[len("rollout-2026-12-02T07-04-08-") :]


def plant_upstream_session(home: Path) -> Path:
    day = home / "sessions" / "2026" / "12" / "02"
    day.mkdir(parents=True)
    target = day / UPSTREAM.name
    shutil.copy(UPSTREAM, target)
    return target


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_appending_to_a_paginated_codex_file_continues_its_ordinals(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    path = plant_upstream_session(home)
    before = path.read_text().splitlines()
    fake.add(Reply(message_turn("continued by codexbro")))
    res = run_cli("exec", "resume", UPSTREAM_ID, "go on", cwd=workspace)
    assert res.code == 0, res.stderr
    lines = path.read_text().splitlines()
    assert lines[: len(before)] == before  # nothing rewritten
    added = [json.loads(line) for line in lines[len(before) :]]
    assert added and [r["ordinal"] for r in added] == list(range(18, 18 + len(added)))
    assert all(line.startswith('{"timestamp":"') and '","ordinal":' in line for line in lines[len(before) :])
    stamps = [str(r["timestamp"]) for r in records(path)]
    assert stamps == sorted(stamps)
    assert any(r["type"] == "response_item" and "continued by codexbro" in json.dumps(r) for r in added)


def test_a_new_rollout_is_unnumbered_compact_and_0600(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("hi")))
    assert run_cli("exec", "hello", cwd=workspace).code == 0
    (path,) = home.glob("sessions/*/*/*/rollout-*.jsonl")
    assert path.stat().st_mode & 0o777 == 0o600
    lines = path.read_text().splitlines()
    assert all(
        line.startswith('{"timestamp":"') and '"ordinal"' not in line.split('"payload"')[0] for line in lines
    )


def test_timestamps_never_go_backwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(["2026-12-02T10:00:00.500Z", "2026-12-02T09:59:59.000Z", "2026-12-02T10:00:01.000Z"])
    monkeypatch.setattr(rollout, "_now_iso", lambda: next(clock))
    rec = RolloutRecorder(tmp_path, "t", path=tmp_path / "r.jsonl")
    for i in range(3):
        rec.write("event_msg", {"type": "agent_message", "message": str(i)})
    rec.close()
    stamps = [r["timestamp"] for r in records(tmp_path / "r.jsonl")]
    assert stamps == ["2026-12-02T10:00:00.500Z", "2026-12-02T10:00:00.500Z", "2026-12-02T10:00:01.000Z"]
    # Reopened later with a clock behind the file's last line: still clamped.
    monkeypatch.setattr(rollout, "_now_iso", lambda: "2026-01-01T00:00:00.000Z")
    rec = RolloutRecorder(tmp_path, "t", path=tmp_path / "r.jsonl")
    rec.write("event_msg", {"type": "agent_message", "message": "late"})
    rec.close()
    assert records(tmp_path / "r.jsonl")[-1]["timestamp"] == "2026-12-02T10:00:01.000Z"


def test_a_torn_last_line_stays_on_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    shutil.copy(UPSTREAM, path)
    with open(path, "a") as fh:
        fh.write('{"timestamp":"2026-12-02T07:04:09.000Z","ordinal":18,"type":"event_m')  # a crash, mid-line
    rec = RolloutRecorder(tmp_path, "t", path=path)
    rec.write("event_msg", {"type": "agent_message", "message": "after the crash"})
    rec.close()
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["ordinal"] == 18 and last["payload"]["message"] == "after the crash"


def make_state_db(home: Path) -> Path:
    db_path = home / "state_5.sqlite"
    with sqlite3.connect(db_path) as db:
        db.executescript((FIXTURES / "state_5_threads.sql").read_text())
    return db_path


def test_sessions_are_listed_in_codexs_index(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    db_path = make_state_db(home)
    fake.add(Reply(message_turn("one")), Reply(message_turn("two")))
    assert run_cli("exec", "first prompt", cwd=workspace).code == 0
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "select id, rollout_path, cwd, source, title, history_mode, updated_at from threads"
        ).fetchall()
    (row,) = rows
    (path,) = home.glob("sessions/*/*/*/rollout-*.jsonl")
    assert row[1] == str(path) and row[2] == str(workspace) and row[3] == "exec"
    assert row[4] == "first prompt" and row[5] == "legacy" and path.stem.endswith(row[0])
    assert run_cli("exec", "resume", "--last", "second prompt", cwd=workspace).code == 0
    with sqlite3.connect(db_path) as db:
        title, updated = db.execute("select title, updated_at from threads").fetchone()
    assert title == "first prompt" and updated >= row[6]


def test_an_unknown_index_schema_is_left_alone(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    with sqlite3.connect(home / "state_5.sqlite") as db:
        db.execute("create table threads (id text primary key, something_else text not null)")
    fake.add(Reply(message_turn("one")))
    res = run_cli("exec", "hello", cwd=workspace)
    assert res.code == 0, res.stderr
    with sqlite3.connect(home / "state_5.sqlite") as db:
        assert db.execute("select count(*) from threads").fetchone() == (0,)


# ---- with the real Codex CLI ---------------------------------------------------------------------


def _codex_version() -> str:
    codex = shutil.which("codex")
    if codex is None:
        return ""
    try:
        return subprocess.run([codex, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


CODEX = _codex_version()
needs_codex = pytest.mark.skipif(
    CODEX != "codex-cli 0.169.0",
    reason="needs the real Codex CLI 0.169.0 on PATH (npm install -g @openai/codex@0.169.0; .ci/run does)",
)


def codex(home: Path, fake: FakeResponsesServer, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (home / "config.toml").write_text(
        f'model = "gpt-5.1-codex"\nmodel_provider = "fake"\n[model_providers.fake]\nname = "fake"\n'
        f'base_url = "{fake.base_url}"\nenv_key = "FAKE_API_KEY"\nwire_api = "responses"\n'
        "request_max_retries = 0\nstream_max_retries = 0\n"
    )
    env = {**os.environ, "CODEX_HOME": str(home)}
    return subprocess.run(["codex", "exec", "--skip-git-repo-check", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip


@needs_codex
def test_codex_resumes_what_codexbro_appended_and_finds_what_it_created(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    # 1. Codex writes a session; codexbro continues it; Codex continues it again and sees both turns.
    fake.add(
        Reply(message_turn("from codex")),
        Reply(message_turn("from codexbro")),
        Reply(message_turn("codex again")),
    )
    first = codex(home, fake, workspace, "turn one")
    assert first.returncode == 0, first.stderr[-2000:]
    write_config(home, fake.base_url)
    (path,) = home.glob("sessions/*/*/*/rollout-*.jsonl")
    thread = path.stem[-36:]
    assert run_cli("exec", "resume", thread, "turn two", cwd=workspace).code == 0
    again = codex(home, fake, workspace, "resume", thread, "turn three")
    assert again.returncode == 0, again.stderr[-2000:]
    texts = json.dumps(fake.bodies()[-1]["input"])
    assert "turn two" in texts and "from codexbro" in texts
    # 2. codexbro creates a session; Codex finds it with --last (the index) and by id.
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("new one")), Reply(message_turn("codex found it")))
    assert run_cli("exec", "a codexbro session", cwd=workspace).code == 0
    newest = max(home.glob("sessions/*/*/*/rollout-*.jsonl"), key=lambda p: p.stat().st_mtime)
    found = codex(home, fake, workspace, "resume", "--last", "and now codex")
    assert found.returncode == 0, found.stderr[-2000:]
    assert newest.stem[-36:] in found.stderr and "a codexbro session" in json.dumps(
        fake.bodies()[-1]["input"]
    )


def test_fixture_is_codexs_paginated_format() -> None:
    lines = records(UPSTREAM)
    assert [r["ordinal"] for r in lines] == list(range(len(lines)))
    assert sys.version_info >= (3, 11)

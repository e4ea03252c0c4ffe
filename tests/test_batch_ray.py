"""``codexbro batch --engine ray`` on a local Ray instance started for the batch, against the loopback
fake: the same results as the local engine (each task in its own copy, its diff, bad lines reported),
and no credential in what Ray stores or logs. Skipped, with the reason, when Ray is not installed
(the README's test set-up installs it: the ``dev`` extra)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import FAKE_KEY, run_cli, write_config
from tests.fakes.events import ev_completed, ev_created, ev_shell_command, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply
from tests.test_batch import git_repo, jsonl, results

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install -e '.[dev]')"
)


def test_ray_engine_runs_tasks_in_their_own_copies_and_keeps_credentials_out(
    home: Path, fake: FakeResponsesServer, tmp_path: Path
) -> None:
    write_config(home, fake.base_url)
    repo = git_repo(tmp_path / "repo")
    # Ray's session files (logs, GCS snapshots) for this test only; short: Ray puts Unix sockets there
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    tasks = jsonl(
        tmp_path / "t.jsonl",
        {"id": "edit", "prompt": "edit", "repo": str(repo)},
        {"id": "say", "prompt": "hello", "cwd": str(repo)},
        {"id": "bad", "prompt": 3},
    )
    fake.add(Reply([ev_created(), ev_shell_command("c1", "echo changed > a.txt"), ev_completed()]))
    fake.add(Reply(message_turn("edited")), Reply(message_turn("hi there")))
    env = {"RAY_TMPDIR": str(ray_tmp), "RAY_USAGE_STATS_ENABLED": "0"}
    res = run_cli("batch", str(tasks), "--engine", "ray", "--jobs", "1", "-s", "workspace-write",
                  cwd=tmp_path, timeout=240, env=env)  # fmt: skip
    assert res.code == 1, res.stderr  # the bad line
    out = results(tmp_path / "t.results.jsonl")
    assert {k: v["status"] for k, v in out.items()} == {"edit": "ok", "say": "ok", "bad": "failed"}
    assert "-original\n+changed" in str(out["edit"]["diff"])
    assert {out["edit"]["final_message"], out["say"]["final_message"]} == {"edited", "hi there"}
    assert (repo / "a.txt").read_text() == "original\n"  # the original is untouched
    assert "line 3" in str(out["bad"]["error"])
    # The credential reached the workers' exec processes through their environment only: it is
    # nowhere in what Ray wrote (task arguments, logs, GCS).
    assert ray_tmp.exists()
    for root, _dirs, files in os.walk(ray_tmp):
        for name in files:
            path = Path(root) / name
            if path.is_socket() or path.is_fifo():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            assert FAKE_KEY.encode() not in data, path
    shutil.rmtree(ray_tmp, ignore_errors=True)
    # Resume: every task has a result, so nothing runs (and no Ray instance is started).
    again = run_cli("batch", str(tasks), "--engine", "ray", cwd=tmp_path, timeout=120, env=env)
    assert again.code == 0 and "0 task(s) finished" in again.stderr, again.stderr
    assert len((tmp_path / "t.results.jsonl").read_text().splitlines()) == 3
    assert not ray_tmp.exists()


def test_ray_address_needs_the_ray_engine(tmp_path: Path) -> None:
    tasks = jsonl(tmp_path / "t.jsonl", {"id": "a", "prompt": "x"})
    res = run_cli("batch", str(tasks), "--ray-address", "auto", cwd=tmp_path)
    assert res.code == 2 and "--ray-address and --ray-task-cpus need --engine ray" in res.stderr

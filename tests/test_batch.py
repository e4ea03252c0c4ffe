"""``codexbro batch`` (local engine) end to end against the loopback fake: tasks in parallel, bad
lines reported by line number while the rest run, results appended as tasks end and resumed on a
second run, each task in its own copy (git clone or plain copy) with its diff, timeouts and Ctrl-C
killing whole process groups."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import run_cli, write_config
from tests.fakes.events import ev_completed, ev_created, ev_shell_command, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply


def jsonl(path: Path, *rows: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def results(path: Path) -> dict[str, dict[str, object]]:
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def git_repo(path: Path) -> Path:
    path.mkdir()
    (path / "a.txt").write_text("original\n")
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"],
    ):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)
    return path


def test_parallel_tasks_bad_lines_and_resume(home: Path, fake: FakeResponsesServer, tmp_path: Path) -> None:
    write_config(home, fake.base_url)
    work = tmp_path / "proj"
    work.mkdir()
    tasks = jsonl(
        tmp_path / "tasks.jsonl",
        {"id": "a", "prompt": "one", "cwd": str(work)},
        {"id": "b", "prompt": "two", "cwd": str(work)},
        "{not json",
        {"id": "c", "prompt": "three", "cwd": str(work), "colour": "blue"},
        {"id": "a", "prompt": "again"},
        {"id": "d", "prompt": "four", "repo": str(tmp_path / "missing")},
        {"id": "e", "prompt": "five", "cwd": str(work)},
    )
    fake.add(*(Reply(message_turn("done")) for _ in range(3)))
    res = run_cli("batch", str(tasks), "--jobs", "3", cwd=tmp_path)
    assert res.code == 1, res.stderr  # some tasks failed
    out = results(tmp_path / "tasks.results.jsonl")
    assert {k: v["status"] for k, v in out.items()} == {
        "a": "ok", "b": "ok", "e": "ok", "line-3": "failed", "c": "failed", "line-5": "failed", "d": "failed",
    }  # fmt: skip
    assert out["a"]["final_message"] == "done" and out["a"]["usage"]["input_tokens"] > 0
    assert out["a"]["rollout"] and Path(str(out["a"]["rollout"])).is_file()
    assert "line 3: not JSON" in str(out["line-3"]["error"]) and "unknown key(s) colour" in str(
        out["c"]["error"]
    )
    assert "duplicate id 'a'" in str(out["line-5"]["error"]) and "does not exist" in str(out["d"]["error"])
    for line in ("tasks.jsonl:line 3:", "tasks.jsonl:line 4:", "tasks.jsonl:line 5:", "tasks.jsonl:line 6:"):
        assert line in res.stderr
    assert len(fake.responses_requests()) == 3
    # The same command again: every task has a result, nothing runs.
    again = run_cli("batch", str(tasks), cwd=tmp_path)
    assert len(fake.responses_requests()) == 3 and again.code == 0
    fake.add(*(Reply(message_turn("redo")) for _ in range(3)))
    run_cli("batch", str(tasks), "--rerun", "-o", str(tmp_path / "second.jsonl"), cwd=tmp_path)
    assert results(tmp_path / "second.jsonl")["a"]["final_message"] == "redo"


def test_each_task_edits_its_own_copy_and_reports_its_diff(
    home: Path, fake: FakeResponsesServer, tmp_path: Path
) -> None:
    write_config(home, fake.base_url)
    repo = git_repo(tmp_path / "repo")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.txt").write_text("original\n")
    edit = "echo changed > a.txt && echo new > b.txt"
    tasks = jsonl(tmp_path / "t.jsonl", {"id": "git", "prompt": "edit", "repo": str(repo)},
                  {"id": "plain", "prompt": "edit", "cwd": str(plain)})  # fmt: skip
    for _ in range(2):
        fake.add(
            Reply([ev_created(), ev_shell_command("c1", edit), ev_completed()]), Reply(message_turn("edited"))
        )
    res = run_cli("batch", str(tasks), "--jobs", "1", "-s", "workspace-write", cwd=tmp_path)
    assert res.code == 0, res.stderr
    out = results(tmp_path / "t.results.jsonl")
    for key in ("git", "plain"):
        diff = str(out[key]["diff"])
        assert "-original\n+changed" in diff and "+new" in diff and "b.txt" in diff, (key, diff)
    assert (repo / "a.txt").read_text() == "original\n" and not (
        repo / "b.txt"
    ).exists()  # originals untouched
    assert (plain / "a.txt").read_text() == "original\n" and not (plain / "b.txt").exists()
    assert list((tmp_path / ".codexbro-batch").iterdir()) == []  # copies removed (no --keep)


def test_timeout_and_ctrl_c_kill_whole_groups(home: Path, fake: FakeResponsesServer, tmp_path: Path) -> None:
    write_config(home, fake.base_url)
    work = tmp_path / "w"
    work.mkdir()
    marker = "sleep 4343"
    tasks = jsonl(tmp_path / "t.jsonl", {"id": "slow", "prompt": "wait", "cwd": str(work)})
    fake.add(Reply([ev_created(), ev_shell_command("c1", marker, timeout_ms=60000), ev_completed()]))
    started = time.monotonic()
    res = run_cli("batch", str(tasks), "--timeout", "4", "-s", "danger-full-access", cwd=tmp_path)
    assert time.monotonic() - started < 30
    assert results(tmp_path / "t.results.jsonl")["slow"]["status"] == "timeout" and res.code == 1
    time.sleep(0.5)
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout == b""
    # Ctrl-C: the running task is recorded as cancelled, its processes are gone, exit 130.
    stop_a_running_batch(fake, tasks, tmp_path, marker, signal.SIGINT, 130, "interrupted")


def test_sigterm_stops_a_batch_like_ctrl_c(home: Path, fake: FakeResponsesServer, tmp_path: Path) -> None:
    write_config(home, fake.base_url)
    work = tmp_path / "w"
    work.mkdir()
    tasks = jsonl(tmp_path / "t.jsonl", {"id": "slow", "prompt": "wait", "cwd": str(work)})
    stop_a_running_batch(fake, tasks, tmp_path, "sleep 4345", signal.SIGTERM, 143, "terminated")


def stop_a_running_batch(
    fake: FakeResponsesServer, tasks: Path, tmp_path: Path, marker: str, sig: int, code: int, said: str
) -> None:
    """Start a batch whose one task runs ``marker``, send ``sig`` once the command runs, and check
    the task is recorded as cancelled and its command is gone. (Without a handler, SIGTERM kills
    the batch and leaves the command running: the control.) SIGINT is reset to its default in the
    child: a test run started in the background inherits it ignored, and a program keeps that."""
    fake.add(Reply([ev_created(), ev_shell_command("c1", marker, timeout_ms=60000), ev_completed()]))
    out = tmp_path / f"stop-{sig}.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "codexbro", "batch", str(tasks), "--rerun", "-o",
                             str(out), "-s", "danger-full-access"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while (
            subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout == b""
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == code, err
        assert f"[batch] {said}" in err.decode()
        assert results(out)["slow"]["status"] == "cancelled"
        time.sleep(0.5)
        assert subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout == b""
    finally:
        proc.kill()
        subprocess.run(["pkill", "-f", marker], capture_output=True)


def test_output_schema_gives_json_results(home: Path, fake: FakeResponsesServer, tmp_path: Path) -> None:
    write_config(home, fake.base_url)
    (tmp_path / "schema.json").write_text(json.dumps({"type": "object", "properties": {"n": {"type": "integer"}},
                                                      "required": ["n"], "additionalProperties": False}))  # fmt: skip
    tasks = jsonl(tmp_path / "t.jsonl", {"id": "count", "prompt": "count", "cwd": str(tmp_path),
                                         "output_schema": "schema.json"})  # fmt: skip
    fake.add(Reply(message_turn('{"n": 3}')))
    assert run_cli("batch", str(tasks), cwd=tmp_path).code == 0
    out = results(tmp_path / "t.results.jsonl")["count"]
    assert out["final_message"] == {"n": 3}
    assert out["diff"] == ""  # the work directory inside the task's source is not a deletion
    assert fake.bodies()[0]["text"]["format"]["schema"]["required"] == ["n"]

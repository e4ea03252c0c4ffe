"""``codexbro exec`` end to end: a real subprocess against the loopback fake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import FAKE_KEY, live_processes_with, run_cli, write_config
from tests.fakes.events import (
    check_invariants,
    ev_completed,
    ev_created,
    ev_message,
    ev_reasoning,
    ev_shell_command,
    ev_text_delta,
    message_turn,
)
from tests.fakes.responses_server import FakeResponsesServer, Reply


def test_version_and_help() -> None:
    res = run_cli("--version")
    assert res.code == 0 and res.stdout.strip().startswith("codexbro ")
    res = run_cli("exec", "--help")
    assert res.code == 0 and "--output-schema" in res.stdout and "--json" in res.stdout


def test_json_one_message_turn(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply([ev_created(), ev_text_delta("hel"), ev_reasoning("thinking about it"),
                    ev_message("hello there"), ev_completed(input_tokens=42, output_tokens=7, cached=5)]))  # fmt: skip
    res = run_cli("exec", "--json", "say hi", cwd=workspace)
    assert res.code == 0, res.stderr
    events = res.events()
    kinds = [e["type"] for e in events]
    assert kinds == ["thread.started", "turn.started", "item.completed", "item.completed", "turn.completed"]
    assert events[2]["item"] == {"id": "item_0", "type": "reasoning", "text": "thinking about it"}
    assert events[3]["item"] == {"id": "item_1", "type": "agent_message", "text": "hello there"}
    assert events[4]["usage"] == {
        "input_tokens": 42, "cached_input_tokens": 5, "cache_write_input_tokens": 0,
        "output_tokens": 7, "reasoning_output_tokens": 0,
    }  # fmt: skip
    # The request as upstream sends it.
    (req,) = fake.responses_requests()
    body = req.body
    assert list(body)[:4] == ["model", "instructions", "input", "tools"]
    assert body["model"] == "gpt-5.1-codex"
    assert body["tool_choice"] == "auto" and body["stream"] is True and body["store"] is False
    assert body["prompt_cache_key"] == events[0]["thread_id"]
    assert body["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["parallel_tool_calls"] is True
    assert [t["name"] for t in body["tools"]] == ["shell_command", "update_plan", "apply_patch", "view_image"]
    assert body["tools"][2]["type"] == "custom" and body["tools"][2]["format"]["syntax"] == "lark"
    assert body["input"][-1] == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "say hi"}],
    }
    assert "<environment_context>" in body["input"][0]["content"][0]["text"]
    assert req.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert req.headers["session-id"] == req.headers["thread-id"] == events[0]["thread_id"]
    assert req.headers["originator"] == "codex_exec"
    assert req.headers["accept"] == "text/event-stream"


def test_human_mode_final_message_on_stdout_only(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply([ev_created(), ev_shell_command("c1", "echo from-tool")]), Reply(message_turn("all done")))
    out = workspace / "last.txt"
    res = run_cli("exec", "--color", "never", "-o", str(out), "run it", cwd=workspace)
    assert res.code == 0, res.stderr
    assert res.stdout == "all done\n"
    assert "exec\n" in res.stderr and "echo from-tool" in res.stderr and "from-tool" in res.stderr
    assert "session id:" in res.stderr and "model: gpt-5.1-codex" in res.stderr
    assert out.read_text() == "all done"


def test_shell_tool_round_trip_and_command_items(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    fake.add(
        Reply([ev_created(), ev_shell_command("c1", "printf 'a\\nb\\n'; exit 3"), ev_completed()]),
        Reply(message_turn("saw it")),
    )
    res = run_cli("exec", "--json", "go", cwd=workspace)
    assert res.code == 0, res.stderr
    items = [e for e in res.events() if e["type"].startswith("item.")]
    started, completed = items[0], items[1]
    assert started["type"] == "item.started" and started["item"]["status"] == "in_progress"
    assert started["item"]["command"].startswith("/bin/bash -lc ")
    assert completed["item"]["aggregated_output"] == "a\nb\n"
    assert completed["item"]["exit_code"] == 3 and completed["item"]["status"] == "failed"
    second = fake.bodies()[1]
    check_invariants(second)
    output = next(i for i in second["input"] if i["type"] == "function_call_output")
    assert output["call_id"] == "c1"
    assert output["output"].startswith("Exit code: 3\nWall time: ")
    assert output["output"].endswith("Output:\na\nb\n")


def test_output_schema_sent_and_exit_codes(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    (workspace / "schema.json").write_text(json.dumps(schema))
    fake.add(Reply(message_turn('{"ok": true}')))
    res = run_cli("exec", "--output-schema", "schema.json", "answer", cwd=workspace)
    assert res.code == 0 and res.stdout.strip() == '{"ok": true}'
    assert fake.bodies()[0]["text"]["format"] == {
        "type": "json_schema", "strict": True, "schema": schema, "name": "codex_output_schema",
    }  # fmt: skip


def test_prompt_from_stdin(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("ok")))
    res = run_cli("exec", "--json", "-", cwd=workspace, input="prompt via stdin\n")
    assert res.code == 0, res.stderr
    assert fake.bodies()[0]["input"][-1]["content"][0]["text"] == "prompt via stdin\n"


def test_git_repo_check(home: Path, fake: FakeResponsesServer, tmp_path: Path) -> None:
    write_config(home, fake.base_url)
    bare = tmp_path / "not-a-repo"
    bare.mkdir()
    res = run_cli("exec", "hi", cwd=bare)
    assert res.code == 1
    assert "Not inside a trusted directory and --skip-git-repo-check was not specified." in res.stderr
    assert fake.requests == []
    fake.add(Reply(message_turn("fine")))
    assert run_cli("exec", "--skip-git-repo-check", "hi", cwd=bare).code == 0


def test_turn_failure_exit_code_and_jsonl(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply(status=400, body=b'{"error":{"message":"bad model name","type":"invalid_request_error"}}'))
    res = run_cli("exec", "--json", "hi", cwd=workspace)
    assert res.code == 1
    events = res.events()
    assert events[-2] == {"type": "error", "message": "bad model name"}
    assert events[-1] == {"type": "turn.failed", "error": {"message": "bad model name"}}
    assert len(fake.requests) == 1  # a 400 is not retried


def test_bad_inputs_one_clear_line(home: Path, workspace: Path, fake: FakeResponsesServer) -> None:
    (home / "config.toml").write_text("model = [1, 2\n")
    res = run_cli("exec", "hi", cwd=workspace)
    assert res.code == 1 and "config.toml: invalid TOML" in res.stderr
    write_config(home, fake.base_url)
    res = run_cli("exec", "-p", "nope", "hi", cwd=workspace)
    assert res.code == 1 and "profile `nope` not found" in res.stderr
    res = run_cli("exec", "-c", 'model_provider="ghost"', "hi", cwd=workspace)
    assert res.code == 1 and "model_provider `ghost` is not defined" in res.stderr
    res = run_cli("exec", "hi", cwd=workspace, env={"FAKE_API_KEY": ""})
    assert res.code == 1 and "Missing environment variable: `FAKE_API_KEY`" in res.stderr
    assert "export FAKE_API_KEY=" in res.stderr
    res = run_cli("exec", "--output-schema", "missing.json", "hi", cwd=workspace)
    assert res.code == 1 and "--output-schema: missing.json does not exist" in res.stderr
    res = run_cli("exec", "--sandbox", "bogus", "hi", cwd=workspace)
    assert res.code == 2
    assert fake.requests == []
    for r in (res,):
        assert FAKE_KEY not in r.stderr + r.stdout


def test_unreachable_base_url_names_url_and_attempts(home: Path, workspace: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_config(home, f"http://127.0.0.1:{port}/v1")
    res = run_cli("exec", "--json", "hi", cwd=workspace)
    assert res.code == 1
    failed = res.events()[-1]
    assert failed["type"] == "turn.failed"
    message = failed["error"]["message"]
    assert f"http://127.0.0.1:{port}/v1/responses" in message
    assert "after 2 attempt(s)" in message and "gave up after 2 attempt(s)" in message
    assert FAKE_KEY not in res.stdout + res.stderr


def _rollout_files(home: Path) -> list[Path]:
    return sorted((home / "sessions").glob("*/*/*/rollout-*.jsonl"))


def test_rollout_and_resume_keeps_thread(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    fake.add(
        Reply([ev_created(), ev_shell_command("c1", "echo one"), ev_completed()]),
        Reply(message_turn("first")),
    )
    first = run_cli("exec", "--json", "turn one", cwd=workspace)
    assert first.code == 0, first.stderr
    thread_id = first.events()[0]["thread_id"]
    (rollout,) = _rollout_files(home)
    assert rollout.name.endswith(f"-{thread_id}.jsonl")
    assert oct(rollout.stat().st_mode & 0o777) == "0o600"
    lines = [json.loads(line) for line in rollout.read_text().splitlines()]
    assert lines[0]["type"] == "session_meta" and lines[0]["payload"]["id"] == thread_id
    assert {"session_meta", "turn_context", "response_item", "event_msg"} <= {line["type"] for line in lines}
    assert all(set(line) == {"timestamp", "type", "payload"} for line in lines)
    # The tool output in the rollout is byte for byte what the model was sent.
    recorded = [ln["payload"] for ln in lines if ln["type"] == "response_item"
                and ln["payload"]["type"] == "function_call_output"]  # fmt: skip
    sent = [i for i in fake.bodies()[1]["input"] if i["type"] == "function_call_output"]
    assert recorded == sent

    fake.add(Reply(message_turn("second")))
    again = run_cli("exec", "resume", "--last", "--json", "turn two", cwd=workspace)
    assert again.code == 0, again.stderr
    assert again.events()[0]["thread_id"] == thread_id
    body = fake.bodies()[-1]
    assert body["prompt_cache_key"] == thread_id
    texts = [c.get("text") for i in body["input"] if i["type"] == "message" for c in i["content"]]
    assert "turn one" in texts and "turn two" in texts and "first" in texts
    check_invariants(body)
    # Prefix stability: the resumed request starts with the first request's input.
    first_input = fake.bodies()[0]["input"]
    assert body["input"][: len(first_input)] == first_input
    assert len(_rollout_files(home)) == 1

    fake.add(Reply(message_turn("third")))
    by_id = run_cli("exec", "resume", thread_id[:13], "turn three", "--json", cwd=workspace)
    assert by_id.code == 0, by_id.stderr
    assert by_id.events()[0]["thread_id"] == thread_id


def test_ephemeral_writes_no_rollout(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("x")))
    assert run_cli("exec", "--ephemeral", "hi", cwd=workspace).code == 0
    assert _rollout_files(home) == []


def test_sigkill_mid_turn_leaves_resumable_rollout(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    marker = workspace / "started"
    fake.add(Reply([ev_created(), ev_shell_command("c1", f"touch {marker}; sleep 30"), ev_completed()]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "codexbro", "exec", "--json", "--full-auto", "long job"],
        cwd=workspace, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    (rollout,) = _rollout_files(home)
    thread_id = rollout.stem[-36:]
    fake.add(Reply(message_turn("recovered")))
    res = run_cli("exec", "resume", thread_id, "continue", "--json", cwd=workspace)
    assert res.code == 0, res.stderr
    body = fake.bodies()[-1]
    check_invariants(body)
    out = next(i for i in body["input"] if i["type"] == "function_call_output")
    assert out["call_id"] == "c1" and out["output"] == "aborted"


def test_ctrl_c_interrupts_turn_kills_child(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    pidfile = workspace / "pid"
    fake.add(
        Reply(
            [ev_created(), ev_shell_command("c1", f"echo $$ > {pidfile}; exec sleep 30.2173"), ev_completed()]
        )
    )
    with subprocess.Popen(
        [sys.executable, "-m", "codexbro", "exec", "--json", "--full-auto", "long job"],
        cwd=workspace, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ.copy(),
    ) as proc:  # fmt: skip
        try:
            # generous for a loaded machine; the loop ends as soon as the model's command wrote its pid
            deadline = time.monotonic() + 60
            while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert live_processes_with("sleep 30.2173")
            proc.send_signal(signal.SIGINT)
            stdout, _stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:  # a failure above must not leave the child (and its pipes) behind
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130
    events = [json.loads(line) for line in stdout.splitlines()]
    item = next(e for e in events if e["type"] == "item.completed")
    assert item["item"]["type"] == "command_execution" and item["item"]["status"] == "failed"
    assert events[-1] == {"type": "turn.failed", "error": {"message": "turn interrupted by the user"}}
    time.sleep(0.2)
    assert live_processes_with("sleep 30.2173") == []


def test_stdin_appended_as_block_next_to_prompt(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("ok")))
    res = run_cli("exec", "--json", "summarize this", cwd=workspace, input="line one\nline two\n")
    assert res.code == 0, res.stderr
    assert "Reading additional input from stdin..." in res.stderr
    text = fake.bodies()[0]["input"][-1]["content"][0]["text"]
    assert text == "summarize this\n\n<stdin>\nline one\nline two\n</stdin>"


def test_strict_and_ignore_user_config_and_add_dir(home: Path, fake: FakeResponsesServer, workspace: Path,
                                                   tmp_path: Path) -> None:  # fmt: skip
    write_config(home, fake.base_url, extra="mystery_key = 1")
    res = run_cli("exec", "--strict-config", "hi", cwd=workspace)
    assert (
        res.code == 1
        and "--strict-config:" in res.stderr
        and "unknown config key `mystery_key`" in res.stderr
    )
    fake.add(Reply(message_turn("ok")))
    res = run_cli("exec", "--json", "hi", cwd=workspace)
    assert res.code == 0
    warning = next(e for e in res.events() if e["type"] == "item.completed" and e["item"]["type"] == "error")
    assert "unknown config key `mystery_key`" in warning["item"]["message"]
    extra = tmp_path / "extra"
    extra.mkdir()
    fake.add(Reply(message_turn("ok")))
    res = run_cli("exec", "--json", "-s", "workspace-write", "--add-dir", str(extra), "hi", cwd=workspace)
    assert res.code == 0, res.stderr
    env_text = fake.bodies()[-1]["input"][0]["content"][0]["text"]
    assert f"<root>{extra}</root>" in env_text and "<sandbox_mode>workspace-write</sandbox_mode>" in env_text
    # --ignore-user-config: the file (and its fake provider) is not read at all.
    # (offline_fallback off: where the embedded model is installed it would otherwise run instead.)
    res = run_cli("exec", "--ignore-user-config", "-c", "offline_fallback=false", "hi", cwd=workspace)
    assert res.code == 1 and "No credentials for the OpenAI provider" in res.stderr


def test_reader_going_away_ends_the_turn_like_a_unix_filter(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    """`codexbro exec … | head -1`: the closed pipe stops the turn (its command is killed) and codexbro
    exits with 141 (128 + SIGPIPE) at once, without a traceback — it used to hang for ever."""
    write_config(home, fake.base_url)
    pidfile = workspace / "pid"
    fake.add(
        Reply([ev_created(), ev_shell_command("c1", f"echo $$ > {pidfile}; exec sleep 30"), ev_completed()])
    )
    script = f"{sys.executable} -m codexbro exec --json --full-auto 'long job' | head -1; echo status ${{PIPESTATUS[0]}}"
    started = time.monotonic()
    proc = subprocess.run(["bash", "-c", script], cwd=workspace, capture_output=True, text=True, timeout=30,
                          env=os.environ.copy())  # fmt: skip
    took = time.monotonic() - started
    first, status = proc.stdout.splitlines()
    assert json.loads(first)["type"] == "thread.started" and status == "status 141", proc.stdout
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert took < 8, f"took {took:.1f} s: the turn went on after its reader left"  # the command sleeps 30 s
    if pidfile.exists() and pidfile.read_text().strip():  # the command had started: it was killed
        child = int(pidfile.read_text())
        time.sleep(0.2)
        assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()


def test_an_empty_git_directory_is_not_a_repository(
    home: Path, fake: FakeResponsesServer, tmp_path: Path
) -> None:
    """Sandbox placeholders (codexbro's for a session, upstream Codex's for good) are empty `.git`
    directories: they must not make a directory pass the git check."""
    write_config(home, fake.base_url)
    (tmp_path / ".git").mkdir()
    (tmp_path / "sub").mkdir()
    res = run_cli("exec", "hi", cwd=tmp_path / "sub")
    assert res.code == 1 and "Not inside a trusted directory" in res.stderr
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    fake.add(Reply(message_turn("fine")))
    assert run_cli("exec", "hi", cwd=tmp_path / "sub").code == 0

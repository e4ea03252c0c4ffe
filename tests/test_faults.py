"""Bad input and faults, each found by trying (issue 14.8): nothing hangs, nothing ends in a
traceback, nothing recorded is lost."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_config
from tests.fakes.events import (
    check_invariants,
    ev_completed,
    ev_created,
    ev_message,
    ev_shell_command,
    ev_text_delta,
    message_turn,
)
from tests.fakes.responses_server import FakeResponsesServer, Reply


def _rollouts(home: Path) -> list[Path]:
    return sorted((home / "sessions").rglob("rollout-*.jsonl"))


# ---- a lone surrogate in what the server sends ------------------------------------------------------


def test_a_lone_surrogate_from_the_server_is_replaced_not_fatal(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    bad = "bad \ud800 text and a pair \U0001f600"
    fake.add(
        Reply([ev_created(), ev_shell_command("c1", "echo 'x\udfff'"), ev_completed()]),
        Reply([ev_created(), ev_text_delta(bad), ev_message(bad), ev_completed()]),
    )
    res = run_cli("exec", "--full-auto", "hi", cwd=workspace, timeout=60)
    assert res.code == 0 and "Traceback" not in res.stderr, res.stderr
    assert "bad \ufffd text and a pair \U0001f600" in res.stdout
    (rollout,) = _rollouts(home)
    text = rollout.read_bytes().decode("utf-8")  # strict: the file is valid UTF-8
    assert "bad \ufffd text" in text
    # The tool call ran with the replacement character and the next request was sent.
    outputs = [i for i in fake.bodies()[1]["input"] if i["type"] == "function_call_output"]
    assert "x\ufffd" in outputs[0]["output"], outputs


# ---- the session file cannot be written (disk full) ---------------------------------------------------

UNSHARE = shutil.which("unshare")


def _can_mount_tmpfs() -> str | None:
    if UNSHARE is None:
        return "needs unshare(1) (util-linux)"
    probe = subprocess.run([UNSHARE, "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True, text=True)  # fmt: skip
    return (
        None
        if probe.returncode == 0
        else f"cannot mount a small tmpfs in a user namespace: {probe.stderr.strip()}"
    )


NO_TMPFS = _can_mount_tmpfs()


def _in_small_disk(
    sessions: Path, script: str, size: str, out: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (sh) with ``sessions`` a tmpfs of ``size``; afterwards the tmpfs's contents are
    copied to ``out`` (the tmpfs goes when the namespace does)."""
    sessions.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    wrapped = f'mount -t tmpfs -o size={size} tmpfs "{sessions}" && {{ {script} ; }}; rc=$?; cp -a "{sessions}/." "{out}/"; exit $rc'
    assert UNSHARE is not None
    return subprocess.run([UNSHARE, "--user", "--map-root-user", "--mount", "sh", "-c", wrapped],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.mark.skipif(NO_TMPFS is not None, reason=NO_TMPFS or "")
def test_a_full_disk_ends_the_turn_with_a_clear_error_and_the_session_resumes(
    home: Path, fake: FakeResponsesServer, workspace: Path, tmp_path: Path
) -> None:
    write_config(home, fake.base_url)
    big = "A" * (1536 * 1024)  # the reply that does not fit in the 1 MiB left for the session file
    fake.add(Reply([ev_created(), ev_message(big), ev_completed()]))
    saved = tmp_path / "saved"
    cmd = f'cd "{workspace}" && "{sys.executable}" -m codexbro exec "first question" </dev/null'
    res = _in_small_disk(home / "sessions", cmd, "1m", saved, timeout=60)
    assert res.returncode == 1, (res.stdout[-2000:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr[-2000:]
    assert "could not write the session file" in res.stderr and "No space left on device" in res.stderr, (
        res.stderr
    )
    # What was written is kept, and the session resumes with it.
    shutil.rmtree(home / "sessions")
    shutil.copytree(saved, home / "sessions")
    (rollout,) = _rollouts(home)
    thread_id = rollout.stem[-36:]
    fake.add(Reply(message_turn("second answer")))
    again = run_cli("exec", "resume", thread_id, "second question", cwd=workspace, timeout=60)
    assert again.code == 0, again.stderr
    body = fake.bodies()[-1]
    check_invariants(body)
    texts = [c.get("text") for i in body["input"] if i["type"] == "message" for c in i["content"]]
    assert "first question" in texts and "second question" in texts


SESSION_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from pathlib import Path
    from codexbro.config.loader import Overrides, load_config
    from codexbro import protocol as p
    from codexbro.composition import SessionOptions, start_session

    async def turn(session, text):
        session.submit(p.UserTurn((p.UserInput("text", text=text),)))
        seen = []
        while True:
            msg = (await asyncio.wait_for(session.next_event(), 30)).msg
            seen.append(type(msg).__name__ + ":" + str(getattr(msg, "message", "")))
            if isinstance(msg, (p.TaskComplete, p.TurnAborted)):
                return seen

    async def main():
        filler = Path(sys.argv[1])
        config = load_config(Overrides(cwd=Path.cwd(), flags={"approval_policy": "never", "sandbox_mode": "read-only"}))
        session = start_session(config, SessionOptions())
        report = {"path": None}
        report["one"] = await turn(session, "turn one")           # fits
        with open(filler, "wb") as fh:                            # the disk fills up
            fh.write(b"f" * (1024 * 1024))
        report["two"] = await turn(session, "turn two")           # its reply does not fit
        report["three"] = await turn(session, "turn three")       # still full: refused, nothing sent
        os.unlink(filler)                                         # space again
        report["four"] = await turn(session, "turn four")
        report["path"] = str(session.recorder.path)
        await session.close()
        print(json.dumps(report))

    asyncio.run(main())
    """
)


@pytest.mark.skipif(NO_TMPFS is not None, reason=NO_TMPFS or "")
def test_an_interactive_session_stops_while_the_disk_is_full_and_catches_up_after(
    home: Path, fake: FakeResponsesServer, workspace: Path, tmp_path: Path
) -> None:
    write_config(home, fake.base_url)
    fake.add(
        Reply(message_turn("answer one")),
        Reply([ev_created(), ev_message("B" * (300 * 1024)), ev_completed()]),
        Reply(message_turn("answer four")),
    )
    script = tmp_path / "session.py"
    script.write_text(SESSION_SCRIPT)
    saved = tmp_path / "saved"
    filler = home / "sessions" / "filler"
    cmd = f'cd "{workspace}" && "{sys.executable}" "{script}" "{filler}"'
    res = _in_small_disk(home / "sessions", cmd, "1100k", saved, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["one"][-1].startswith("TaskComplete")
    assert any(e.startswith("ErrorEvent:could not write the session file") for e in report["two"]), report[
        "two"
    ]
    assert report["two"][-1].startswith("TaskComplete")
    assert any("nothing was sent to the model" in e for e in report["three"]), report["three"]
    assert len(fake.bodies()) == 3  # turn three never reached the model
    assert "TaskComplete" in report["four"][-1]
    # The file caught up: loading it gives everything the session held, turn two's question included.
    from codexbro.core.rollout import load_rollout

    rollout = saved / Path(report["path"]).relative_to(home / "sessions")
    loaded = load_rollout(rollout)
    texts = [c.get("text") for i in loaded.history if i.get("type") == "message" for c in i["content"]]
    assert {"turn one", "turn two", "turn four", "answer one", "answer four"} <= set(texts), texts
    for line in rollout.read_bytes().splitlines():
        if line.strip():
            json.loads(line)  # no torn line left in the middle


# ---- -o into a place that cannot take the file -------------------------------------------------------


@pytest.mark.parametrize("where", ["missing/dir/last.txt", "adir"])
def test_output_last_message_is_checked_before_the_turn(
    where: str, home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    (workspace / "adir").mkdir()
    fake.add(Reply(message_turn("the answer")))
    res = run_cli("exec", "-o", str(workspace / where), "hi", cwd=workspace)
    assert res.code == 1 and "Traceback" not in res.stderr, res.stderr
    expected = "does not exist; create it first" if "missing" in where else "is a directory"
    assert expected in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert fake.bodies() == []  # nothing was sent: no turn whose answer would have nowhere to go


def test_output_last_message_written_when_the_directory_exists(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("the answer")))
    (workspace / "out").mkdir()
    res = run_cli("exec", "-o", "out/last.txt", "hi", cwd=workspace)
    assert res.code == 0, res.stderr
    assert (workspace / "out" / "last.txt").read_text() == "the answer"


# ---- a huge output: the head and the tail reach the model, with accurate counts -----------------------


def test_capture_keeps_head_and_tail_and_counts_exactly() -> None:
    from codexbro.tools.capture import Capture

    cap = Capture(budget=1000)
    lines = [f"line {i} é\n".encode() for i in range(100_000)]
    for i in range(0, len(lines), 7):  # odd chunk sizes, as pipes deliver
        cap.add(b"".join(lines[i : i + 7]))
    whole = b"".join(lines)
    out = cap.result()
    assert out.total_bytes == len(whole) and out.total_lines == 100_000
    assert out.text.startswith("line 0 é\nline 1 é\n") and out.text.endswith("line 99999 é\n")
    assert out.omitted_bytes == len(whole) - 1000
    assert out.omitted_chars == len(whole[500:-500].decode())
    assert out.text.encode()[:500] == whole[:500] or "\ufffd" in out.text  # a cut inside é is replaced


@pytest.mark.parametrize("tool", ["shell_command", "exec_command"])
async def test_a_100_mb_output_ends_with_its_last_lines_and_true_counts(tool: str, tmp_path: Path) -> None:
    from tests.sandbox_support import ctx_for
    from tests.sandbox_support import tool as call_tool

    ws = tmp_path / "ws"
    ws.mkdir()
    ctx = ctx_for("danger-full-access", ws, "none")
    script = "seq 1 12000000; echo THE-END-OF-THE-BUILD"  # 97.9 MB, 12000001 lines
    total = sum(len(str(i)) + 1 for i in range(1, 12_000_001)) + len("THE-END-OF-THE-BUILD\n")
    if tool == "shell_command":
        out = await call_tool(
            ctx, "shell_command", {"command": script, "login": False, "timeout_ms": 120_000}
        )
        assert "Total output lines: 12000001" in out, out[:300]
    else:
        out = await call_tool(ctx, "exec_command", {"cmd": script, "yield_time_ms": 30_000, "login": False})
        assert "Process exited with code 0" in out and f"Original token count: {-(-total // 4)}" in out, out[
            :400
        ]
    assert out.rstrip().endswith("THE-END-OF-THE-BUILD"), out[-300:]
    body = out.split("Output:\n", 1)[1]
    if body.startswith("Warning: truncated output"):  # exec_command's header before the text
        body = body.split("\n\n", 1)[1]
    (count, unit) = re.findall(r"…(\d+) (tokens|chars) truncated…", body)[0]
    kept = len(body.encode()) - len(f"…{count} {unit} truncated…".encode())
    if unit == "chars":  # ASCII: exact
        assert int(count) == total - kept, (count, total, kept)
    else:
        assert abs(int(count) * 4 - (total - kept)) < 4, (count, total, kept)


# ---- a server asking to wait an hour ---------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_a_long_retry_after_is_capped_and_announced(
    status: int, home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    """429 is retried by the turn, 503 by the request layer: both cap the wait and say so."""
    write_config(home, fake.base_url, extra="retry_wait_max_ms = 1000")
    fake.add(
        Reply(
            status=status, headers={"retry-after": "3600"}, body=b'{"error":{"message":"come back later"}}'
        ),
        Reply(message_turn("after the wait")),
    )
    started = time.monotonic()
    res = run_cli("exec", "hi", cwd=workspace, timeout=30)
    elapsed = time.monotonic() - started
    assert res.code == 0 and "after the wait" in res.stdout, res.stderr
    assert "waiting 1 s before retrying: the server asked for 3600 s" in res.stderr + res.stdout, res.stderr
    assert elapsed < 20


def test_retry_wait_max_must_be_positive(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url, extra="retry_wait_max_ms = 0")
    res = run_cli("exec", "hi", cwd=workspace)
    assert res.code == 1 and "retry_wait_max_ms" in res.stderr and "positive integer" in res.stderr, (
        res.stderr
    )


# ---- terminal control sequences in what the model or a command prints --------------------------------

HOSTILE = "start \x1b]52;c;ZXZpbA==\x07 clip \x1b[2J clear \x1b]0;title\x07 \x9b31m hidden\rshown end"


def test_human_output_neutralises_terminal_control_sequences(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    command = "printf 'out \\033[2J \\033]52;c;ZXZpbA==\\007 x\\rY\\n'"
    fake.add(
        Reply([ev_created(), ev_shell_command("c1", command), ev_completed()]),
        Reply(message_turn(HOSTILE)),
    )
    res = run_cli("exec", "--full-auto", "--color", "always", "hi", cwd=workspace)
    assert res.code == 0, res.stderr
    ours = {"\x1b[36m", "\x1b[35m", "\x1b[32m", "\x1b[0m", "\x1b[35;1m", "\x1b[35;3m"}
    stripped = res.stderr
    for code in ours:
        stripped = stripped.replace(code, "")
    assert "\x1b" not in stripped and "\x9b" not in stripped and "\r" not in stripped, repr(stripped[-600:])
    assert "␛]52;c;ZXZpbA==␇ clip ␛[2J clear" in stripped and "hidden␍shown" in stripped, stripped
    assert "out ␛[2J ␛]52;c;ZXZpbA==␇ x␍Y" in stripped
    # stdout is a file here: the answer as it was (run_cli reads text mode: \r arrives as \n)
    assert res.stdout == HOSTILE.replace("\r", "\n") + "\n", repr(res.stdout)


def test_the_final_message_on_a_terminal_is_neutralised_too(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    import os
    import pty

    write_config(home, fake.base_url)
    fake.add(Reply(message_turn(HOSTILE)))
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "codexbro", "exec", "hi"], cwd=workspace, stdin=subprocess.DEVNULL,
                                stdout=slave, stderr=subprocess.PIPE)  # fmt: skip
        os.close(slave)
        _out, err = proc.communicate(timeout=60)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
    shown = b"".join(chunks).decode()
    assert proc.returncode == 0, err
    assert "\x1b" not in shown and "␛]52;c;ZXZpbA==␇" in shown, repr(shown)

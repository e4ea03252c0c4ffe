"""Faults found by a second round of trying to break codexbro (issue 14.8): bytes that are not
UTF-8 anywhere they can come from, a session file deleted or failing at its edges, a lock file that
is not a file, output split inside a character, others' text on the terminal, and server numbers
out of range. Each test fails without its fix."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from codexbro import protocol as p
from codexbro.composition import SessionOptions, start_session
from codexbro.config.loader import Overrides, load_config
from codexbro.core.rollout import RolloutRecorder, load_rollout
from codexbro.core.session import Session
from tests.conftest import run_cli, write_config
from tests.fakes.events import (
    check_invariants,
    ev_completed,
    ev_created,
    ev_function_call,
    message_turn,
)
from tests.fakes.responses_server import FakeResponsesServer, Reply
from tests.test_faults import NO_TMPFS, _in_small_disk


def _rollouts(home: Path) -> list[Path]:
    return sorted((home / "sessions").rglob("rollout-*.jsonl"))


def _texts(items: list[dict[str, Any]]) -> list[str]:
    return [c.get("text", "") for i in items if i.get("type") == "message" for c in i["content"]]


# ---- lone surrogates: in a session file, in an error body -------------------------------------------


def test_a_session_file_holding_an_escaped_lone_surrogate_resumes(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    """Another tool (or an old version) wrote ``"\\ud800"``: JSON allows the escape, UTF-8 cannot
    encode it. Before: resume ended in an internal error (UnicodeEncodeError) when the request was
    encoded. Now the character is U+FFFD and the session goes on."""
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("first answer")))
    assert run_cli("exec", "first question", cwd=workspace).code == 0
    (rollout,) = _rollouts(home)
    raw = rollout.read_text()
    assert '"first answer"' in raw
    rollout.write_text(raw.replace('"first answer"', '"first \\ud800 answer"'))
    fake.add(Reply(message_turn("second answer")))
    res = run_cli("exec", "resume", rollout.stem[-36:], "second question", cwd=workspace)
    assert res.code == 0 and "Traceback" not in res.stderr, res.stderr
    body = fake.bodies()[-1]
    check_invariants(body)
    assert "first \ufffd answer" in _texts(body["input"])


def test_an_error_body_with_an_escaped_lone_surrogate_fails_the_turn_cleanly(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    fake.add(
        Reply(status=400, body=b'{"error":{"message":"bad \\ud800 input","type":"invalid_request_error"}}')
    )
    res = run_cli("exec", "--json", "hi", cwd=workspace)
    assert res.code == 1 and "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    failed = [e for e in res.events() if e["type"] == "turn.failed"]
    assert failed and "bad \ufffd input" in failed[0]["error"]["message"], res.stdout


def test_a_working_directory_whose_name_is_not_utf8_works(
    home: Path, fake: FakeResponsesServer, tmp_path: Path
) -> None:
    """Before: the first request failed (UnicodeEncodeError on the cwd in the context, then in
    the token estimate); list_dir failed on a file name that is not UTF-8. A name that is not
    UTF-8 reaches the model as U+FFFD (as upstream's lossy paths do)."""
    write_config(home, fake.base_url)
    ws = os.fsencode(tmp_path) + b"/proj-\xff"
    os.mkdir(ws)
    with open(ws + b"/name-\xfe.txt", "wb") as fh:
        fh.write(b"x")
    fake.add(
        Reply(
            [
                ev_created(),
                ev_function_call("c1", "list_dir", {"dir_path": str(tmp_path), "depth": 2}),
                ev_completed(),
            ]
        ),
        Reply(message_turn("listed")),
    )
    proc = subprocess.run([sys.executable, "-m", "codexbro", "exec", "-c", "tools.list_dir=true",
                           "--skip-git-repo-check", "--full-auto", "look"], cwd=ws, capture_output=True,
                          timeout=60)  # fmt: skip
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0 and "Traceback" not in err and "internal error" not in err, err
    assert b"listed" in proc.stdout
    first = fake.bodies()[0]
    assert "proj-\ufffd" in json.dumps(first["input"], ensure_ascii=False)
    outputs = [i for i in fake.bodies()[1]["input"] if i["type"] == "function_call_output"]
    assert "name-\ufffd.txt" in outputs[0]["output"], outputs


# ---- the session file: deleted mid-session, failing at a turn's edges, not creatable ----------------


def _session(home: Path, fake: FakeResponsesServer, cwd: Path) -> Session:
    write_config(home, fake.base_url)
    config = load_config(Overrides(cwd=cwd, flags={"approval_policy": "never", "sandbox_mode": "read-only"}))
    return start_session(config, SessionOptions())


async def _turn(session: Session, text: str) -> list[p.EventMsg]:
    session.submit(p.UserTurn((p.UserInput("text", text=text),)))
    seen: list[p.EventMsg] = []
    while True:
        msg = (await asyncio.wait_for(session.next_event(), 30)).msg
        seen.append(msg)
        if isinstance(msg, p.TaskComplete | p.TurnAborted):
            return seen


async def test_a_session_file_deleted_mid_session_is_written_again_whole(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    """A user frees space with `rm -r ~/.codexbro/sessions` while a session runs. Before: the
    session went on writing to the deleted file and nothing of it could be resumed."""
    fake.add(Reply(message_turn("answer one")), Reply(message_turn("answer two")))
    session = _session(home, fake, workspace)
    path = session.recorder.path
    await _turn(session, "turn one")
    shutil.rmtree(home / "sessions")
    events = await _turn(session, "turn two")
    assert isinstance(events[-1], p.TaskComplete) and not [e for e in events if isinstance(e, p.ErrorEvent)]
    await session.close()
    assert path.exists()
    loaded = load_rollout(path)
    texts = _texts(loaded.history)
    for text in ("turn one", "answer one", "turn two", "answer two"):
        assert texts.count(text) == 1, (text, texts)
    assert loaded.meta["id"] == session.thread_id
    # and it resumes
    fake.add(Reply(message_turn("answer three")))
    res = run_cli("exec", "resume", session.thread_id, "turn three", cwd=workspace)
    assert res.code == 0, res.stderr
    assert {"turn one", "answer two", "turn three"} <= set(_texts(fake.bodies()[-1]["input"]))


def _fail_writes_of(monkeypatch: pytest.MonkeyPatch, marker: bytes, times: int = 1) -> list[int]:
    left = [times]
    real = RolloutRecorder._append

    def append(self: RolloutRecorder, data: bytes) -> None:
        if marker in data and left[0] > 0:
            left[0] -= 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(self, data)

    monkeypatch.setattr(RolloutRecorder, "_append", append)
    return left


async def test_a_failed_write_of_the_turns_end_is_said(
    home: Path, fake: FakeResponsesServer, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The turn's last record (task_complete) cannot be written. Before: nothing said so — the
    turn looked saved."""
    fake.add(Reply(message_turn("answer one")))
    session = _session(home, fake, workspace)
    _fail_writes_of(monkeypatch, b'"task_complete"')
    events = await _turn(session, "turn one")
    assert isinstance(events[-1], p.TaskComplete)
    after = (await asyncio.wait_for(session.next_event(), 10)).msg
    assert isinstance(after, p.ErrorEvent) and "could not write the session file" in after.message, after
    await session.close()


EXEC_WITH_FAULT = textwrap.dedent(
    """
    import errno, os, sys
    from codexbro.core.rollout import RolloutRecorder
    real = RolloutRecorder._append
    def append(self, data):
        if b'"task_complete"' in data:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(self, data)
    RolloutRecorder._append = append
    from codexbro.cli.main import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_exec_exits_1_when_the_turns_end_was_not_saved(
    home: Path, fake: FakeResponsesServer, workspace: Path, tmp_path: Path
) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("the answer")))
    script = tmp_path / "faulty.py"
    script.write_text(EXEC_WITH_FAULT)
    proc = subprocess.run([sys.executable, str(script), "exec", "hi"], cwd=workspace, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert "the answer" in proc.stdout
    assert proc.returncode == 1 and "could not write the session file" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


async def test_a_turn_whose_start_was_not_saved_is_not_carried_into_the_next(
    home: Path, fake: FakeResponsesServer, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the refused turn's prompt stayed in the history and went to the model with the next
    turn, which the user never asked for."""
    fake.add(Reply(message_turn("answer one")), Reply(message_turn("answer three")))
    session = _session(home, fake, workspace)
    await _turn(session, "turn one")
    _fail_writes_of(monkeypatch, b'"turn_context"')
    refused = await _turn(session, "turn two SECRET-PLAN")
    errors = [e.message for e in refused if isinstance(e, p.ErrorEvent)]
    assert any("could not write the session file" in m for m in errors), refused
    assert len(fake.bodies()) == 1
    await _turn(session, "turn three")
    await session.close()
    sent = json.dumps(fake.bodies()[-1]["input"])
    assert "SECRET-PLAN" not in sent and "turn three" in sent and "turn one" in sent
    check_invariants(fake.bodies()[-1])
    texts = _texts(load_rollout(session.recorder.path).history)
    assert "turn three" in texts and not any("SECRET-PLAN" in t for t in texts)


@pytest.mark.skipif(NO_TMPFS is not None, reason=NO_TMPFS or "")
def test_a_session_file_that_cannot_be_created_leaves_nothing(
    home: Path, fake: FakeResponsesServer, workspace: Path, tmp_path: Path
) -> None:
    """The disk is full before the first line. Before: a traceback and an empty session file that
    `resume --last` then picked."""
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("never")))
    saved = tmp_path / "saved"
    sessions = home / "sessions"
    fill = f'head -c 65536 /dev/zero > "{sessions}/filler" 2>/dev/null; '  # full before the first line
    cmd = fill + f'cd "{workspace}" && "{sys.executable}" -m codexbro exec "hi" </dev/null'
    res = _in_small_disk(sessions, cmd, "16k", saved, timeout=60)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "could not create the session file" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not list(saved.rglob("rollout-*.jsonl"))
    assert fake.bodies() == []


# ---- the login's lock file is not a file -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["directory", "link"])
def test_a_lock_path_that_is_not_a_file_is_a_clear_error(kind: str, tmp_path: Path) -> None:
    from codexbro.auth import storage
    from codexbro.errors import AuthError

    home = tmp_path / "codex-home"
    home.mkdir()
    lock = home / storage.LOCK_NAME
    if kind == "directory":
        lock.mkdir()
    else:
        target = tmp_path / "elsewhere"
        lock.symlink_to(target)
    with pytest.raises(AuthError, match="cannot open the login's lock file"):
        storage.try_lock(home)
    if kind == "link":
        assert not (tmp_path / "elsewhere").exists()  # the link was not followed


# ---- output split inside a character -------------------------------------------------------------------


def test_the_seam_between_head_and_tail_never_splits_a_character() -> None:
    from codexbro.tools.capture import BUDGET_BYTES, Capture

    cap = Capture()
    half = BUDGET_BYTES // 2
    data = b"a" * (half - 1) + "é end".encode() + b"b" * (BUDGET_BYTES * 2) + "ü done".encode()
    cap.add(data)
    out = cap.result()
    assert "\ufffd" not in out.text
    assert out.text.startswith("a" * (half - 1)) and out.text.endswith("ü done")
    assert out.omitted_bytes == len(data) - len(out.text.encode())
    assert out.omitted_chars == len(data.decode()) - len(out.text)


def test_head_and_tail_are_whole_characters_for_any_chunking() -> None:
    from codexbro.tools.capture import Capture

    rng = random.Random(7)
    alphabet = ["a", "\n", "é", "€", "😀", "ж"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        data = text.encode()
        cap = Capture(budget=rng.randint(8, 200))
        i = 0
        while i < len(data):
            n = rng.randint(1, 9)
            cap.add(data[i : i + n])
            i += n
        out = cap.result()
        assert "\ufffd" not in out.text, (text, out.text)
        assert out.omitted_chars == len(text) - len(out.text)
        assert out.omitted_bytes == len(data) - len(out.text.encode())
        assert text.startswith(out.text[: out.seam]) and text.endswith(out.text[out.seam :])


async def test_a_character_split_between_two_polls_arrives_whole(tmp_path: Path) -> None:
    """Before: `caf\\xc3` then `\\xa9` came back as `caf\ufffd` and `\ufffd`."""
    from tests.sandbox_support import ctx_for, tool

    ws = tmp_path / "ws"
    ws.mkdir()
    ctx = ctx_for("danger-full-access", ws, "none")
    first = await tool(ctx, "exec_command", {"cmd": "printf 'caf\\303'; sleep 1.5; printf '\\251!'",
                                             "yield_time_ms": 400, "login": False})  # fmt: skip
    sid = re.search(r"session ID (\d+)", first)
    assert sid, first
    second = await tool(
        ctx, "write_stdin", {"session_id": int(sid.group(1)), "chars": "", "yield_time_ms": 5000}
    )
    joined = first.split("Output:\n", 1)[1] + second.split("Output:\n", 1)[1]
    assert "\ufffd" not in joined and "café!" in joined.replace("\n", ""), (first, second)


# ---- others' text on the terminal ----------------------------------------------------------------------


def test_trace_show_neutralises_what_the_model_chose(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    hostile = "rm \x1b]0;owned\x07 \u202eexe.txt"
    records = [
        {"kind": "session", "t": 0.0, "thread_id": "x"},
        {"kind": "command", "t": 0.1, "command": ["bash", "-c", hostile], "exit_code": 0, "duration_ms": 1},
    ]
    trace.write_text("".join(json.dumps(r) + "\n" for r in records))
    res = run_cli("trace", "show", str(trace))
    assert res.code == 0, res.stderr
    assert "\x1b" not in res.stdout and "\u202e" not in res.stdout and "\x07" not in res.stdout


def test_cloud_task_titles_are_neutralised(home: Path, fake: FakeResponsesServer) -> None:
    from tests import test_chatgpt_backend as backend

    title = "Fix \x1b]52;c;ZXZpbA==\x07 it \u202egnp.exe"
    original = backend.TASKS["items"][0]["title"]
    backend.TASKS["items"][0]["title"] = title
    try:
        backend.setup(home, fake)
        res = run_cli("cloud", "list")
    finally:
        backend.TASKS["items"][0]["title"] = original
    assert res.code == 0, res.stderr
    assert "task_e_1" in res.stdout and "\x1b" not in res.stdout and "\u202e" not in res.stdout
    assert "␛]52;c;ZXZpbA==␇" in res.stdout


# ---- numbers out of range from a server ------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "wait", "note"),
    [(float("nan"), 2.0, None), (-5.0, 2.0, None), (float("inf"), 60.0, "an unlimited time"),
     (1e300, 60.0, "waiting 60 s"), (None, 2.0, None)],
)  # fmt: skip
def test_retry_wait_takes_only_sensible_asks(asked: float | None, wait: float, note: str | None) -> None:
    from codexbro.api.responses import retry_wait

    got, said = retry_wait(asked, 2.0, 60.0)
    assert got == wait
    assert (said is None) if note is None else (said is not None and note in said)


@pytest.mark.parametrize("resets", [10**20, -(10**20)])
def test_a_reset_time_out_of_range_is_said_not_raised(resets: int) -> None:
    from codexbro.api.classify import classify_status

    body = json.dumps(
        {"error": {"type": "usage_limit_reached", "message": "x", "resets_at": resets}}
    ).encode()
    err = classify_status(429, body, {}, "https://chatgpt.com/backend-api/codex/responses", None)
    assert "usage limit" in err.message and "impossible time" in err.message


# ---- -o through a link or into a pipe --------------------------------------------------------------


def test_output_last_message_through_a_link_writes_its_target(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    """Before: the link was replaced by a regular file (and `-o /dev/stdout` refused)."""
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("the answer")))
    target = workspace / "real.txt"
    target.write_text("old")
    link = workspace / "last.txt"
    link.symlink_to(target)
    res = run_cli("exec", "-o", str(link), "hi", cwd=workspace)
    assert res.code == 0, res.stderr
    assert link.is_symlink() and target.read_text() == "the answer"


def test_output_last_message_into_a_fifo(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("piped answer")))
    fifo = workspace / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    res = run_cli("exec", "-o", str(fifo), "hi", cwd=workspace)
    reader.join(30)
    assert res.code == 0, res.stderr
    assert got == [b"piped answer"] and stat.S_ISFIFO(fifo.lstat().st_mode)


async def test_a_failed_write_of_a_manual_compaction_is_said(
    home: Path, fake: FakeResponsesServer, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`/compact` whose "compacted" record cannot be written. The write asks for the task to be
    cancelled, but compaction returns without another pause, so the cancel never got in: before,
    the compaction ended as a success with the session file short of it."""
    fake.add(Reply(message_turn("a long answer " * 400)), Reply(message_turn("the summary")))
    session = _session(home, fake, workspace)
    await _turn(session, "turn one")
    _fail_writes_of(monkeypatch, b'"compacted"')
    session.submit(p.Compact())
    seen: list[p.EventMsg] = []
    while not isinstance(seen[-1:] and seen[-1], p.TaskComplete | p.TurnAborted):
        seen.append((await asyncio.wait_for(session.next_event(), 30)).msg)
    await session.close()
    errors = [e.message for e in seen if isinstance(e, p.ErrorEvent)]
    assert any("could not write the session file" in m for m in errors), seen
    assert isinstance(seen[-1], p.TaskComplete)

"""read_file, list_dir, grep_files, view_image, update_plan, request_user_input, unified exec and the
menu rules — real files, real processes, a real PTY."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

import pytest

from codexbro.config.loader import Overrides, load_config
from codexbro.models.catalog import ModelCatalog, ModelInfo
from codexbro.protocol import EventMsg, ExecCommandEnd, PlanUpdate
from codexbro.tools.base import ToolCall
from codexbro.tools.exec_sessions import ExecSessions
from codexbro.tools.handlers.files import ListDirHandler, ReadFileHandler
from codexbro.tools.handlers.grep import GrepFilesHandler, find_rg
from codexbro.tools.handlers.misc import RequestUserInputHandler, UpdatePlanHandler, ViewImageHandler
from codexbro.tools.handlers.unified_exec import ExecCommandHandler, WriteStdinHandler
from codexbro.tools.menu import build_router
from codexbro.tools.router import ToolRouter
from tests.conftest import run_cli, write_config
from tests.fakes.events import ev_completed, ev_created, ev_function_call, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply
from tests.test_shell_tool import ctx

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def call(name: str, args: dict[str, object]) -> ToolCall:
    return ToolCall("c", name, "function", arguments=json.dumps(args))


async def run(
    handler: object, name: str, args: dict[str, object], cwd: Path, events: list[EventMsg] | None = None
) -> str:
    router = ToolRouter([handler])  # type: ignore[list-item]
    res = await router.dispatch(call(name, args), ctx(cwd, events))
    content = res.output.content
    return content if isinstance(content, str) else json.dumps(content)


async def test_read_file_slice_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_bytes(b"one\r\ntwo\nthree\n" + b"x" * 600 + b"\n")
    h = ReadFileHandler()
    assert (
        await run(h, "read_file", {"file_path": str(f)}, tmp_path)
        == "L1: one\nL2: two\nL3: three\nL4: " + "x" * 500
    )
    assert await run(h, "read_file", {"file_path": str(f), "offset": 2, "limit": 1}, tmp_path) == "L2: two"
    assert await run(h, "read_file", {"file_path": "a.txt"}, tmp_path) == "file_path must be an absolute path"
    assert (
        await run(h, "read_file", {"file_path": str(f), "offset": 0}, tmp_path)
        == "offset must be a 1-indexed line number"
    )
    assert (
        await run(h, "read_file", {"file_path": str(f), "offset": 99}, tmp_path)
        == "offset exceeds file length"
    )
    assert (await run(h, "read_file", {"file_path": str(tmp_path / "nope")}, tmp_path)).startswith(
        "failed to read file: No such file"
    )
    (tmp_path / "bin").write_bytes(b"\x00\x01\x02")
    assert "binary file" in await run(h, "read_file", {"file_path": str(tmp_path / "bin")}, tmp_path)


async def test_read_file_indentation_mode(tmp_path: Path) -> None:
    src = "class A:\n    # header\n    def f(self):\n        x = 1\n        return x\n\n    def g(self):\n        pass\n"
    f = tmp_path / "m.py"
    f.write_text(src)
    out = await run(ReadFileHandler(), "read_file",
                    {"file_path": str(f), "mode": "indentation", "indentation": {"anchor_line": 4, "max_levels": 1}},
                    tmp_path)  # fmt: skip
    # As upstream: going down, the first line back at min_indent (a sibling header) is still taken.
    assert out == (
        "L2:     # header\nL3:     def f(self):\nL4:         x = 1\nL5:         return x\nL6: \n"
        "L7:     def g(self):\nL8:         pass"
    )
    whole = await run(ReadFileHandler(), "read_file",
                      {"file_path": str(f), "mode": "indentation", "indentation": {"anchor_line": 4}}, tmp_path)  # fmt: skip
    assert whole.startswith("L1: class A:") and "L8:         pass" in whole
    bad = await run(ReadFileHandler(), "read_file",
                    {"file_path": str(f), "mode": "indentation", "indentation": {"anchor_line": 50}}, tmp_path)  # fmt: skip
    assert bad == "anchor_line exceeds file length"


async def test_list_dir(tmp_path: Path) -> None:
    tmp_path = tmp_path / "tree"
    tmp_path.mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "inner.txt").write_text("x")
    (tmp_path / "b" / "deep").mkdir()
    (tmp_path / "b" / "deep" / "hidden.txt").write_text("x")
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "a.txt")
    out = await run(ListDirHandler(), "list_dir", {"dir_path": str(tmp_path)}, tmp_path)
    assert out == f"Absolute path: {tmp_path}\na.txt\nb/\n  deep/\n  inner.txt\nlink@"
    page = await run(ListDirHandler(), "list_dir", {"dir_path": str(tmp_path), "limit": 2}, tmp_path)
    assert page.endswith("More than 2 entries found")
    assert (
        await run(ListDirHandler(), "list_dir", {"dir_path": "rel"}, tmp_path)
        == "dir_path must be an absolute path"
    )
    assert (
        await run(ListDirHandler(), "list_dir", {"dir_path": str(tmp_path), "depth": 0}, tmp_path)
        == "depth must be greater than zero"
    )


@pytest.mark.skipif(
    find_rg() is None, reason="ripgrep is not installed (the ripgrep wheel is Linux x86_64 only)"
)
async def test_grep_files_newest_first(tmp_path: Path) -> None:
    for i, name in enumerate(["old.py", "mid.py", "new.py"]):
        p = tmp_path / name
        p.write_text("needle\n")
        os.utime(p, (1_000_000 + i * 100, 1_000_000 + i * 100))
    (tmp_path / "other.txt").write_text("needle\n")
    out = await run(GrepFilesHandler(), "grep_files", {"pattern": "needle", "include": "*.py"}, tmp_path)
    assert [Path(line).name for line in out.splitlines()] == ["new.py", "mid.py", "old.py"]
    assert (
        len(
            (
                await run(GrepFilesHandler(), "grep_files", {"pattern": "needle", "limit": 1}, tmp_path)
            ).splitlines()
        )
        == 1
    )
    assert (
        await run(GrepFilesHandler(), "grep_files", {"pattern": "absent_zzz"}, tmp_path)
        == "No matches found."
    )
    assert (
        await run(GrepFilesHandler(), "grep_files", {"pattern": "x", "path": "missing"}, tmp_path)
    ).startswith("unable to access")


async def test_view_image(tmp_path: Path) -> None:
    (tmp_path / "dot.png").write_bytes(PNG_1PX)
    out = json.loads(await run(ViewImageHandler(), "view_image", {"path": "dot.png"}, tmp_path))
    assert out[0]["type"] == "input_image" and out[0]["image_url"].startswith("data:image/png;base64,iVBOR")
    (tmp_path / "fake.png").write_text("not an image")
    assert await run(ViewImageHandler(), "view_image", {"path": "fake.png"}, tmp_path) == (
        "unable to process image: invalid or unsupported image data"
    )
    assert "No such file or directory (os error 2)" in await run(
        ViewImageHandler(), "view_image", {"path": "x.png"}, tmp_path
    )


async def test_update_plan_and_request_user_input(tmp_path: Path) -> None:
    events: list[EventMsg] = []
    plan = [{"step": "read", "status": "completed"}, {"step": "fix", "status": "in_progress"}]
    assert await run(UpdatePlanHandler(), "update_plan", {"plan": plan}, tmp_path, events) == "Plan updated"
    assert isinstance(events[0], PlanUpdate) and events[0].plan == plan
    two = [{"step": "a", "status": "in_progress"}, {"step": "b", "status": "in_progress"}]
    assert "at most one step" in await run(UpdatePlanHandler(), "update_plan", {"plan": two}, tmp_path)
    q = {
        "questions": [
            {"id": "q", "header": "H", "question": "?", "options": [{"label": "a", "description": "d"}]}
        ]
    }
    assert await run(RequestUserInputHandler(), "request_user_input", q, tmp_path) == (
        "request_user_input is unavailable in Default mode"
    )


async def test_exec_command_exit_and_session(tmp_path: Path) -> None:
    sessions = ExecSessions()
    h, w = ExecCommandHandler(sessions), WriteStdinHandler(sessions)
    events: list[EventMsg] = []
    done = await run(h, "exec_command", {"cmd": "echo hi; exit 3", "login": False}, tmp_path, events)
    assert re.match(r"Chunk ID: [0-9a-f]{6}\nWall time: \d+\.\d{4} seconds\nProcess exited with code 3\n"
                    r"Original token count: 1\nOutput:\nhi\n$", done)  # fmt: skip
    assert any(isinstance(e, ExecCommandEnd) and e.exit_code == 3 for e in events)
    started = time.monotonic()
    running = await run(h, "exec_command", {"cmd": "echo start; sleep 1.5; echo finish", "login": False,
                                            "yield_time_ms": 300}, tmp_path)  # fmt: skip
    assert time.monotonic() - started < 1.2
    sid = int(re.search(r"Process running with session ID (\d+)", running).group(1))  # type: ignore[union-attr]
    assert running.endswith("Output:\nstart\n")
    polled = await run(w, "write_stdin", {"session_id": sid}, tmp_path)
    assert "Process exited with code 0" in polled and polled.endswith("finish\n")
    assert (
        await run(w, "write_stdin", {"session_id": sid}, tmp_path)
        == f"write_stdin failed: Unknown process id {sid}"
    )
    await sessions.aclose()


async def test_write_stdin_pty_and_pipe(tmp_path: Path) -> None:
    sessions = ExecSessions()
    h, w = ExecCommandHandler(sessions), WriteStdinHandler(sessions)
    first = await run(h, "exec_command", {"cmd": "read line; echo got:$line", "tty": True, "login": False,
                                          "yield_time_ms": 300}, tmp_path)  # fmt: skip
    sid = int(re.search(r"session ID (\d+)", first).group(1))  # type: ignore[union-attr]
    answer = await run(
        w, "write_stdin", {"session_id": sid, "chars": "abc\n", "yield_time_ms": 2000}, tmp_path
    )
    assert "got:abc" in answer and "abc\r\n" in answer  # a real terminal echoes the input
    pipe = await run(h, "exec_command", {"cmd": "sleep 5", "login": False, "yield_time_ms": 250}, tmp_path)
    pid = int(re.search(r"session ID (\d+)", pipe).group(1))  # type: ignore[union-attr]
    assert (await run(w, "write_stdin", {"session_id": pid, "chars": "x"}, tmp_path)).startswith(
        "stdin is closed"
    )
    await sessions.aclose()


async def test_exec_command_truncates_and_cancel_kills(tmp_path: Path) -> None:
    sessions = ExecSessions()
    h = ExecCommandHandler(sessions)
    big = await run(
        h, "exec_command", {"cmd": "seq 1 30000", "login": False, "max_output_tokens": 200}, tmp_path
    )
    assert "Warning: truncated output (original token count:" in big and "Total output lines: 30000" in big
    assert "tokens truncated…" in big and big.endswith("30000\n")
    pidfile = tmp_path / "pid"
    task = asyncio.ensure_future(run(h, "exec_command", {"cmd": f"echo $$ > {pidfile}; exec sleep 30",
                                                         "login": False}, tmp_path))  # fmt: skip
    while not (pidfile.exists() and pidfile.read_text().strip()):
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not Path(f"/proc/{int(pidfile.read_text())}").exists()
    assert sessions.processes == {}
    await sessions.aclose()


def test_menu_follows_catalog_and_config(home: Path) -> None:
    cat = ModelCatalog.bundled()

    def names(model: ModelInfo, *overrides: str) -> list[str]:
        return build_router(model, load_config(Overrides(cli_overrides=list(overrides)))).names()

    assert names(cat.resolve("gpt-5.1-codex").info) == [
        "shell_command",
        "update_plan",
        "apply_patch",
        "view_image",
    ]
    assert names(cat.resolve("gpt-5").info) == ["shell", "update_plan", "view_image"]
    assert names(cat.resolve("gpt-oss-20b").info) == ["shell_command", "update_plan", "apply_patch"]
    assert names(cat.resolve("gpt-5.1-codex").info, "features.unified_exec=true", "tools.update_plan=false")[:2] == [
        "exec_command", "write_stdin",
    ]  # fmt: skip
    with_files = names(
        cat.resolve("gpt-5.1-codex").info, "tools.read_file=true", "tools.list_dir={enabled=true}"
    )
    assert "read_file" in with_files and "list_dir" in with_files
    assert "shell_command" not in names(cat.resolve("gpt-5.1-codex").info, "features.shell_tool=false")
    web = names(cat.resolve("gpt-5.1-codex").info, 'web_search="live"')
    assert "web_search" in web


def test_plan_becomes_todo_list_items(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    plan1 = {"plan": [{"step": "look", "status": "in_progress"}, {"step": "fix", "status": "pending"}]}
    plan2 = {"plan": [{"step": "look", "status": "completed"}, {"step": "fix", "status": "in_progress"}]}
    fake.add(Reply([ev_created(), ev_function_call("p1", "update_plan", plan1), ev_completed()]),
             Reply([ev_created(), ev_function_call("p2", "update_plan", plan2), ev_completed()]),
             Reply(message_turn("done")))  # fmt: skip
    res = run_cli("exec", "--json", "plan it", cwd=workspace)
    assert res.code == 0, res.stderr
    todo = [e for e in res.events() if e.get("item", {}).get("type") == "todo_list"]
    assert [e["type"] for e in todo] == ["item.started", "item.updated", "item.completed"]
    assert todo[-1]["item"]["items"] == [
        {"text": "look", "completed": True},
        {"text": "fix", "completed": False},
    ]


async def test_process_limit_prunes_least_recently_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codexbro.tools import exec_sessions

    monkeypatch.setattr(exec_sessions, "MAX_PROCESSES", 4)
    monkeypatch.setattr(exec_sessions, "PROTECTED_RECENT", 2)
    sessions = ExecSessions()
    h = ExecCommandHandler(sessions)
    ids = []
    for _ in range(4):
        out = await run(
            h, "exec_command", {"cmd": "sleep 30", "login": False, "yield_time_ms": 250}, tmp_path
        )
        ids.append(int(re.search(r"session ID (\d+)", out).group(1)))  # type: ignore[union-attr]
    oldest = sessions.get(ids[0])
    assert oldest is not None and oldest.pid is not None
    oldest_pid = oldest.pid
    await run(h, "exec_command", {"cmd": "sleep 30", "login": False, "yield_time_ms": 250}, tmp_path)
    assert ids[0] not in sessions.processes and len(sessions.processes) == 4
    assert not Path(f"/proc/{oldest_pid}").exists()
    await sessions.aclose()

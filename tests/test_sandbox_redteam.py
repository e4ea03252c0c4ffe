"""Escapes a red-team review found, each reproduced before its fix, with its control where one is
possible. (The main corpus is test_sandbox_escapes.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import sys
import threading
from pathlib import Path

import pytest

from codexbro.sandbox.exec_policy import ApprovalStore, PrefixRule, decide, proposed_prefix
from tests.sandbox_support import FULL, IS_ROOT, WORKING, ctx_for, patch, policy_params, sh, tool

PY = sys.executable
SECRET = "sk-planted-secret-in-auth-json"


@pytest.fixture
def box(tmp_path: Path, home: Path) -> dict[str, Path]:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("alpha {\n")
    (home / "auth.json").write_text(json.dumps({"OPENAI_API_KEY": SECRET}))
    (home / "sessions").mkdir()
    (home / "sessions" / "old.jsonl").write_text('{"secret": "from another session"}\n')
    return {"ws": ws, "home": home}


# ---- /proc/sys: uid 0 needs no capability to write a sysctl ----------------------------------------


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_sysctls_are_read_only(mode: str, backend: str, box: dict[str, Path]) -> None:
    if not IS_ROOT:
        pytest.skip("only uid 0 can write sysctls; as another user there is nothing to escape to")
    # Writing the current value back: harmless if it works (the control), refused in the sandbox.
    script = 'v=$(cat /proc/sys/kernel/domainname); echo "$v" > /proc/sys/kernel/domainname && echo WROTE'
    _code, out = await sh(ctx_for(mode, box["ws"], backend), script)
    assert ("WROTE" in out) == (mode == FULL), out


# ---- reads the agent does in its own process ---------------------------------------------------------


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_agent_side_reads_never_hand_over_secrets(
    mode: str, backend: str, box: dict[str, Path]
) -> None:
    from codexbro.tools.handlers.files import ListDirHandler, ReadFileHandler
    from codexbro.tools.router import ToolRouter

    ws, home = box["ws"], box["home"]
    (ws / "authlink").symlink_to(home / "auth.json")
    ctx = ctx_for(mode, ws, backend, home=home)
    router = ToolRouter([ReadFileHandler(), ListDirHandler()])

    async def call(name: str, args: dict[str, object]) -> str:
        from codexbro.tools.base import ToolCall

        return str(
            (
                await router.dispatch(ToolCall("r", name, "function", arguments=json.dumps(args)), ctx)
            ).output.content
        )

    outs = [
        await call("read_file", {"file_path": str(home / "auth.json")}),
        await call("read_file", {"file_path": str(ws / "authlink")}),
        await tool(ctx, "edit_file", {"path": "authlink", "old_text": "sk-planted", "new_text": "x"}),
        await patch(ctx, "*** Begin Patch\n*** Update File: authlink\n@@\n-{\n+{\n*** End Patch\n"),
    ]
    for out in outs:
        assert SECRET not in out and "sk-planted" not in out.replace("old_text", ""), out
    assert all("off limits" in o or "cannot read" in o or "Failed to read" in o for o in outs), outs
    environ = await call("read_file", {"file_path": "/proc/self/environ"})
    sessions = await call("list_dir", {"dir_path": str(home)})
    if mode == FULL:
        assert "binary file" in environ and "sessions/" in sessions  # the control: full access reads them
    else:
        assert "off limits" in environ and "off limits" in sessions, (environ, sessions)


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_magic_links_and_swapped_links_do_not_reach_the_credentials(
    mode: str, backend: str, box: dict[str, Path]
) -> None:
    ws, home = box["ws"], box["home"]
    ctx = ctx_for(mode, ws, backend, home=home)
    # /proc/SELF/root is a magic link to "/": through it, realpath-based checks see another path.
    via_proc = f"/proc/{os.getpid()}/root{home}/auth.json"
    out = await tool(ctx, "edit_file", {"path": via_proc, "old_text": "sk-planted", "new_text": "x"})
    assert SECRET not in out and "old_text occurs" not in out and "was not found" not in out, out
    # A link flipped between a harmless file and the credentials while edit_file reads it.
    stop = threading.Event()

    def flip() -> None:
        link = ws / "flip"
        while not stop.is_set():
            for target in (ws / "a.txt", home / "auth.json"):
                tmp = ws / ".flip.tmp"
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(target)
                os.replace(tmp, link)

    thread = threading.Thread(target=flip, daemon=True)
    thread.start()
    try:
        for _ in range(40):
            out = await tool(ctx, "edit_file", {"path": "flip", "old_text": "{", "new_text": "{"})
            assert SECRET not in out, out
    finally:
        stop.set()
        thread.join()


async def test_a_fifo_does_not_freeze_the_agent(box: dict[str, Path]) -> None:
    ws = box["ws"]
    os.mkfifo(ws / "pipe")
    for backend, mode in (("none", FULL), *((b, "workspace-write") for b in WORKING)):
        ctx = ctx_for(mode, ws, backend)
        out = await asyncio.wait_for(
            tool(ctx, "edit_file", {"path": "pipe", "old_text": "a", "new_text": "b"}), 10
        )
        assert "cannot read" in out, out


@pytest.mark.skipif(not WORKING, reason="no sandbox backend works here")
async def test_grep_files_runs_inside_the_sandbox(box: dict[str, Path]) -> None:
    from codexbro.tools.handlers.grep import GrepFilesHandler, find_rg
    from codexbro.tools.router import ToolRouter

    if find_rg() is None:
        pytest.skip("no ripgrep here")
    ws, home = box["ws"], box["home"]
    router = ToolRouter([GrepFilesHandler()])
    from codexbro.tools.base import ToolCall

    for backend in WORKING:
        ctx = ctx_for("workspace-write", ws, backend, home=home)
        call = ToolCall(
            "g", "grep_files", "function", arguments=json.dumps({"pattern": "sk-planted", "path": str(home)})
        )
        out = str((await router.dispatch(call, ctx)).output.content)
        assert "auth.json" not in out, f"{backend}: {out}"
    ctx = ctx_for(FULL, ws, "none", home=home)
    call = ToolCall(
        "g", "grep_files", "function", arguments=json.dumps({"pattern": "sk-planted", "path": str(home)})
    )
    assert "auth.json" in str((await router.dispatch(call, ctx)).output.content)  # the control


# ---- protected names that are links; a home nested in a root ---------------------------------------


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_a_symlinked_protected_name_is_refused(mode: str, backend: str, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "gitdir").mkdir(parents=True)
    (ws / ".git").symlink_to("gitdir")
    _code, out = await sh(
        ctx_for(mode, ws, backend), "rm .git && mkdir -p .git/hooks && echo hook > .git/hooks/pre-commit"
    )
    if mode == FULL:
        assert (ws / ".git" / "hooks" / "pre-commit").exists()
    elif mode == "workspace-write":
        assert "is a symbolic link" in out and (ws / ".git").is_symlink(), out
    else:  # read-only: no writable root, nothing to replace
        assert (ws / ".git").is_symlink()


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="writes"))
async def test_a_home_inside_the_workspace_cannot_be_moved_out_of_hiding(
    mode: str, backend: str, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    home = ws / "cfg" / "codexbro"
    home.mkdir(parents=True)
    (home / "auth.json").write_text(json.dumps({"OPENAI_API_KEY": SECRET}))
    ctx = ctx_for(mode, ws, backend, home=home)
    await sh(ctx, "mv cfg cfg2")
    _code, out = await sh(ctx, "cat cfg2/codexbro/auth.json cfg/codexbro/auth.json")
    if mode == FULL:
        assert SECRET in out
    else:
        assert SECRET not in out and (ws / "cfg" / "codexbro" / "auth.json").exists(), out


# ---- sockets, set-uid files --------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="unix_sockets"))
async def test_raw_unix_sockets_cannot_send_to_host_services(mode: str, backend: str, box: dict[str, Path],
                                                             tmp_path: Path) -> None:  # fmt: skip
    path = str(tmp_path / "svc.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.setblocking(False)
    try:
        script = f"import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_RAW); s.sendmsg([b'hi'], [], 0, {path!r})"
        await sh(ctx_for(mode, box["ws"], backend), f'{PY} -c "{script}"')
        try:
            got = server.recv(10)
        except BlockingIOError:
            got = b""
        assert (got == b"hi") == (mode == FULL)
    finally:
        server.close()


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="writes"))
async def test_no_set_uid_files(mode: str, backend: str, box: dict[str, Path]) -> None:
    if mode == "read-only":
        pytest.skip("read-only: nowhere to write a file in the first place")
    ws = box["ws"]
    script = (
        "cp /bin/sh suid1; chmod 4755 suid1; "
        f"{PY} -c \"import os; os.close(os.open('suid2', os.O_CREAT | os.O_WRONLY, 0o6755))\"; "
        "true"
    )
    await sh(ctx_for(mode, ws, backend), script)
    modes = [
        stat.S_IMODE((ws / n).stat().st_mode) & 0o6000 if (ws / n).exists() else 0 for n in ("suid1", "suid2")
    ]
    if mode == FULL:
        assert modes[0] == 0o4000  # the control
    else:
        assert modes == [0, 0], modes


# ---- approvals ---------------------------------------------------------------------------------------


def test_an_allow_rule_does_not_cover_a_chained_command(tmp_path: Path) -> None:
    rule = PrefixRule((("git",), ("status",)), "allow")
    argv = ["bash", "-lc", "git status ; touch /tmp/pwned"]
    got = decide(argv, cwd=tmp_path, approval="never", mode="workspace-write", escalate=True, rules=[rule],
                 store=ApprovalStore())  # fmt: skip
    assert got.verdict == "reject", got  # not "run" unsandboxed
    alone = decide(["bash", "-lc", "git status"], cwd=tmp_path, approval="never", mode="workspace-write",
                   escalate=True, rules=[rule], store=ApprovalStore())  # fmt: skip
    assert alone.verdict == "run"


def test_a_proposed_prefix_must_be_a_prefix_of_the_command() -> None:
    assert proposed_prefix(["bash", "-lc", "ls -la"], ["touch"]) == ["ls"]
    assert proposed_prefix(["bash", "-lc", "npm test -- --watch"], ["npm", "test"]) == ["npm", "test"]

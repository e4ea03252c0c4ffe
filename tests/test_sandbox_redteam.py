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


# ---- second review: approved writes, git directories, the agent's own install, /proc and /dev/shm ------


def test_an_approved_write_follows_no_link_swapped_in_after_the_approval(tmp_path: Path) -> None:
    """The user approved writing outside/dir/f.txt; a command then replaced ``dir`` with a link to
    somewhere else. The approved write must fail, not land at the link's target."""
    from codexbro.apply_patch.apply import verify, write_atomic
    from codexbro.apply_patch.parser import parse_patch
    from codexbro.sandbox.policy import physical
    from codexbro.tools.patch_writer import write_approved

    outside, elsewhere = tmp_path / "outside", tmp_path / "elsewhere"
    (outside / "dir").mkdir(parents=True)
    elsewhere.mkdir()
    (outside / "dir" / "f.txt").write_text("old\n")
    (elsewhere / "f.txt").write_text("theirs\n")
    plan = verify(
        parse_patch("*** Begin Patch\n*** Update File: dir/f.txt\n@@\n-old\n+new\n*** End Patch\n"), outside
    )
    resolved = {str(c.abs_path): physical(c.abs_path) for c in plan}  # what the user approved
    os.rename(outside / "dir", outside / "dir.real")
    (outside / "dir").symlink_to(elsewhere)

    written = write_approved(plan, outside, resolved)
    assert not written.ok and "Failed to write file" in written.text, written
    assert (elsewhere / "f.txt").read_text() == "theirs\n"
    # The control: a write that resolves the path at write time lands at the link's target.
    write_atomic(outside / "dir" / "f.txt", "new\n")
    assert (elsewhere / "f.txt").read_text() == "new\n"


def test_an_approved_write_replaces_a_link_at_the_final_name_instead_of_following_it(tmp_path: Path) -> None:
    from codexbro.apply_patch import nofollow

    target = tmp_path / "secret.txt"
    target.write_text("secret\n")
    (tmp_path / "f.txt").symlink_to(target)
    nofollow.write_file(tmp_path / "f.txt", "new\n", 0o644)
    assert target.read_text() == "secret\n"
    assert not (tmp_path / "f.txt").is_symlink() and (tmp_path / "f.txt").read_text() == "new\n"
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
    with pytest.raises(IsADirectoryError):
        nofollow.write_file(tmp_path, "x", 0o644)


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_a_git_file_naming_a_directory_through_a_link_or_a_missing_one_is_refused(
    mode: str, backend: str, tmp_path: Path
) -> None:
    """A worktree's ``.git`` file names its git directory; a command could re-point a link on that
    path, or create the directory if it is missing, and plant hooks."""
    for layout_kind in ("link", "missing"):
        ws = tmp_path / layout_kind / "ws"
        (ws / "real-gitdir").mkdir(parents=True)
        if layout_kind == "link":
            (ws / "via").symlink_to("real-gitdir")
            (ws / ".git").write_text("gitdir: via\n")
            attack = "rm via && mkdir -p via/hooks && echo hook > via/hooks/pre-commit"
            planted = ws / "via" / "hooks" / "pre-commit"
        else:
            (ws / ".git").write_text("gitdir: not-yet\n")
            attack = "mkdir -p not-yet/hooks && echo hook > not-yet/hooks/pre-commit"
            planted = ws / "not-yet" / "hooks" / "pre-commit"
        _code, out = await sh(ctx_for(mode, ws, backend), attack)
        if mode == FULL:
            assert planted.exists()
        elif mode == "workspace-write":
            assert "git directory named in" in out and not planted.exists(), out
        else:
            assert not planted.exists(), out


def test_a_real_git_directory_named_by_a_git_file_is_protected_not_refused(tmp_path: Path) -> None:
    from codexbro.sandbox.policy import protected_paths, unprotectable

    ws = tmp_path / "ws"
    (ws / "modules" / "sub").mkdir(parents=True)
    (ws / ".git").write_text("gitdir: modules/sub\n")
    assert unprotectable([ws]) == []
    assert ws / "modules" / "sub" in protected_paths([ws])


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="writes"))
async def test_the_agents_own_install_inside_the_workspace_is_read_only(
    mode: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project venv codexbro runs from: a planted ``.pth`` file would run in the agent next time."""
    ws = tmp_path / "ws"
    site = ws / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    _code, out = await sh(ctx_for(mode, ws, backend), "echo 'import os' > .venv/lib/site-packages/evil.pth")
    _code, out2 = await sh(
        ctx_for(mode, ws, backend), "mv .venv moved && echo x > moved/lib/site-packages/e.pth"
    )
    planted = list(ws.rglob("*.pth"))
    if mode == FULL:
        assert planted, (out, out2)
    else:
        assert not planted and (ws / ".venv").is_dir(), (out, out2)


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_agent_side_reads_refuse_proc_and_host_shared_memory_without_blocking(
    mode: str, backend: str, box: dict[str, Path]
) -> None:
    from codexbro.tools.handlers.files import ReadFileHandler
    from codexbro.tools.router import ToolRouter

    shm = Path("/dev/shm") / f"codexbro-test-{os.getpid()}"
    shm.write_text("host shared memory\n")
    try:
        ctx = ctx_for(mode, box["ws"], backend, home=box["home"])
        router = ToolRouter([ReadFileHandler()])
        from codexbro.tools.base import ToolCall

        async def read(path: str) -> str:
            call = ToolCall("r", "read_file", "function", arguments=json.dumps({"file_path": path}))
            return str((await asyncio.wait_for(router.dispatch(call, ctx), 10)).output.content)

        shm_out = await read(str(shm))
        version_out = await read("/proc/version")
        if mode == FULL:
            assert "host shared memory" in shm_out and "Linux" in version_out
        else:
            assert "host shared memory" not in shm_out and "off limits" in shm_out, shm_out
            assert "off limits" in version_out, version_out
            kmsg = await read("/proc/kmsg")  # blocks (or drains the kernel log) if opened for real
            assert "off limits" in kmsg, kmsg
    finally:
        shm.unlink()


async def test_the_container_holder_never_runs_a_sleep_from_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host-side holder of a namespace container runs ``sleep``; a ``sleep`` a command planted in
    a writable directory on the agent's PATH must not be the one."""
    if "namespaces" not in WORKING:
        pytest.skip("the namespaces backend is unavailable here")
    import shutil

    ws = tmp_path / "ws"
    (ws / "bin").mkdir(parents=True)
    marker = tmp_path / "ran"
    fake = ws / "bin" / "sleep"
    fake.write_text(f'#!/bin/sh\ntouch {marker}\nexec /bin/sleep "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{ws / 'bin'}:{os.environ['PATH']}")
    assert shutil.which("sleep") == str(fake)  # the control: PATH lookup would find it
    code, out = await sh(ctx_for("workspace-write", ws, "namespaces"), "echo ok")
    assert code == 0 and "ok" in out, out
    assert not marker.exists()

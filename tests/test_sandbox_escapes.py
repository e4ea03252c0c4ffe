"""The escape corpus: every class of attack the sandbox defends, several variants each, under every
backend that works here, in ``read-only`` and ``workspace-write`` — each next to a full-access
control that proves the attempt itself works (a control that cannot work on this machine is skipped
with the reason, never passed silently). ``.ci/run`` also runs this file as an unprivileged user.

Layout: ``tmp/ws`` is the workspace (a git repo), ``tmp/outside`` is outside every writable root
(``/tmp`` and ``$TMPDIR`` are excluded from the roots here, so the temp dir is not writable).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import secrets
import socket
import stat
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox_support import (
    FULL,
    IS_ROOT,
    ctx_for,
    end_session,
    patch,
    policy_params,
    sh,
    tool,
)

PY = sys.executable


@pytest.fixture
def box(tmp_path: Path) -> dict[str, Path]:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (ws / ".git" / "hooks").mkdir(parents=True)
    (ws / ".git" / "config").write_text("[core]\n")
    (ws / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (ws / "a.txt").write_text("alpha\n")
    (outside / "sub").mkdir(parents=True)
    (outside / "target.txt").write_text("original\n")
    (outside / "sub" / "victim.txt").write_text("victim\n")
    return {"ws": ws, "outside": outside}


def untouched(box: dict[str, Path]) -> bool:
    out = box["outside"]
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    git = sorted(str(p.relative_to(box["ws"])) for p in (box["ws"] / ".git").rglob("*"))
    return (
        names == ["sub", "sub/victim.txt", "target.txt"]
        and git == [".git/HEAD", ".git/config", ".git/hooks"]
        and (out / "target.txt").read_text() == "original\n"
        and (out / "sub" / "victim.txt").read_text() == "victim\n"
        and (box["ws"] / ".git" / "config").read_text() == "[core]\n"
    )


def patch_text(*lines: str) -> str:
    return "\n".join(["*** Begin Patch", *lines, "*** End Patch"]) + "\n"


# ---- 1. apply_patch path resolution ------------------------------------------------------------

# name → (set-up in the workspace, patch body). Approval "on-failure" makes the policy auto-approve
# every patch, so what stops these is the sandbox itself (a second line of defence behind the policy
# check, tested separately below).
PATCH_ESCAPES: dict[str, tuple[str, list[str]]] = {
    "symlink to a directory": ("ln -s {outside} link", ["*** Add File: link/evil.txt", "+evil"]),
    "link then dot-dot": ("ln -s {outside}/sub link", ["*** Add File: link/../evil.txt", "+evil"]),
    "symlink to a file": ("ln -s {outside}/target.txt link", ["*** Update File: link", "@@", "-original", "+changed"]),
    "dangling symlink": ("ln -s {outside}/new.txt link", ["*** Add File: link", "+created"]),
    "move through a link": ("ln -s {outside} link", ["*** Update File: a.txt", "*** Move to: link/moved.txt", "@@", "-alpha", "+beta"]),
    "delete through a link": ("ln -s {outside}/sub link", ["*** Delete File: link/victim.txt"]),
    "absolute path": ("true", ["*** Add File: {outside}/abs.txt", "+abs"]),
    "dot-dot out": ("true", ["*** Add File: ../outside/dotdot.txt", "+x"]),
    "write into .git": ("true", ["*** Update File: .git/config", "@@", "-[core]", "+[core]", "+\tfsmonitor = touch /tmp/pwned"]),
    "new file in .git": ("true", ["*** Add File: .git/hooks/pre-commit", "+#!/bin/sh"]),
    "symlink into .git": ("ln -s .git g", ["*** Add File: g/hooks/post-checkout", "+#!/bin/sh"]),
}  # fmt: skip


@pytest.mark.parametrize(("mode", "backend"), policy_params())
@pytest.mark.parametrize("name", list(PATCH_ESCAPES))
async def test_apply_patch_cannot_escape(name: str, mode: str, backend: str, box: dict[str, Path]) -> None:
    setup, body = PATCH_ESCAPES[name]
    ws, outside = box["ws"], box["outside"]
    # The links exist before the patch, as if an earlier command had made them.
    assert os.system(f"cd {ws} && " + setup.format(outside=outside)) == 0
    ctx = ctx_for(mode, ws, backend, approval="on-failure")
    out = await patch(ctx, patch_text(*(line.format(outside=outside) for line in body)))
    if mode == FULL:
        assert not untouched(box), f"control: the patch should land outside unsandboxed: {out}"
        return
    assert untouched(box), out
    assert (ws / "a.txt").read_text() == "alpha\n", "nothing is written unless the whole patch applies"
    assert "Success" not in out


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_apply_patch_new_protected_directories(mode: str, backend: str, tmp_path: Path) -> None:
    ws = tmp_path / "plain"  # not a git repo: .git, .codex, .agents do not exist
    ws.mkdir()
    ctx = ctx_for(mode, ws, backend, approval="on-failure")
    for name in (".git/config", ".codex/config.toml", ".agents/skills/x.md", ".codexbro/config.toml"):
        out = await patch(ctx, patch_text(f"*** Add File: {name}", "+[core]"))
        if mode == FULL:
            assert (ws / name).exists(), out
        else:
            assert not (ws / name).exists(), out
    if mode != FULL:  # the placeholders that blocked creation are removed when the session ends
        await end_session()
        assert sorted(os.listdir(ws)) == []


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_apply_patch_hard_link_is_not_written_through(
    mode: str, backend: str, box: dict[str, Path]
) -> None:
    ws, outside = box["ws"], box["outside"]
    os.link(outside / "target.txt", ws / "hl.txt")  # made before the session (a hard link of any origin)
    ctx = ctx_for(mode, ws, backend, approval="on-failure")
    if mode == FULL:  # control: the link does alias the outside file
        code, out = await sh(ctx, "echo appended >> hl.txt")
        assert code == 0 and (outside / "target.txt").read_text() == "original\nappended\n", out
        return
    out = await patch(ctx, patch_text("*** Update File: hl.txt", "@@", "-original", "+changed"))
    assert (outside / "target.txt").read_text() == "original\n", out
    # Making a new hard link to an outside file from inside the sandbox is refused too.
    code, out = await sh(ctx, f"ln {outside}/target.txt hl2.txt")
    assert code != 0 and not (ws / "hl2.txt").exists(), out


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_apply_patch_symlink_swapped_during_the_patch(
    mode: str, backend: str, box: dict[str, Path]
) -> None:
    """A racer flips ``sub`` between a directory and a link to outside while patches land in it."""
    ws, outside = box["ws"], box["outside"]
    (ws / "sub").mkdir()
    stop = threading.Event()

    def racer() -> None:
        while not stop.is_set():
            for make in (lambda: (ws / "sub").mkdir(), lambda: (ws / "sub").symlink_to(outside)):
                try:
                    if (ws / "sub").is_symlink():
                        (ws / "sub").unlink()
                    elif (ws / "sub").is_dir():
                        for child in (ws / "sub").iterdir():
                            child.unlink()
                        (ws / "sub").rmdir()
                    make()
                except OSError:
                    pass
                time.sleep(0.001)

    thread = threading.Thread(target=racer, daemon=True)
    thread.start()
    ctx = ctx_for(mode, ws, backend, approval="on-failure")
    try:
        for i in range(20):
            await patch(ctx, patch_text(f"*** Add File: sub/race{i}.txt", "+x"))
    finally:
        stop.set()
        thread.join()
    if mode == FULL:
        if untouched(box):
            pytest.skip("control: the race never landed outside in 20 tries on this run")
        return
    assert untouched(box)


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_apply_patch_through_shell_heredoc_and_edit_file(
    mode: str, backend: str, box: dict[str, Path]
) -> None:
    ws, outside = box["ws"], box["outside"]
    (ws / "link").symlink_to(outside)
    ctx = ctx_for(mode, ws, backend, approval="on-failure")
    script = "apply_patch <<'EOF'\n" + patch_text("*** Add File: link/heredoc.txt", "+x") + "EOF\n"
    await sh(ctx, script)
    (ws / "flink").symlink_to(outside / "target.txt")
    await tool(ctx, "edit_file", {"path": "flink", "old_text": "original", "new_text": "edited"})
    if mode == FULL:
        assert (outside / "heredoc.txt").exists() and (outside / "target.txt").read_text() == "edited\n"
    else:
        assert untouched(box)


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_policy_refuses_resolved_paths_before_the_sandbox(
    mode: str, backend: str, box: dict[str, Path]
) -> None:
    """With approval ``never`` the policy check resolves ``link/..`` as the kernel does and refuses."""
    ws, outside = box["ws"], box["outside"]
    (ws / "link").symlink_to(outside / "sub")
    ctx = ctx_for(mode, ws, backend, approval="never")
    out = await patch(ctx, patch_text("*** Add File: link/../policy.txt", "+x"))
    if mode == FULL:
        assert (outside / "policy.txt").exists(), out
    else:
        assert "patch rejected" in out and not (outside / "policy.txt").exists()


async def test_links_inside_the_workspace_keep_working(box: dict[str, Path]) -> None:
    from tests.sandbox_support import WORKING

    if not WORKING:
        pytest.skip("no sandbox backend works here")
    ws = box["ws"]
    (ws / "real").mkdir()
    (ws / "real" / "f.txt").write_text("one\n")
    (ws / "dirlink").symlink_to("real")
    (ws / "filelink").symlink_to("real/f.txt")
    for backend in WORKING:
        ctx = ctx_for("workspace-write", ws, backend, approval="never")
        out = await patch(ctx, patch_text("*** Update File: filelink", "@@", "-one", "+two",
                                          f"*** Add File: dirlink/{backend}.txt", "+new"))  # fmt: skip
        assert "Success" in out, out
        assert (ws / "filelink").is_symlink() and (ws / "real" / "f.txt").read_text() == "two\n"
        assert (ws / "real" / f"{backend}.txt").read_text() == "new\n"
        (ws / "real" / "f.txt").write_text("one\n")


# ---- 2. metadata outside the writable roots -----------------------------------------------------

METADATA = {
    "chmod": "chmod 600 {outside}/target.txt",
    "chmod protected": "chmod 600 .git/config",
    "utime": "touch -d 2001-01-01 {outside}/target.txt",
    "xattr": PY + " -c \"import os; os.setxattr('{outside}/target.txt', 'user.x', b'1')\"",
    "chown": "chown $(id -u):$(id -g) {outside}/target.txt",
}


def _meta(path: Path) -> tuple[int, float, list[str]]:
    st = path.stat()
    try:
        attrs = os.listxattr(path)
    except OSError:
        attrs = []
    return stat.S_IMODE(st.st_mode), st.st_mtime, attrs


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="metadata"))
@pytest.mark.parametrize("name", list(METADATA))
async def test_metadata_outside_the_roots(name: str, mode: str, backend: str, box: dict[str, Path]) -> None:
    ws, outside = box["ws"], box["outside"]
    before = (_meta(outside / "target.txt"), _meta(ws / ".git" / "config"))
    code, out = await sh(ctx_for(mode, ws, backend), METADATA[name].format(outside=outside))
    if mode == FULL:
        assert code == 0, out
        return
    assert code != 0, out
    assert (_meta(outside / "target.txt"), _meta(ws / ".git" / "config")) == before
    assert f"[sandbox] This looks like a sandbox denial ({mode})" in out  # the model is told why


# ---- 3. devices ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="devices"))
async def test_device_node_created_in_a_root(
    mode: str, backend: str, box: dict[str, Path], tmp_path: Path
) -> None:
    if mode == FULL and not IS_ROOT:
        pytest.skip("control impossible: creating device nodes needs root on the host")
    ws = box["ws"]
    # A character device aliasing /dev/null is harmless to create; the class is "any device".
    _code, out = await sh(ctx_for(mode, ws, backend, roots=(str(tmp_path / "extra"),)),
                         "mknod nulldev c 1 3 && echo x > nulldev && echo wrote")  # fmt: skip
    if mode == FULL:
        assert "wrote" in out, out
    else:
        assert "wrote" not in out and not (ws / "nulldev").exists(), out


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="devices"))
async def test_existing_device_node_in_a_root_is_unusable(
    mode: str, backend: str, box: dict[str, Path]
) -> None:
    if not IS_ROOT:
        pytest.skip(
            "needs root to plant a device node in the workspace (as an earlier full-access command could)"
        )
    ws = box["ws"]
    os.mknod(ws / "mem", 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # planted: /dev/null's numbers
    _code, out = await sh(ctx_for(mode, ws, backend), "echo x > mem && echo wrote")
    if mode == FULL:
        assert "wrote" in out, out
    else:
        assert "wrote" not in out, out


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="devices"))
async def test_host_dev_shm(mode: str, backend: str, box: dict[str, Path]) -> None:
    name = f"codexbro-test-{os.getpid()}-{mode}-{backend}"
    _code, out = await sh(ctx_for(mode, box["ws"], backend), f"echo x > /dev/shm/{name}; echo done")
    host = Path("/dev/shm") / name
    try:
        assert host.exists() == (mode == FULL), out
    finally:
        host.unlink(missing_ok=True)


# ---- 4. the agent is reachable ---------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="processes"))
async def test_agent_environment_and_signals(mode: str, backend: str, box: dict[str, Path]) -> None:
    """The agent here is this test process. /proc/PID/environ shows a process's initial environment,
    so the secret is planted in a child "agent" started with it, which runs the sandboxed command."""
    ws = box["ws"]
    script = f"""
import asyncio, os, sys
sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
from tests.sandbox_support import ctx_for, sh
from pathlib import Path
cmd = "cat /proc/$AGENT/environ | tr '\\\\0' '\\\\n' | grep PLANTED_SECRET; kill -0 $AGENT && echo signalled"
ctx = ctx_for({mode!r}, Path({str(ws)!r}), {backend!r})
code, out = asyncio.run(sh(ctx, cmd.replace("$AGENT", str(os.getpid()))))
print(out)
"""
    env = {**os.environ, "PLANTED_SECRET": "s3cr3t-value"}
    proc = await asyncio.create_subprocess_exec(PY, "-c", script, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)  # fmt: skip
    out = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
    if mode == FULL:
        assert "s3cr3t-value" in out and "signalled" in out, out
    else:
        assert "s3cr3t-value" not in out and "signalled" not in out, out


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="processes"))
async def test_scanning_proc_finds_no_host_process(mode: str, backend: str, box: dict[str, Path]) -> None:
    _code, out = await sh(ctx_for(mode, box["ws"], backend), "ls /proc | grep -c '^[0-9]'")
    count = int(out.strip().splitlines()[-1])
    if mode == FULL:
        assert count > 5, out
    else:
        assert count <= 4, out  # the command, its shell and the pipeline's own processes


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="credentials"))
async def test_credential_store_is_hidden(mode: str, backend: str, box: dict[str, Path], home: Path) -> None:
    (home / "auth.json").write_text('{"OPENAI_API_KEY": "sk-planted-in-auth-json"}')
    (home / "auth.json").chmod(0o600)
    ws = box["ws"]
    (ws / "authlink").symlink_to(home / "auth.json")
    ctx = ctx_for(mode, ws, backend, home=home)
    _code, out = await sh(ctx, f"cat {home}/auth.json; cat authlink; ls {home}")
    if mode == FULL:
        assert "sk-planted-in-auth-json" in out
    else:
        assert "sk-planted-in-auth-json" not in out, out
    # apply_patch and edit_file do not read it for the model either (a move would copy it out).
    await patch(ctx, patch_text("*** Update File: authlink", "*** Move to: leaked.json", "@@", "+tail"))
    edit = await tool(ctx, "edit_file", {"path": "authlink", "old_text": "sk-planted", "new_text": "x"})
    leaked = (ws / "leaked.json").read_text() if (ws / "leaked.json").exists() else ""
    if mode != FULL:
        assert "sk-planted" not in leaked and "off limits" in edit, edit


# ---- 5. local services ------------------------------------------------------------------------------


@pytest.fixture
def services(tmp_path: Path) -> Iterator[dict[str, str]]:
    socks = []
    path = str(tmp_path / "svc.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(path)
    abstract_name = f"codexbro-test-{secrets.token_hex(8)}"
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + abstract_name)
    dgram_path = str(tmp_path / "dgram.sock")
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(dgram_path)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    for s in (unix, abstract, tcp):
        s.listen(8)
        socks.append(s)

        def serve(s: socket.socket = s) -> None:
            while True:
                try:
                    conn, _ = s.accept()
                except OSError:
                    return
                conn.sendall(b"hello")
                conn.close()

        threading.Thread(target=serve, daemon=True).start()
    yield {"path": path, "abstract": abstract_name, "dgram": dgram_path, "port": str(tcp.getsockname()[1])}
    for s in (*socks, dgram):
        s.close()


CLIENTS = {
    "path socket": "s=socket.socket(socket.AF_UNIX); s.connect({path!r}); print('got', s.recv(5))",
    "abstract socket": "s=socket.socket(socket.AF_UNIX); s.connect('\\0'+{abstract!r}); print('got', s.recv(5))",
    "datagram to a path": "s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b'x', {dgram!r}); print('got sent')",
    "tcp loopback": "s=socket.create_connection(('127.0.0.1', {port}), 2); print('got', s.recv(5))",
}


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="unix_sockets"))
@pytest.mark.parametrize("name", list(CLIENTS))
async def test_local_services_unreachable_without_network(
    name: str, mode: str, backend: str, box: dict[str, Path], services: dict[str, str]
) -> None:
    client = "import socket; " + CLIENTS[name].format(**services)
    _code, out = await sh(ctx_for(mode, box["ws"], backend), f'{PY} -c "{client}"')
    if mode == FULL:
        assert "got" in out, out
    else:
        assert "got" not in out, out


# ---- 6. the user's terminal -------------------------------------------------------------------------

TIOCSTI_ON_CTTY = "import fcntl, termios, sys; fcntl.ioctl(0, termios.TIOCSTI, b'#'); print('injected')"


def _legacy_tiocsti() -> bool:
    try:
        return Path("/proc/sys/dev/tty/legacy_tiocsti").read_text().strip() != "0"
    except OSError:
        return True


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="terminal"))
async def test_tiocsti_on_the_commands_own_terminal(mode: str, backend: str, box: dict[str, Path]) -> None:
    if mode == FULL and not _legacy_tiocsti():
        pytest.skip("control impossible: this kernel disables TIOCSTI (dev.tty.legacy_tiocsti = 0)")
    out = await tool(ctx_for(mode, box["ws"], backend), "exec_command",
                     {"cmd": f'{PY} -c "{TIOCSTI_ON_CTTY}"', "tty": True, "yield_time_ms": 5000})  # fmt: skip
    if mode == FULL:
        assert "injected" in out, out
    else:
        assert "injected" not in out and "Operation not permitted" in out, out


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="terminal"))
async def test_tiocsti_into_another_terminal(mode: str, backend: str, box: dict[str, Path]) -> None:
    """The user's terminal stands in as a PTY this test owns; the command opens it by path."""
    if mode == FULL and not (IS_ROOT and _legacy_tiocsti()):
        pytest.skip("control impossible: pushing into a terminal that is not yours needs CAP_SYS_ADMIN")
    master, slave = os.openpty()
    try:
        name = os.ttyname(slave)
        script = f"import fcntl, termios, os; fd = os.open({name!r}, os.O_RDWR | os.O_NOCTTY); fcntl.ioctl(fd, termios.TIOCSTI, b'#'); print('injected')"
        _code, out = await sh(ctx_for(mode, box["ws"], backend), f'{PY} -c "{script}"')
        os.set_blocking(master, False)
        try:
            pushed = os.read(master, 100)
        except BlockingIOError:
            pushed = b""
        if mode == FULL:
            assert "injected" in out, out
        else:
            assert "injected" not in out and b"#" not in pushed, out
    finally:
        os.close(master)
        os.close(slave)


async def test_ctrl_c_still_interrupts_a_tty_command(box: dict[str, Path]) -> None:
    from tests.sandbox_support import WORKING

    for backend in ["none", *WORKING]:
        mode = FULL if backend == "none" else "workspace-write"
        ctx = ctx_for(mode, box["ws"], backend)
        out = await tool(ctx, "exec_command", {"cmd": "sleep 30", "tty": True, "yield_time_ms": 500})
        session = int(out.split("session ID ")[1].split()[0]) if "session ID" in out else None
        assert session is not None, out
        out = await tool(
            ctx, "write_stdin", {"session_id": session, "chars": "\u0003", "yield_time_ms": 3000}
        )
        assert "exited with code" in out, f"{backend}: {out}"


# ---- 7. processes outliving the agent -----------------------------------------------------------------

AGENT = """
import asyncio, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from tests.sandbox_support import ctx_for, tool
async def main():
    ctx = ctx_for({mode!r}, Path({ws!r}), {backend!r})
    for cmd in {cmds!r}:
        await tool(ctx, "exec_command", {{"cmd": cmd, "yield_time_ms": 250}})
    print("started", flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""
OUTLIVERS = {
    "in-the-group": "sleep 3; touch {marker}",
    "detached-with-setsid": "setsid sh -c 'sleep 3; touch {marker}' & sleep 30",
    "double-fork": "(sh -c 'sleep 3; touch {marker}' &) ; sleep 30",
}


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="processes"))
async def test_tool_processes_die_with_the_agent(mode: str, backend: str, box: dict[str, Path]) -> None:
    """An agent (a child process here) starts three long commands, then is SIGKILLed."""
    markers = {name: box["ws"] / f"marker-{name}" for name in OUTLIVERS}
    cmds = [OUTLIVERS[name].format(marker=markers[name]) for name in OUTLIVERS]
    script = AGENT.format(root=str(Path(__file__).parent.parent), mode=mode, ws=str(box["ws"]), backend=backend,
                          cmds=cmds)  # fmt: skip
    proc = await asyncio.create_subprocess_exec(PY, "-c", script, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"started"
    proc.kill()  # SIGKILL: no cleanup code of the agent runs
    await proc.wait()
    await asyncio.sleep(4)
    survivors = sorted(name for name, marker in markers.items() if marker.exists())
    if mode == FULL:
        # The documented residual case: a process that leaves the group survives under full access
        # (which also proves the probe detects survivors).
        assert survivors == ["detached-with-setsid"]
    else:
        assert survivors == [], "tool processes kept running after the agent died"


# ---- 8. root keeps no power ------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="writes"))
async def test_no_capabilities_inside(mode: str, backend: str, box: dict[str, Path]) -> None:
    if mode == FULL and not IS_ROOT:
        pytest.skip("control impossible: an unprivileged user has no capabilities to keep")
    _code, out = await sh(ctx_for(mode, box["ws"], backend), "grep -E '^Cap(Eff|Prm|Bnd):' /proc/self/status")
    caps = {
        line.split(":")[0]: int(line.split()[1], 16) for line in out.splitlines() if line.startswith("Cap")
    }
    if mode == FULL:
        assert caps["CapEff"] != 0, out
    else:
        assert caps == {"CapEff": 0, "CapPrm": 0, "CapBnd": 0}, out


@pytest.mark.parametrize("mode", ["read-only", "workspace-write"])
async def test_ptrace_is_refused(mode: str, box: dict[str, Path]) -> None:
    from tests.sandbox_support import WORKING

    for backend in WORKING:
        script = "import ctypes; l=ctypes.CDLL(None, use_errno=True); r=l.ptrace(0,0,0,0); print('rc', r, ctypes.get_errno())"
        _code, out = await sh(ctx_for(mode, box["ws"], backend), f'{PY} -c "{script}"')
        assert f"rc -1 {errno.EPERM}" in out, f"{backend}: {out}"


def test_fcntl_and_termios_are_real() -> None:
    # The corpus above relies on these constants being the kernel's (guards against a stubbed module).
    assert termios.TIOCSTI == 0x5412 and fcntl.LOCK_EX == 2

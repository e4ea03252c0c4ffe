"""The namespace backend's session container as the tools use it: ordinary process behaviour inside,
and no broken session whatever happens to the container (a review's findings, each reproduced)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from codexbro.records import replace
from codexbro.sandbox import container as containers
from codexbro.sandbox.linux import prepare
from tests.sandbox_support import REPORTS, ctx_for, sh, tool

pytestmark = pytest.mark.skipif(
    not REPORTS["namespaces"].ok,
    reason=f"namespaces sandbox unavailable here: {REPORTS['namespaces'].detail}",
)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


async def test_commands_get_default_signal_dispositions(ws: Path) -> None:
    ctx = ctx_for("workspace-write", ws, "namespaces")
    _code, out = await sh(
        ctx, "seq 1000000 | head -1; echo status=${PIPESTATUS[0]}; grep SigIgn /proc/self/status"
    )
    assert "status=141" in out and "Broken pipe" not in out, out
    ignored = int(out.split("SigIgn:\t")[1].split()[0], 16)
    # None of the standard signals (1-31) is ignored. glibc's posix_spawn leaves its two internal
    # real-time signals (32, 33) ignored; every glibc program sets its own handlers for them.
    assert ignored & 0x7FFFFFFF == 0, out  # bit n-1 is signal n


async def test_a_command_can_signal_itself(ws: Path) -> None:
    """Each command has a PID namespace of its own, but it is not that namespace's PID 1."""
    ctx = ctx_for("workspace-write", ws, "namespaces")
    _code, out = await sh(ctx, "sh -c 'kill -TERM $$; echo survived'; echo status=$?")
    assert "survived" not in out and "status=143" in out, out
    _code, out = await sh(ctx, f"{sys.executable} -c 'import os; os.abort()'; echo status=$?")
    assert "status=134" in out, out


async def test_what_a_command_leaves_behind_dies_with_it(ws: Path) -> None:
    ctx = ctx_for("workspace-write", ws, "namespaces")
    marker = ws / "late"
    code, out = await sh(ctx, f"setsid sh -c 'sleep 1; touch {marker}' & echo started")
    assert code == 0 and "started" in out
    await asyncio.sleep(1.8)
    assert not marker.exists()


def _server_pid(holder: int) -> int:
    children = Path(f"/proc/{holder}/task/{holder}/children").read_text().split()
    return int(children[0])


async def test_the_session_recovers_when_the_container_dies(ws: Path) -> None:
    ctx = ctx_for("workspace-write", ws, "namespaces")
    assert (await sh(ctx, "echo one"))[0] == 0
    assert ctx.sandbox is not None
    found = [c for c in containers._CONTAINERS.values() if c.alive]
    assert len(found) == 1 and found[0]._server is not None
    os.kill(_server_pid(found[0]._server.pid), signal.SIGKILL)
    await asyncio.sleep(0.3)
    code, out = await sh(ctx, "echo two")
    assert code == 0 and "two" in out, out


async def test_a_command_lost_with_its_container_ends(ws: Path) -> None:
    ctx = ctx_for("workspace-write", ws, "namespaces")
    task = asyncio.ensure_future(sh(ctx, "sleep 30"))
    await asyncio.sleep(1.0)
    (found,) = [c for c in containers._CONTAINERS.values() if c.alive]
    assert found._server is not None
    os.kill(_server_pid(found._server.pid), signal.SIGKILL)
    code, _out = await asyncio.wait_for(task, 10)
    assert code == 137


async def test_cancelling_the_first_start_breaks_nothing(ws: Path) -> None:
    ctx = ctx_for("workspace-write", ws, "namespaces")
    first = asyncio.ensure_future(sh(ctx, "echo first"))
    await asyncio.sleep(0.02)  # the container is starting
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    results = await asyncio.wait_for(asyncio.gather(*(sh(ctx, f"echo n{i}") for i in range(3))), 30)
    assert [code for code, _ in results] == [0, 0, 0]


async def test_big_and_many_requests(ws: Path) -> None:
    ctx = ctx_for("workspace-write", ws, "namespaces")
    assert ctx.sandbox is not None
    prepared = prepare(ctx.sandbox, "namespaces")
    assert prepared.container is not None
    env = {"PATH": os.environ["PATH"], "PAD": "y" * 30_000}

    async def one(i: int) -> bytes:
        assert prepared.container is not None
        proc = await prepared.container.spawn(["sh", "-c", f"echo {i}"], cwd=str(ws), env=env, tty=False,
                                              stdin=None, stdout=asyncio.subprocess.PIPE, stderr=None)  # fmt: skip
        out, _ = await proc.communicate()
        return out

    outs = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(20))), 60)
    assert [o.strip() for o in outs] == [str(i).encode() for i in range(20)]
    # 250 kB of environment and arguments (one argument may not pass 128 kB, sandbox or not)
    big = {**env, **{f"BIG{i}": "z" * 50_000 for i in range(5)}}
    proc = await prepared.container.spawn(
        ["sh", "-c", 'echo ${#BIG0} ${#BIG4} "$#"', "x" * 100_000, "y" * 100_000], cwd=str(ws), env=big, tty=False,
        stdin=None, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert out.strip() == b"50000 50000 1", err
    assert prepared.container.running == 0


async def test_a_command_cancelled_while_starting_does_not_run_on(ws: Path) -> None:
    from tests.conftest import live_processes_with

    ctx = ctx_for("workspace-write", ws, "namespaces")
    await sh(ctx, "true")  # the container is up
    task = asyncio.ensure_future(sh(ctx, "exec sleep 300.417"))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.5)
    assert live_processes_with("sleep 300.417") == []


async def test_descriptors_passed_to_a_command_land_where_asked(ws: Path) -> None:
    ctx = ctx_for("workspace-write", ws, "namespaces")
    assert ctx.sandbox is not None
    prepared = prepare(ctx.sandbox, "namespaces")
    assert prepared.container is not None
    r, w = os.pipe()
    try:
        fds = [os.dup(w) for _ in range(3)]
        script = f"import os; [os.write(fd, b'%d;' % fd) for fd in {fds!r}]"
        proc = await prepared.container.spawn(
            [sys.executable, "-c", script], cwd=str(ws), env={"PATH": os.environ["PATH"]}, tty=False, stdin=None,
            stdout=None, stderr=asyncio.subprocess.PIPE, pass_fds=tuple(fds),
        )  # fmt: skip
        _out, err = await proc.communicate()
        for fd in fds:
            os.close(fd)
        os.close(w)
        w = -1
        data = os.read(r, 100)
        assert proc.returncode == 0, err
        assert data == "".join(f"{fd};" for fd in fds).encode(), err
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


async def test_missing_cwd_or_program_fail_as_unsandboxed(ws: Path) -> None:
    for backend, mode in (("none", "danger-full-access"), ("namespaces", "workspace-write")):
        ctx = ctx_for(mode, ws, backend)
        out = await tool(ctx, "shell", {"command": ["no-such-program-xyz"]})
        assert "No such file or directory" in out and "[sandbox]" not in out, f"{backend}: {out}"
        out = await tool(ctx, "shell", {"command": ["true"], "workdir": str(ws / "missing")})
        assert "[sandbox]" not in out, f"{backend}: {out}"


async def test_closing_one_session_leaves_another_running(tmp_path: Path) -> None:
    from codexbro.sandbox.linux import end_session
    from codexbro.sandbox.policy import spec_for as make_spec

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = ctx_for("workspace-write", tmp_path / "a", "namespaces")
    b = ctx_for("workspace-write", tmp_path / "b", "namespaces")
    sww = b.sandbox_workspace_write
    b = replace(b, sandbox=make_spec("workspace-write", sww, tmp_path / "b", None, "session-b"))
    a = replace(a, sandbox=make_spec("workspace-write", sww, tmp_path / "a", None, "session-a"))
    await sh(a, "true")
    running = asyncio.ensure_future(sh(b, "sleep 1; echo b-done"))
    await asyncio.sleep(0.3)
    await end_session("session-a")
    code, out = await asyncio.wait_for(running, 10)
    assert code == 0 and "b-done" in out, out


async def test_a_protected_directory_replaced_on_the_host_stays_protected(ws: Path) -> None:
    import shutil

    (ws / ".codex").mkdir()
    ctx = ctx_for("workspace-write", ws, "namespaces")
    code, out = await sh(ctx, "echo x > .codex/config.toml")
    assert code != 0 and not (ws / ".codex" / "config.toml").exists()
    shutil.rmtree(ws / ".codex")  # the user re-creates it meanwhile (git clone, rm -rf …)
    (ws / ".codex").mkdir()
    code, out = await sh(ctx, "echo x > .codex/config.toml")
    assert code != 0 and not (ws / ".codex" / "config.toml").exists(), out


async def test_datagram_pairs_cannot_reach_host_services(ws: Path, tmp_path: Path) -> None:
    import socket

    path = str(tmp_path / "dgram.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.setblocking(False)
    try:
        script = (
            "import socket; a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM); "
            f"a.sendmsg([b'hi'], [], 0, {path!r}); print('sent')"
        )
        for backend in [b for b in ("namespaces", "bubblewrap", "landlock") if REPORTS[b].ok]:
            await sh(ctx_for("workspace-write", ws, backend), f'{sys.executable} -c "{script}"')
            with pytest.raises(BlockingIOError):
                server.recv(10)
        await sh(ctx_for("danger-full-access", ws, "none"), f'{sys.executable} -c "{script}"')
        assert server.recv(10) == b"hi"  # the control: unsandboxed, it arrives
    finally:
        server.close()


async def test_a_sessions_helper_view_does_not_retire_its_container() -> None:
    """The shell snapshot's capture (read-only, owner SESSION/snapshot) and the session's commands
    (another view) each keep their container: one view retiring the other mid-start failed the
    first command ("exited during set-up") when both started at once."""
    from codexbro.sandbox import container
    from codexbro.sandbox.namespaces import View

    def view(mode: str) -> View:
        return View(("/w",) if mode == "rw" else (), (), (), (), False, os.getuid(), os.getgid())

    commands = container.container_for("sess-h", view("rw"), [], 0)
    capture = container.container_for("sess-h/snapshot", view("ro"), [], 0)
    assert container.container_for("sess-h", view("rw"), [], 0) is commands  # still the session's
    assert capture is not commands
    await container.close_containers("sess-h")  # the session's end closes its helpers' too
    assert not [k for k in container._CONTAINERS if k[1].startswith("sess-h")]


def test_another_loops_containers_and_closing_tasks_are_left_alone() -> None:
    """Each event loop closes only its own containers (the live probes run a loop in a thread)."""
    from codexbro.sandbox import container
    from codexbro.sandbox.namespaces import View

    v = View((), (), (), (), False, os.getuid(), os.getgid())

    async def make() -> tuple[int, object]:
        return container._loop_key(), container.container_for("loop-owner", v, [], 0)

    first_key, first = asyncio.run(make())
    second_key, second = asyncio.run(make())
    assert first_key != second_key and first is not second  # a new loop, even at a reused id()
    asyncio.run(container.close_containers("loop-owner"))  # a third loop: closes nothing of theirs
    assert sum(k[1] == "loop-owner" for k in container._CONTAINERS) == 2
    for key in [k for k in container._CONTAINERS if k[1] == "loop-owner"]:
        del container._CONTAINERS[key]  # never started: nothing to stop


async def test_hundreds_of_commands_started_at_once_all_finish(ws: Path) -> None:
    """Requests that fill the container's socket wait their turn to send (one waiter per socket:
    a second used to replace the first's wake-up, and ~290 commands at once hung the turn)."""
    ctx = ctx_for("read-only", ws, "namespaces")
    results = await asyncio.wait_for(asyncio.gather(*(sh(ctx, f"echo n{i}") for i in range(400))), 120)
    assert [code for code, _ in results] == [0] * 400
    assert all(f"n{i}" in out for i, (_, out) in enumerate(results))

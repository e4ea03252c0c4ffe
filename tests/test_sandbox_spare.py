"""Spare container servers (issue 19): a session that may run sandboxed commands boots its
container's server when it opens; the first command's container adopts it; a session that runs
nothing stops it; a spare knows nothing of the view until it is configured."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from codexbro import protocol as p
from codexbro.composition import SessionOptions, start_session
from codexbro.config.loader import Overrides, load_config
from codexbro.core.session import Session
from codexbro.sandbox import container as containers
from codexbro.sandbox import spare
from tests.conftest import write_config
from tests.fakes.events import ev_completed, ev_created, ev_shell_command, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply
from tests.sandbox_support import REPORTS

pytestmark = pytest.mark.skipif(
    not REPORTS["namespaces"].ok,
    reason=f"namespaces sandbox unavailable here: {REPORTS['namespaces'].detail}",
)


def _session(home: Path, fake: FakeResponsesServer, ws: Path, sandbox: str) -> Session:
    write_config(home, fake.base_url)
    flags = {"approval_policy": "never", "sandbox_mode": sandbox, "sandbox_backend": "namespaces"}
    return start_session(load_config(Overrides(cwd=ws, flags=flags)), SessionOptions(ephemeral=True))


async def _turn(sess: Session) -> list[p.EventMsg]:
    sess.submit(p.UserTurn((p.UserInput("text", text="go"),)))
    seen: list[p.EventMsg] = []
    async with asyncio.timeout(30):
        while not isinstance(seen[-1:] and seen[-1], p.TaskComplete | p.TurnAborted):
            seen.append((await sess.next_event()).msg)
    return seen


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie not yet reaped counts as gone only once reaped: read its state
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state == "Z"


async def test_the_first_command_runs_in_the_spare_booted_at_opening(home: Path, workspace: Path) -> None:
    script = [
        Reply([ev_created(), ev_shell_command("c1", "echo hi"), ev_completed()]),
        Reply(message_turn("ok")),
    ]
    with FakeResponsesServer(script) as fake:
        sess = _session(home, fake, workspace, "workspace-write")
        booted = spare._SPARES.get(sess.thread_id)
        assert booted is not None and booted.alive
        # Until it is configured, a spare holds nothing of the session: no path in its arguments.
        cmdline = Path(f"/proc/{booted.pid}/cmdline").read_bytes()
        assert str(workspace).encode() not in cmdline and str(home).encode() not in cmdline
        try:
            seen = await _turn(sess)
            ends = [m for m in seen if isinstance(m, p.ExecCommandEnd)]
            assert ends and ends[0].exit_code == 0 and "hi" in ends[0].aggregated_output, ends
            assert sess.thread_id not in spare._SPARES  # taken
            (found,) = [c for key, c in containers._CONTAINERS.items() if key[1] == sess.thread_id]
            assert found._server is booted  # the container adopted the spare rather than booting anew
        finally:
            await sess.close()
    assert _gone(booted.pid)


async def test_a_session_that_runs_nothing_stops_its_spare(home: Path, workspace: Path) -> None:
    with FakeResponsesServer([Reply(message_turn("just text"))]) as fake:
        sess = _session(home, fake, workspace, "read-only")
        booted = spare._SPARES[sess.thread_id]
        await _turn(sess)
        assert spare._SPARES.get(sess.thread_id) is booted  # a text turn does not use it
        await sess.close()
    assert sess.thread_id not in spare._SPARES and _gone(booted.pid)


async def test_full_access_boots_no_spare(home: Path, workspace: Path) -> None:
    with FakeResponsesServer([]) as fake:
        sess = _session(home, fake, workspace, "danger-full-access")
        try:
            assert sess.thread_id not in spare._SPARES
        finally:
            await sess.close()


async def test_a_dead_or_stale_spare_is_replaced(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spare killed before use (or older than STALE_AFTER_S: the package may have changed) is not
    adopted: the container boots its own server and the command runs."""
    from tests.sandbox_support import ctx_for, sh

    ctx = ctx_for("workspace-write", workspace, "namespaces")
    assert ctx.sandbox is not None
    owner = ctx.sandbox.owner
    spare.boot_for(owner)
    killed = spare._SPARES[owner]
    os.kill(killed.pid, signal.SIGKILL)
    killed.process.wait(5)
    code, out = await sh(ctx, "echo one")
    assert code == 0 and "one" in out, out
    await containers.close_containers(owner)
    spare.boot_for(owner)
    old = spare._SPARES[owner]
    old.started = time.monotonic() - spare.STALE_AFTER_S - 1
    code, out = await sh(ctx, "echo two")
    assert code == 0 and "two" in out, out
    assert _gone(old.pid) or old.process.wait(5) is not None
    await containers.close_containers(owner)


async def test_a_spare_refuses_anything_but_its_configuration() -> None:
    """The first message must be the configuration (in a memfd); anything else ends the spare
    before it builds anything — and end-of-file ends it quietly."""
    booted = spare.boot()
    try:
        booted.sock.setblocking(True)
        booted.sock.send(b'{"op": "spawn", "id": "1"}')
        assert booted.process.wait(10) != 0
    finally:
        booted.kill()
    quiet = spare.boot()
    quiet.sock.close()
    assert quiet.process.wait(10) == 0


def test_a_spare_dies_with_its_agent(tmp_path: Path) -> None:
    """The spare's parent-death signal is armed before it waits: an agent killed outright (no
    clean-up) takes its unused spare with it."""
    import subprocess
    import sys

    script = (
        "import time; from codexbro.sandbox import spare; spare.boot_for('x');"
        "print(spare._SPARES['x'].pid, flush=True); time.sleep(60)"
    )
    agent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert agent.stdout is not None
    pid = int(agent.stdout.readline())
    agent.stdout.close()
    time.sleep(0.5)  # let it arm its signal (it would exit on its own if it found the agent gone)
    agent.kill()
    agent.wait(5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not _gone(pid):
        time.sleep(0.05)
    assert _gone(pid)


def test_spares_are_bounded_and_stale_ones_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """An app server opens many sessions and most run nothing: at most MAX_SPARES idle spares
    are kept, and one too old to be adopted is stopped when the next is booted."""
    booted = []
    try:
        for i in range(spare.MAX_SPARES + 2):
            spare.boot_for(f"many-{i}")
            if f"many-{i}" in spare._SPARES:
                booted.append(spare._SPARES[f"many-{i}"])
        assert len(booted) == spare.MAX_SPARES and spare.spares() == spare.MAX_SPARES
        booted[0].started -= spare.STALE_AFTER_S + 1
        spare.boot_for("later")
        assert "many-0" not in spare._SPARES and "later" in spare._SPARES
        booted[0].process.wait(10)
        booted.append(spare._SPARES["later"])
    finally:
        for key in [k for k in spare._SPARES if k.startswith(("many-", "later"))]:
            spare.drop(key)

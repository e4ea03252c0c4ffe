"""The sandbox as a user meets it: the workspace works, read-only is read-only, the network switch,
the tool environment, the floor, the once-per-session note, ``sandbox linux`` and ``sandbox doctor``.
The escape corpus is ``test_sandbox_escapes.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from codexbro.protocol import EventMsg, WarningEvent
from codexbro.records import replace
from codexbro.sandbox import probes
from codexbro.sandbox.linux import BACKENDS
from tests.sandbox_support import FULL, REPORTS, WORKING, backend_params, ctx_for, end_session, sh

BACKEND_PARAMS = backend_params()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / ".git").mkdir(parents=True)
    (ws / ".git" / "config").write_text("[core]\n")
    (ws / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return ws


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
async def test_workspace_write_allows_the_workspace(backend: str, ws: Path) -> None:
    code, out = await sh(
        ctx_for("workspace-write", ws, backend),
        "mkdir -p src && echo ok > src/new.txt && ln -s src/new.txt link && cat link .git/config && pwd",
    )
    assert code == 0, out
    assert (ws / "src" / "new.txt").read_text() == "ok\n" and "[core]" in out and str(ws) in out
    # Placeholders keep .codex/.agents/.codexbro from being created while the session lasts …
    assert sorted(os.listdir(ws)) == [".agents", ".codex", ".codexbro", ".git", "link", "src"]
    await end_session()  # … and are gone when it ends
    assert sorted(os.listdir(ws)) == [".git", "link", "src"]


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
async def test_read_only_denies_all_writes(backend: str, ws: Path) -> None:
    code, out = await sh(ctx_for("read-only", ws, backend), "echo x > inside.txt")
    assert code != 0 and not (ws / "inside.txt").exists()
    assert "[sandbox] This looks like a sandbox denial (read-only)" in out
    code, out = await sh(
        ctx_for("read-only", ws, backend), "cat .git/config && env | grep CODEX_SANDBOX | sort"
    )
    assert code == 0 and "[core]" in out
    assert f"CODEX_SANDBOX={backend}" in out and "CODEX_SANDBOX_NETWORK_DISABLED=1" in out


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
async def test_common_tools_work_inside(backend: str, ws: Path) -> None:
    """Pipes, subshells, /dev/null, /dev/shm, ps, python with multiprocessing: an ordinary day."""
    script = (
        "echo a | tr a b; (echo sub); echo x > /dev/null; ls /dev/null /dev/urandom >/dev/null && echo devs; "
        f'{sys.executable} -c "import multiprocessing as m; print(m.Pool(2).map(abs, [-1, -2]))"; '
        "ps -e >/dev/null && echo ps"
    )
    code, out = await sh(ctx_for("workspace-write", ws, backend), script)
    assert code == 0, out
    if backend == "landlock":  # documented casualty: no private /dev/shm, so no POSIX semaphores
        assert "b\nsub\ndevs\n" in out and "\nps" in out, out
    else:
        assert "b\nsub\ndevs\n[1, 2]\nps" in out, out


def _listener() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
async def test_network_switch(backend: str, ws: Path) -> None:
    srv, port = _listener()
    try:
        script = f"{sys.executable} -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2); print('connected')\""
        code, out = await sh(ctx_for("workspace-write", ws, backend), script)
        assert code != 0 and "connected" not in out
        code, out = await sh(ctx_for("workspace-write", ws, backend, network=True), script)
        assert code == 0 and "connected" in out, out
    finally:
        srv.close()


async def test_full_access_is_unsandboxed(ws: Path, tmp_path: Path) -> None:
    ctx = ctx_for(FULL, ws, "none")
    assert ctx.sandbox is None
    code, out = await sh(ctx, f"echo x > {tmp_path}/outside.txt && echo $CODEX_SANDBOX")
    assert code == 0 and (tmp_path / "outside.txt").exists() and "landlock" not in out


@pytest.mark.parametrize(
    "name", ["DEPLOY_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "Mysql_Passwd", "api_key"]
)
async def test_tool_environment_drops_secret_variables(
    name: str, ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, "s3cr3t")
    monkeypatch.setenv("HARMLESS", "visible")
    for mode in ("read-only", "workspace-write", FULL):
        if mode != FULL and not WORKING:
            continue
        _code, out = await sh(ctx_for(mode, ws, "none" if mode == FULL else "auto"), "env")
        assert "s3cr3t" not in out and f"\n{name}=" not in out and "HARMLESS=visible" in out, out


@pytest.mark.skipif("landlock" not in WORKING, reason="the landlock backend does not work here")
async def test_a_backend_below_the_floor_refuses(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A forced backend whose probe fails the floor: commands are refused, with the reason."""
    failing = probes.ProbeResult("landlock", False, "does not enforce: agent_environ")
    monkeypatch.setattr(probes, "backend_report", lambda backend, home=None: failing)
    _code, out = await sh(ctx_for("workspace-write", ws, "landlock"), "echo hi")
    assert "sandbox unavailable, command not run" in out and "agent_environ" in out, out
    assert "hi\n" not in out


@pytest.mark.skipif("landlock" not in WORKING, reason="the landlock backend does not work here")
async def test_weaker_backend_is_announced_once(ws: Path) -> None:
    from codexbro.tools import exec_gate

    exec_gate._NOTED.discard("landlock")
    seen: list[EventMsg] = []
    ctx = ctx_for("workspace-write", ws, "landlock")
    ctx = replace(ctx, emit=seen.append)
    await sh(ctx, "true")
    await sh(ctx, "true")
    warnings = [m.message for m in seen if isinstance(m, WarningEvent)]
    assert len(warnings) == 1 and "does not enforce: writes" in warnings[0], warnings


def test_sandbox_linux_helper(ws: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "codexbro", "sandbox", "linux", "--policy", "workspace-write", "-C", str(ws), "--",
         "sh", "-c", f"echo ok > here.txt; echo x > .git/evil; echo y > {tmp_path}/out.txt; exit 3"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if not WORKING:
        assert proc.returncode == 1 and "no sandbox backend works" in proc.stderr
        return
    assert proc.returncode == 3, proc.stderr
    assert (ws / "here.txt").exists() and not (ws / ".git" / "evil").exists()


def test_doctor_reports_each_protection_from_a_live_probe() -> None:
    doctor = subprocess.run([sys.executable, "-m", "codexbro", "sandbox", "doctor", "--json"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    report = json.loads(doctor.stdout)
    assert {b["backend"] for b in report["backends"]} == set(BACKENDS)
    for backend in report["backends"]:
        if backend["works"]:
            assert set(backend["protections"]) == set(probes.PROTECTIONS)
            assert backend["checks"]["write_outside"]["result"] == "blocked"
            assert backend["checks"]["agent_environ"]["result"] == "blocked"
            assert backend["checks"]["write_inside"]["result"] == "allowed"
    assert report["auto"] == (WORKING[0] if WORKING else None)
    human = subprocess.run([sys.executable, "-m", "codexbro", "sandbox", "doctor"], capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert "every verdict below comes from a live probe" in human.stdout
    for name in BACKENDS:
        assert name in human.stdout


def test_the_control_probe_sees_every_attempt_succeed() -> None:
    """Unsandboxed, the probe program really does each thing it checks (so 'blocked' means blocked)."""
    control = probes.run_probe("none")
    allowed = {k for k, (verdict, _d) in control.checks.items() if verdict == "allowed"}
    expected = {"write_inside", "write_outside", "write_protected", "move_out", "chmod_outside", "utime_outside",
                "agent_environ", "signal_agent", "tcp_loopback", "unix_path_socket", "unix_abstract_socket",
                "read_credentials", "host_shm", "create_protected"}  # fmt: skip
    if os.getuid() == 0:
        expected |= {"mknod_device", "planted_device"}
    assert expected <= allowed, control.checks
    assert REPORTS  # computed for every backend at import

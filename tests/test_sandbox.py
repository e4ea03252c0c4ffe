"""The real Linux sandbox: an escape corpus through the shell tool, for every backend that works here.

A backend that cannot run on this machine is skipped with its doctor reason (pytest -ra prints it).
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

from codexbro.config.types import SandboxWorkspaceWrite, ShellEnvironmentPolicy
from codexbro.sandbox.linux import BACKENDS, probe, spec_for
from codexbro.tools.base import ToolCall, ToolContext
from codexbro.tools.handlers.shell import ShellCommandHandler
from codexbro.tools.router import ToolRouter

PROBES = {b: probe(b) for b in BACKENDS}


def backend_param(name: str) -> object:
    result = PROBES[name]
    return pytest.param(
        name,
        marks=pytest.mark.skipif(not result.ok, reason=f"{name} sandbox unavailable here: {result.detail}"),
    )


BACKEND_PARAMS = [backend_param(b) for b in BACKENDS]


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    # Outside /tmp on purpose: /tmp is a writable root under workspace-write.
    base = Path(os.environ["HOME"]) / "box"
    ws = base / "ws"
    (ws / ".git").mkdir(parents=True)
    (ws / ".git" / "config").write_text("[core]\n")
    outside = base / "outside"
    outside.mkdir()
    (ws / "escape").symlink_to(outside)
    return {"ws": ws, "outside": outside}


def ctx_for(mode: str, ws: Path, backend: str, network: bool = False) -> ToolContext:
    sww = SandboxWorkspaceWrite(network_access=network, exclude_slash_tmp=True, exclude_tmpdir_env_var=True)
    return ToolContext(cwd=ws, turn_id="t", sandbox_mode=mode, approval_policy="never", sandbox_workspace_write=sww,
                       env_policy=ShellEnvironmentPolicy(), sandbox=spec_for(mode, sww, ws),
                       sandbox_backend=backend)  # fmt: skip


async def sh(ctx: ToolContext, script: str) -> tuple[int, str]:
    router = ToolRouter([ShellCommandHandler()])
    call = ToolCall(
        "c", "shell_command", "function", arguments=json.dumps({"command": script, "login": False})
    )
    out = str((await router.dispatch(call, ctx)).output.content)
    code = int(out.split("\n", 1)[0].removeprefix("Exit code: "))
    return code, out


ESCAPES = {
    "write outside the roots": "echo x > {outside}/a.txt",
    "write into .git": "echo x > .git/config",
    "new file in .git": "echo x > .git/hooks_evil",
    "symlink pointing outside": "echo x > escape/b.txt",
    "dot-dot out of the workspace": "echo x > ../outside/c.txt",
    "rename into place outside": "echo x > tmpf && mv tmpf {outside}/d.txt",
}


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("name", list(ESCAPES))
async def test_escape_attempts_denied_in_workspace_write(
    backend: str, name: str, layout: dict[str, Path]
) -> None:
    ws, outside = layout["ws"], layout["outside"]
    code, out = await sh(ctx_for("workspace-write", ws, backend), ESCAPES[name].format(outside=outside))
    assert code != 0, out
    assert list(outside.iterdir()) == []
    assert (ws / ".git" / "config").read_text() == "[core]\n"
    assert not (ws / ".git" / "hooks_evil").exists()
    assert "[sandbox] This looks like a sandbox denial (workspace-write)" in out


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
async def test_workspace_write_allows_the_workspace(backend: str, layout: dict[str, Path]) -> None:
    ws = layout["ws"]
    code, out = await sh(
        ctx_for("workspace-write", ws, backend), "mkdir -p src && echo ok > src/new.txt && cat .git/config"
    )
    assert code == 0, out
    assert (ws / "src" / "new.txt").read_text() == "ok\n" and "[core]" in out


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
async def test_read_only_denies_all_writes(backend: str, layout: dict[str, Path]) -> None:
    ws = layout["ws"]
    code, out = await sh(ctx_for("read-only", ws, backend), "echo x > inside.txt")
    assert code != 0 and not (ws / "inside.txt").exists()
    code, out = await sh(
        ctx_for("read-only", ws, backend), "cat .git/config && env | grep CODEX_SANDBOX | sort"
    )
    assert code == 0 and "[core]" in out
    assert f"CODEX_SANDBOX={backend}" in out and "CODEX_SANDBOX_NETWORK_DISABLED=1" in out


def _listener() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return  # the test closed the listener
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
async def test_network_to_loopback(backend: str, layout: dict[str, Path]) -> None:
    srv, port = _listener()
    try:
        script = f"{sys.executable} -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2); print('connected')\""
        code, out = await sh(ctx_for("workspace-write", layout["ws"], backend), script)
        assert code != 0 and "connected" not in out
        code, out = await sh(ctx_for("workspace-write", layout["ws"], backend, network=True), script)
        assert code == 0 and "connected" in out
    finally:
        srv.close()


async def test_full_access_allows_everything(
    layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, outside = layout["ws"], layout["outside"]
    ctx = ctx_for("danger-full-access", ws, "auto")
    assert ctx.sandbox is None
    for script in ESCAPES.values():
        code, out = await sh(ctx, script.format(outside=outside))
        assert code == 0, out
    srv, port = _listener()
    try:
        code, out = await sh(
            ctx, f"{sys.executable} -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2)\""
        )
        assert code == 0, out
    finally:
        srv.close()


async def test_environment_policy_hides_secrets_in_every_mode(
    layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cr3t")
    for mode in ("read-only", "workspace-write", "danger-full-access"):
        code, out = await sh(ctx_for(mode, layout["ws"], "auto"), "echo [$DEPLOY_TOKEN]")
        assert code == 0 and "[]" in out and "s3cr3t" not in out


def test_sandbox_linux_helper_and_doctor(layout: dict[str, Path]) -> None:
    ws, outside = layout["ws"], layout["outside"]
    proc = subprocess.run(
        [sys.executable, "-m", "codexbro", "sandbox", "linux", "--policy", "workspace-write", "-C", str(ws), "--",
         "sh", "-c", "echo ok > here.txt; echo x > .git/evil"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if not any(p.ok for p in PROBES.values()):
        assert proc.returncode == 1 and "no sandbox backend works" in proc.stderr
        return
    assert (ws / "here.txt").exists() and not (ws / ".git" / "evil").exists()
    assert not list(outside.iterdir())
    doctor = subprocess.run([sys.executable, "-m", "codexbro", "sandbox", "doctor", "--json"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    report = json.loads(doctor.stdout)
    assert {b["backend"] for b in report["backends"]} == set(BACKENDS)
    assert report["auto"] in BACKENDS
    assert report["facts"]["landlock_abi"] >= 0

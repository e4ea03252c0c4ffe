"""The shell snapshot: a login profile's environment restored in each command without a login shell
— the same variables, functions, aliases and PATH as ``bash -lc`` (each checked against a real
``bash -lc`` control), none of the profile's output, secrets filtered, the same inside every
sandbox backend, cached privately, and a login shell again (with a note) when the capture fails."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from codexbro.config.types import ShellEnvironmentPolicy
from codexbro.protocol import EventMsg, WarningEvent
from codexbro.tools.base import ToolCall, ToolContext
from codexbro.tools.exec_env import build_env
from codexbro.tools.exec_sessions import ExecSessions
from codexbro.tools.handlers.shell import ShellCommandHandler, ShellHandler
from codexbro.tools.handlers.unified_exec import ExecCommandHandler
from codexbro.tools.router import ToolRouter
from codexbro.tools.shell_snapshot import ShellSnapshot
from codexbro.tools.shell_snapshot_text import _sealed
from tests.conftest import run_cli, write_config
from tests.fakes.events import ev_created, ev_shell_command, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply
from tests.sandbox_support import ctx_for, end_session, policy_params

PROFILE = """\
echo "PROFILE NOISE on stdout"
echo "PROFILE NOISE on stderr" >&2
export SNAP_VAR="hello world"
export SNAP_SERVICE_TOKEN=sekrit-123
export PATH="$HOME/bin:$PATH"
greet() { echo "greet:$1"; }
alias hi='echo alias-works'
shopt -s expand_aliases
"""
PROBE = 'greet x; hi; echo "$SNAP_VAR"; mytool; echo "token=${SNAP_SERVICE_TOKEN-absent}"'
EXPECTED = "greet:x\nalias-works\nhello world\nmytool-ok\ntoken=absent\n"


@pytest.fixture
def profile() -> Path:
    """The user's home (the test's ``HOME``) with a noisy login profile and a tool on its PATH."""
    user = Path(os.environ["HOME"])
    (user / ".bash_profile").write_text(PROFILE)
    (user / "bin").mkdir()
    tool = user / "bin" / "mytool"
    tool.write_text("#!/bin/sh\necho mytool-ok\n")
    tool.chmod(0o755)
    # Sandboxed commands run as this user, who must reach the profile's tool (CI also runs the
    # sandbox tests as an unprivileged user).
    for d in (user, user.parent, user.parent.parent):
        d.chmod(d.stat().st_mode | 0o055)
    return user


def snapshot(home: Path, **kw: object) -> ShellSnapshot:
    return ShellSnapshot("/bin/bash", home, ShellEnvironmentPolicy(), **kw)  # type: ignore[arg-type]


async def run_restored(
    snap: ShellSnapshot, script: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    launch = await snap.launch(["/bin/bash", "-lc", script], env or build_env(ShellEnvironmentPolicy()))
    return subprocess.run(launch.argv, env=launch.env, pass_fds=launch.pass_fds, capture_output=True, text=True,
                          cwd="/", check=False)  # fmt: skip


async def test_restores_what_a_login_shell_has_without_its_output(home: Path, profile: Path) -> None:
    # Control: a login shell has the profile's state, prints its noise and exports its secret.
    login = subprocess.run(["/bin/bash", "-lc", PROBE], env=build_env(ShellEnvironmentPolicy()), capture_output=True,
                           text=True, cwd="/", check=False)  # fmt: skip
    assert "PROFILE NOISE on stdout" in login.stdout and "PROFILE NOISE on stderr" in login.stderr
    assert "token=sekrit-123" in login.stdout
    snap = snapshot(home)
    res = await run_restored(snap, PROBE)
    assert snap.error is None and snap.path is not None
    assert res.stdout == EXPECTED and res.stderr == ""
    assert "sekrit-123" not in snap.path.read_text()  # the secret never reaches the disk either
    # The same environment otherwise: every variable, function and option but `login_shell`.
    dump = "env | grep -v '^_=\\|^SHLVL=' | sort; declare -F; alias; set +o; shopt -p | grep -v login_shell"
    restored = (await run_restored(snap, dump)).stdout
    login_dump = subprocess.run(["/bin/bash", "-lc", dump], env=build_env(ShellEnvironmentPolicy()),
                                capture_output=True, text=True, cwd="/", check=False).stdout  # fmt: skip
    assert restored == login_dump.replace("PROFILE NOISE on stdout\n", "").replace(
        "SNAP_SERVICE_TOKEN=sekrit-123\n", ""
    )
    snap.close()


async def test_the_script_is_untouched_and_nothing_is_inherited(home: Path, profile: Path) -> None:
    snap = snapshot(home)
    res = await run_restored(
        snap, 'echo one\nno_such_command_xyz\necho "fd:$(ls /proc/self/fd | wc -l) env:${BASH_ENV-unset}"'
    )
    assert "line 2: no_such_command_xyz" in res.stderr  # the line numbers are the model's
    # 0, 1, 2 and ls's own directory: the snapshot's descriptor is closed, BASH_ENV gone.
    assert res.stdout.splitlines() == ["one", "fd:4 env:unset"]
    nested = await run_restored(
        snap, "bash -c 'echo ${BASH_ENV-unset}; type greet >/dev/null 2>&1 || echo no-fn'"
    )
    assert nested.stdout == "unset\nno-fn\n"  # a nested shell is a plain shell, as under bash -lc
    snap.close()


def test_the_snapshot_descriptor_is_sealed() -> None:
    control = os.memfd_create("control", os.MFD_CLOEXEC)  # an unsealed memfd can be rewritten
    assert os.pwrite(control, b"evil", 0) == 4
    os.close(control)
    fd = _sealed("export A=1\n")
    for attempt in (
        lambda: os.pwrite(fd, b"evil", 0),
        lambda: os.ftruncate(fd, 0),
        lambda: os.ftruncate(fd, 1 << 20),
    ):
        with pytest.raises(PermissionError):
            attempt()
    with pytest.raises(PermissionError):  # nor the seals undone
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, 0)
    # Reopened through /proc for writing (what a child holding it could try): writes refused too.
    again = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)
    with pytest.raises(PermissionError):
        os.write(again, b"evil")
    os.close(again)
    assert os.pread(fd, 100, 0) == b"export A=1\n"
    os.close(fd)


async def test_secrets_and_the_policy(home: Path, profile: Path) -> None:
    policy = ShellEnvironmentPolicy(exclude=("SNAP_VAR",), set={"GREETING": "from-policy"})
    (profile / ".bash_profile").write_text(PROFILE + "export GREETING=from-profile\n")
    snap = ShellSnapshot("/bin/bash", home, policy)
    res = await run_restored(
        snap, 'echo "${SNAP_VAR-absent} $GREETING ${SNAP_SERVICE_TOKEN-absent}"', build_env(policy)
    )
    assert res.stdout == "absent from-policy absent\n"
    snap.close()


async def test_cache_private_reused_and_invalidated(home: Path, profile: Path) -> None:
    first = snapshot(home)
    assert await first.ready() is not None and not first.cached and first.path is not None
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.path.parent.stat().st_mode) == 0o700
    second = snapshot(home)
    await second.ready()
    assert second.cached and second.path == first.path
    # A profile change is a new key: captured again, and the change is seen.
    (profile / ".bashrc").write_text("export FROM_BASHRC=1\n")
    (profile / ".bash_profile").write_text(PROFILE + ". ~/.bashrc\n")
    third = snapshot(home)
    assert (await run_restored(third, "echo ${FROM_BASHRC-no}")).stdout == "1\n"
    assert not third.cached and third.path != first.path
    # Past the TTL: captured again.
    fourth = snapshot(home, ttl_s=0.0)
    await fourth.ready()
    assert not fourth.cached
    # A cache file someone else could write is not trusted.
    fourth.path.chmod(0o644)  # type: ignore[union-attr]
    fifth = snapshot(home)
    await fifth.ready()
    assert not fifth.cached
    for s in (first, second, third, fourth, fifth):
        s.close()


async def test_a_failed_capture_falls_back_to_a_login_shell_with_one_note(home: Path, profile: Path) -> None:
    (profile / ".bash_profile").write_text(PROFILE + "sleep 1\n")
    snap = snapshot(home, timeout_s=0.3)
    events: list[EventMsg] = []
    ctx = ToolContext(cwd=profile, turn_id="t", sandbox_mode="danger-full-access", approval_policy="never",
                      sandbox_workspace_write=ctx_for("danger-full-access", profile, "none").sandbox_workspace_write,
                      env_policy=ShellEnvironmentPolicy(), emit=events.append)  # fmt: skip
    router = ToolRouter([ShellCommandHandler(snap)])
    call = ToolCall(
        "c", "shell_command", "function", arguments=json.dumps({"command": "echo ran", "timeout_ms": 60000})
    )
    out = str((await router.dispatch(call, ctx)).output.content)
    assert "ran" in out and "PROFILE NOISE" in out  # a login shell, as before
    notes = [e.message for e in events if isinstance(e, WarningEvent)]
    assert notes == [
        "shell snapshot unavailable (the login shell took over 0.3 s); commands run in a login shell"
    ]
    await router.dispatch(call, ctx)
    assert len([e for e in events if isinstance(e, WarningEvent)]) == 1  # said once
    snap.close()


async def test_other_shells_and_login_false(home: Path, profile: Path) -> None:
    dash = ShellSnapshot("/bin/sh", home, ShellEnvironmentPolicy())
    launch = await dash.launch(["/bin/sh", "-lc", "true"], {})
    assert launch.argv == ["/bin/sh", "-lc", "true"] and dash.take_note() is not None
    snap = snapshot(home)
    assert (await snap.launch(["/bin/bash", "-c", "x"], {})).argv == ["/bin/bash", "-c", "x"]  # login: false
    assert (await snap.launch(["/usr/bin/zsh", "-lc", "x"], {})).argv == ["/usr/bin/zsh", "-lc", "x"]
    assert (await snap.launch(["bash", "-lc", "x"], {})).restored  # argv from the `shell` tool
    disabled = snapshot(home, enabled=False)
    assert (await disabled.launch(["/bin/bash", "-lc", "x"], {})).argv == ["/bin/bash", "-lc", "x"]
    for s in (dash, snap, disabled):
        s.close()


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (apt-get install zsh)")
async def test_zsh(home: Path, profile: Path) -> None:
    (profile / ".zprofile").write_text(
        'echo "PROFILE NOISE"\nexport SNAP_VAR=zsh-var\nzgreet() { echo "zgreet:$1" }\nalias zhi="echo zalias"\n'
    )
    zsh = shutil.which("zsh") or ""
    snap = ShellSnapshot(zsh, home, ShellEnvironmentPolicy())
    launch = await snap.launch(
        [zsh, "-lc", "zgreet a; zhi; echo $SNAP_VAR"], build_env(ShellEnvironmentPolicy())
    )
    assert snap.error is None and launch.restored
    res = subprocess.run(launch.argv, env=launch.env, pass_fds=launch.pass_fds, capture_output=True, text=True,
                         check=False)  # fmt: skip
    assert res.stdout == "zgreet:a\nzalias\nzsh-var\n" and res.stderr == ""
    snap.close()


# ---- through the tools, inside every sandbox backend ------------------------------------------------


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_same_inside_every_sandbox(
    mode: str, backend: str, home: Path, profile: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    snap = snapshot(home)
    sessions = ExecSessions()
    router = ToolRouter([ShellCommandHandler(snap), ShellHandler(snap), ExecCommandHandler(sessions, snap)])
    ctx = ctx_for(mode, ws, backend, home=home)
    try:
        calls = [
            ToolCall("a", "shell_command", "function", arguments=json.dumps({"command": PROBE})),
            ToolCall("b", "shell", "function", arguments=json.dumps({"command": ["bash", "-lc", PROBE]})),
            ToolCall(
                "c", "exec_command", "function", arguments=json.dumps({"cmd": PROBE, "yield_time_ms": 5000})
            ),
        ]
        for call in calls:
            out = str((await router.dispatch(call, ctx)).output.content)
            text = json.loads(out)["output"] if call.name == "shell" else out.split("Output:\n", 1)[1]
            assert text == EXPECTED, (call.name, out)  # and nothing of the profile's output
        # The cached snapshot is out of the sandbox's reach (the agent home is hidden); the control
        # (full access) shows the attempt itself works.
        assert snap.path is not None
        attempt = f"echo 'export SNAP_VAR=pwned' >> {snap.path} && echo wrote"
        out = str((await router.dispatch(ToolCall("d", "shell_command", "function",
                                                  arguments=json.dumps({"command": attempt, "login": False})), ctx)).output.content)  # fmt: skip
        assert ("wrote" in out) == (mode == "danger-full-access"), out
        if mode != "danger-full-access":
            assert "pwned" not in snap.path.read_text()
    finally:
        await sessions.aclose()
        snap.close()
        await end_session()


def test_exec_end_to_end(home: Path, profile: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply([ev_created(), ev_shell_command("c1", "greet there")]), Reply(message_turn("done")))
    res = run_cli("exec", "--json", "-s", "workspace-write", "go", cwd=workspace)
    assert res.code == 0, res.stderr
    started = next(e for e in res.events() if e["type"] == "item.started")
    assert started["item"]["command"] == "/bin/bash -lc 'greet there'"  # shown as the model sent it
    output = next(i for i in fake.bodies()[1]["input"] if i["type"] == "function_call_output")
    assert output["output"].endswith("Output:\ngreet:there\n")
    (cached,) = (home / "shell_snapshots").iterdir()
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    # Turned off: a login shell again, profile output and all.
    fake.add(Reply([ev_created(), ev_shell_command("c2", "greet again")]), Reply(message_turn("done")))
    res = run_cli("exec", "--json", "-c", "features.shell_snapshot=false", "go", cwd=workspace)
    output = next(i for i in fake.bodies()[3]["input"] if i["type"] == "function_call_output")
    assert "PROFILE NOISE" in output["output"] and "greet:again" in output["output"]


# ---- what a review found (red-team round) ---------------------------------------------------------


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_the_capture_runs_inside_the_sandbox(mode: str, backend: str, home: Path, profile: Path,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A profile runs programs found on PATH; with a project venv of the workspace on PATH, a
    sandboxed command can plant one. The capture must run it sandboxed too (the control: full
    access, where the planted program runs and writes outside the workspace)."""
    from codexbro.sandbox.policy import spec_for

    ws = tmp_path / "ws"
    (ws / ".venv" / "bin").mkdir(parents=True)
    marker = profile / "escaped"
    # Debian's /etc/profile runs `id -u` before it resets PATH: a planted `id` is what runs.
    planted = ws / ".venv" / "bin" / "id"
    planted.write_text(f'#!/bin/sh\necho pwned > {marker} 2>/dev/null\nexec /usr/bin/id "$@"\n')
    planted.chmod(0o755)
    if "id -u" not in Path("/etc/profile").read_text(errors="replace"):
        (profile / ".bash_profile").write_text("id -u >/dev/null\n" + PROFILE)
    monkeypatch.setenv("PATH", f"{ws / '.venv' / 'bin'}:{os.environ['PATH']}")
    ctx = ctx_for(mode, ws, backend, home=home)
    spec = None if mode == "danger-full-access" else spec_for(
        "read-only", ctx.sandbox_workspace_write, ws, home, "snapshot-test")  # fmt: skip
    snap = ShellSnapshot(
        "/bin/bash", home, ShellEnvironmentPolicy(), sandbox=spec, backend=ctx.sandbox_backend
    )
    try:
        res = await run_restored(snap, "greet ok")
        assert snap.error is None and res.stdout == "greet:ok\n"  # the snapshot itself still works
        assert marker.exists() == (mode == "danger-full-access")
    finally:
        snap.close()
        await end_session()


async def test_umask_status_and_extglob_as_a_login_shell(home: Path, profile: Path) -> None:
    (profile / ".bash_profile").write_text(
        PROFILE
        + "umask 077\nshopt -s extglob\nisnum() { case $1 in +([0-9])) echo num;; *) echo other;; esac; }\n"
    )
    script = 'echo "status=$?"; umask; isnum 42; isnum x'
    login = subprocess.run(["/bin/bash", "-lc", script], env=build_env(ShellEnvironmentPolicy()), capture_output=True,
                           text=True, cwd="/", check=False).stdout  # fmt: skip
    snap = snapshot(home)
    res = await run_restored(snap, script)
    assert snap.error is None, snap.error
    assert res.stdout == login.replace("PROFILE NOISE on stdout\n", "") == "status=0\n0077\nnum\nother\n"
    snap.close()


async def test_a_background_job_in_the_profile_neither_stalls_nor_leaks(home: Path, profile: Path) -> None:
    (profile / ".bash_profile").write_text(PROFILE + "sleep 4242 &\n")
    snap = snapshot(home, timeout_s=8.0)
    started = asyncio.get_running_loop().time()
    res = await run_restored(snap, "greet bg")
    assert res.stdout == "greet:bg\n" and snap.error is None
    assert asyncio.get_running_loop().time() - started < 4  # not the timeout, not the job's pipe
    await asyncio.sleep(0.2)
    alive = subprocess.run(["pgrep", "-f", "sleep 4242"], capture_output=True, text=True, check=False).stdout
    assert alive == ""  # the profile's job went with the capture's process group
    snap.close()


async def test_a_failed_capture_is_remembered(home: Path, profile: Path) -> None:
    (profile / ".bash_profile").write_text(PROFILE + "sleep 1\n")
    first = snapshot(home, timeout_s=0.3)
    assert await first.ready() is None and first.error is not None
    (profile / ".bash_profile").write_text(PROFILE + "sleep 1\n")  # rewritten: a new mtime, a new key
    second = snapshot(home, timeout_s=0.3)
    assert await second.ready() is None  # a changed profile (mtime) is tried again: fails again
    third = snapshot(home, timeout_s=0.3)
    started = asyncio.get_running_loop().time()
    assert await third.ready() is None and "an earlier capture" in (third.error or "")
    assert asyncio.get_running_loop().time() - started < 0.25  # not run again
    for s in (first, second, third):
        s.close()

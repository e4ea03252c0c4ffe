"""Probe verdicts kept in the home (issue 19): a later process uses the verdict for this machine as
it is now instead of starting a probe sandbox; anything the verdict depends on changing, a day
passing, or a damaged or planted file makes it probe again."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import msgspec
import pytest

from codexbro.sandbox import probe_cache, probes
from codexbro.sandbox.probe_cache import CACHE_FILE
from codexbro.sandbox.probes import ProbeResult
from tests.sandbox_support import WORKING


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each live probe run (a verdict made up for the backend asked)."""
    runs: list[str] = []

    def fake_probe(backend: str, *, network: bool = False) -> ProbeResult:
        runs.append(backend)
        return ProbeResult(
            backend, True, "enforces everything probed", {"write_outside": ("blocked", "EROFS")}
        )

    monkeypatch.setattr(probes, "run_probe", fake_probe)
    probes.backend_report.cache_clear()
    probes._live_report.cache_clear()
    yield runs
    probes.backend_report.cache_clear()
    probes._live_report.cache_clear()


def report(backend: str, home: Path | None) -> ProbeResult:
    probes.backend_report.cache_clear()  # as a new process would
    probes._live_report.cache_clear()
    return probes.backend_report(backend, home)


def test_a_verdict_is_kept_for_later_processes(tmp_path: Path, live: list[str]) -> None:
    first = report("namespaces", tmp_path)
    again = report("namespaces", tmp_path)
    assert live == ["namespaces"] and again == first and again.checks["write_outside"] == ("blocked", "EROFS")
    assert stat.S_IMODE((tmp_path / CACHE_FILE).stat().st_mode) == 0o600
    report("bubblewrap", tmp_path)
    assert report("namespaces", tmp_path).ok and report("bubblewrap", tmp_path).ok
    assert live == ["namespaces", "bubblewrap"]  # each backend kept beside the other
    report("namespaces", None)
    assert live[-1] == "namespaces"  # without a home (sandbox doctor): always live


def test_a_changed_machine_or_an_old_verdict_probes_again(
    tmp_path: Path, live: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    report("namespaces", tmp_path)
    probe_cache.machine_key.cache_clear()
    monkeypatch.setattr(probe_cache, "machine_key", lambda: "another kernel, boot or sandbox code")
    report("namespaces", tmp_path)
    assert live == ["namespaces", "namespaces"]
    stored = msgspec.json.decode((tmp_path / CACHE_FILE).read_bytes())
    stored["saved"] = time.time() - probe_cache.TTL_S - 60
    (tmp_path / CACHE_FILE).write_bytes(msgspec.json.encode(stored))
    report("namespaces", tmp_path)
    assert len(live) == 3


def test_the_key_covers_the_sandbox_code(tmp_path: Path) -> None:
    """Editing any file of codexbro/sandbox (an upgrade) changes the key."""
    probe_cache.machine_key.cache_clear()
    before = probe_cache.machine_key()
    target = Path(probe_cache.__file__)
    st = target.stat()
    try:
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        probe_cache.machine_key.cache_clear()
        assert probe_cache.machine_key() != before
    finally:
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        probe_cache.machine_key.cache_clear()


@pytest.mark.parametrize(
    "damage", [b"", b"not json", b'{"key": 5}', b'{"key": "x", "saved": 0, "reports": {"namespaces": 1}}']
)
def test_a_damaged_file_probes_again_and_is_repaired(tmp_path: Path, live: list[str], damage: bytes) -> None:
    (tmp_path / CACHE_FILE).write_bytes(damage)
    assert report("namespaces", tmp_path).ok
    assert report("namespaces", tmp_path).ok and live == ["namespaces"]


def test_a_planted_symlink_is_neither_believed_nor_written_through(tmp_path: Path, live: list[str]) -> None:
    home, elsewhere = tmp_path / "agent-home", tmp_path / "elsewhere.json"
    home.mkdir()
    report("namespaces", home)
    os.replace(home / CACHE_FILE, elsewhere)  # a valid verdict file, reached only through a link
    os.symlink(elsewhere, home / CACHE_FILE)
    planted = elsewhere.read_bytes()
    report("namespaces", home)
    assert live == ["namespaces", "namespaces"]  # not read through the link
    assert (
        elsewhere.read_bytes() == planted and not (home / CACHE_FILE).is_symlink()
    )  # replaced, not followed


@pytest.mark.skipif("namespaces" not in WORKING, reason="the namespaces backend does not work here")
def test_a_real_verdict_round_trips(tmp_path: Path) -> None:
    probes.backend_report.cache_clear()
    real = probes.backend_report("namespaces", tmp_path)
    assert real.ok and probe_cache.remembered(tmp_path, "namespaces") == real
    probes.backend_report.cache_clear()


@pytest.mark.skipif("namespaces" not in WORKING, reason="the namespaces backend does not work here")
async def test_warm_up_starts_the_container_the_first_command_uses(tmp_path: Path) -> None:
    from codexbro.config.types import SandboxWorkspaceWrite
    from codexbro.sandbox import container
    from codexbro.sandbox.linux import prepare
    from codexbro.sandbox.policy import spec_for
    from codexbro.tools.resources import ToolResources

    ws = tmp_path / "ws"
    ws.mkdir()
    spec = spec_for("read-only", SandboxWorkspaceWrite(), ws, tmp_path, "warm-session")
    resources = ToolResources("warm-session")
    resources.warm_up("update_plan", spec, "namespaces", tmp_path)
    assert resources._warming is None  # not a command: nothing starts
    resources.warm_up("shell_command", spec, "namespaces", tmp_path)
    assert resources._warming is not None
    await asyncio.wait_for(resources._warming, 20)
    assert spec is not None
    prepared = prepare(spec, "namespaces")
    try:
        assert (
            prepared.container is not None and prepared.container.alive
        )  # started: the command waits for nothing
        started = len(container._CONTAINERS)
    finally:
        prepared.release()
    resources.warm_up("shell_command", spec, "namespaces", tmp_path)  # once a session
    assert len(container._CONTAINERS) == started
    await resources.aclose()
    assert not any(k[1] == "warm-session" for k in container._CONTAINERS)


async def test_closing_the_session_stops_a_warm_up_in_flight(tmp_path: Path) -> None:
    from codexbro.config.types import SandboxWorkspaceWrite
    from codexbro.sandbox.policy import spec_for
    from codexbro.tools.resources import ToolResources

    spec = spec_for("read-only", SandboxWorkspaceWrite(), tmp_path, tmp_path, "closing")
    resources = ToolResources("closing")
    resources.warm_up("shell", spec, "namespaces", tmp_path)
    await resources.aclose()  # at once: cancelled, awaited, nothing left pending
    assert resources._warming is not None and resources._warming.done()


def test_the_key_follows_the_bubblewrap_the_backend_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not `bwrap` on the agent's PATH: the one `linux.bwrap_path` runs (system directories)."""
    from codexbro.sandbox import linux

    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\n")
    monkeypatch.setattr(linux, "bwrap_path", lambda: str(fake))
    monkeypatch.setenv("PATH", "/nonexistent")
    probe_cache.machine_key.cache_clear()
    before = probe_cache.machine_key()
    fake.write_text('#!/bin/sh\nexec "$@"  # a replaced binary\n')
    probe_cache.machine_key.cache_clear()
    assert probe_cache.machine_key() != before
    probe_cache.machine_key.cache_clear()


def test_two_first_callers_share_one_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm-up and the first command ask at once: one probe runs."""
    import threading

    runs: list[str] = []

    def slow_probe(backend: str, *, network: bool = False) -> ProbeResult:
        runs.append(backend)
        time.sleep(0.3)
        return ProbeResult(backend, True, "ok")

    monkeypatch.setattr(probes, "run_probe", slow_probe)
    probes.backend_report.cache_clear()
    probes._live_report.cache_clear()
    callers = [
        threading.Thread(target=probes.backend_report, args=("namespaces", tmp_path)) for _ in range(2)
    ]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert runs == ["namespaces"]
    probes.backend_report.cache_clear()
    probes._live_report.cache_clear()


def test_a_fifo_in_place_of_the_verdicts_is_not_waited_on(tmp_path: Path, live: list[str]) -> None:
    os.mkfifo(tmp_path / CACHE_FILE)
    assert report("namespaces", tmp_path).ok and live == ["namespaces"]


async def test_the_snapshot_capture_uses_the_kept_verdict_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The capture resolves `auto` with the agent's home (the kept verdict), in a thread."""
    import threading

    from codexbro.config.types import SandboxWorkspaceWrite, ShellEnvironmentPolicy
    from codexbro.sandbox import linux
    from codexbro.sandbox.policy import spec_for
    from codexbro.tools.shell_snapshot import ShellSnapshot

    asked: list[tuple[Path | None, bool]] = []

    def choose(home: Path | None = None) -> str:
        asked.append((home, threading.current_thread() is threading.main_thread()))
        raise linux.SandboxUnavailable("none here")

    monkeypatch.setattr(linux, "choose_backend", choose)
    spec = spec_for("read-only", SandboxWorkspaceWrite(), tmp_path, tmp_path, "s/snapshot")
    snap = ShellSnapshot("/bin/bash", tmp_path, ShellEnvironmentPolicy(), sandbox=spec, backend="auto")
    assert await snap.ready() is None and "none here" in (snap.error or "")
    assert asked == [(tmp_path, False)]
    snap.close()


@pytest.mark.skipif("namespaces" not in WORKING, reason="the namespaces backend does not work here")
async def test_the_capture_container_is_closed_after_the_capture(tmp_path: Path) -> None:
    from codexbro.config.types import SandboxWorkspaceWrite, ShellEnvironmentPolicy
    from codexbro.sandbox import container
    from codexbro.sandbox.policy import spec_for
    from codexbro.tools.shell_snapshot import ShellSnapshot

    agent_home = tmp_path / "agent"
    agent_home.mkdir()
    spec = spec_for("read-only", SandboxWorkspaceWrite(), tmp_path, agent_home, "cap-sess/snapshot")
    snap = ShellSnapshot(
        "/bin/bash", agent_home, ShellEnvironmentPolicy(), sandbox=spec, backend="namespaces"
    )
    assert await snap.ready() is not None, snap.error
    assert not [k for k in container._CONTAINERS if k[1] == "cap-sess/snapshot"]
    snap.close()


def test_a_starting_container_is_not_idle() -> None:
    from codexbro.sandbox.container import Container
    from codexbro.sandbox.namespaces import View

    async def check() -> None:
        c = Container(View((), (), (), (), False, os.getuid(), os.getgid()), [], 0)
        assert c.idle
        c._starting = asyncio.get_running_loop().create_future()  # a start in progress
        assert not c.idle  # never evicted under a spawn that waits for it
        c._starting.cancel()

    asyncio.run(check())

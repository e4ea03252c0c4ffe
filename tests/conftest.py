from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.responses_server import FakeResponsesServer

FAKE_KEY = "sk-test-planted-secret-123"


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own CODEXBRO_HOME and no credentials or proxies from the machine."""
    home = tmp_path / "home"
    home.mkdir()
    for var in list(os.environ):
        if var.startswith(("CODEXBRO_", "CODEX_", "OPENAI_")) or var.lower().endswith("_proxy"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CODEXBRO_HOME", str(home))
    user_home = tmp_path / "user"
    user_home.mkdir()
    monkeypatch.setenv("HOME", str(user_home))  # no dotfiles of the machine's user in login shells
    monkeypatch.setenv("FAKE_API_KEY", FAKE_KEY)
    monkeypatch.setenv("SHELL", "/bin/bash")
    return home


@pytest.fixture(autouse=True)
async def stop_sandbox_containers() -> Any:
    """Sessions stop their sandbox containers when they close; tests that drive tools directly
    get the same at the end of their event loop."""
    yield
    container = sys.modules.get("codexbro.sandbox.container")
    if container is not None:
        await container.close_containers()


@pytest.fixture
def home(clean_env: Path) -> Path:
    return clean_env


@pytest.fixture
def fake() -> Iterator[FakeResponsesServer]:
    with FakeResponsesServer() as server:
        yield server


def write_config(home: Path, base_url: str, *, extra: str = "", provider_extra: str = "",
                 model: str = "gpt-5.1-codex") -> None:  # fmt: skip
    (home / "config.toml").write_text(
        f"""model = "{model}"
model_provider = "fake"
{extra}

[model_providers.fake]
name = "fake"
base_url = "{base_url}"
env_key = "FAKE_API_KEY"
request_max_retries = 1
stream_max_retries = 1
{provider_extra}
""",
        encoding="utf-8",
    )


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def run_cli(*args: str, cwd: Path | None = None, input: str | None = None, timeout: float = 60,
            env: dict[str, str] | None = None) -> CliResult:  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "codexbro", *args],
        cwd=cwd,
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".git").mkdir()
    (ws / ".git" / "HEAD").write_text("ref: refs/heads/main\n")  # a real git dir has one
    return ws


def live_processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker`` (zombies excluded). A sandboxed command's own
    ``$$`` is a PID in its namespace, so tests find processes by a unique argument instead."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server_process(
    argv: list[str], port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[None]:
    """A server subprocess (its output to ``log``), up once ``port`` accepts connections; stopped after."""
    import socket
    import time

    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"{argv[1]} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        proc.wait(10)

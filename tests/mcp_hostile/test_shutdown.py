"""How `exec` ends with misbehaving servers (src/codexbro/mcp/connection.py `wait_started`,
`close`; src/codexbro/exec/run.py signal handling).

Findings:
- A server that never answers `initialize` (or whose answer the SDK cannot parse, e.g. a
  `tools/list` nested deeper than pydantic's JSON limit) is marked failed at its start-up timeout,
  but its runner task stays blocked in `session.initialize()`: `_stop` is only awaited after a
  successful start. At exit `close()` then waits its full 5 s for nothing before cancelling — every
  such run ends ≥ 5 s late (measured: 6.6 s with startup_timeout_sec = 1, against 1.2 s).
  Expected: when `wait_started` times out, cancel the runner task (the SDK's shielded shutdown still
  stops the process), or let `close()` cancel at once when the state is not "ready".
- `exec` removes its SIGINT/SIGTERM handlers *before* `await session.close()`; MCP shutdown can take
  up to ~4-5 s per server (stdin close, 2 s, SIGTERM, 2 s, SIGKILL). A SIGTERM in that window (a
  supervisor, `timeout`, a second Ctrl-C → `os._exit(130)`) kills codexbro at once and abandons the
  escalation: a server that ignores stdin EOF and SIGTERM keeps running forever (it is in its own
  session, so nothing else reaches it). Expected: keep the handlers during `session.close()` (a
  further signal only shortens the waits), and before any `os._exit` SIGKILL the MCP servers'
  process groups (the SDK starts each with `start_new_session=True`, so `os.killpg(pid, SIGKILL)`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import write_config
from tests.fakes.events import message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply
from tests.mcp_hostile.common import calls_then, hostile, run_exec


def test_a_server_that_never_initialises_does_not_delay_exit(home: Path, workspace: Path) -> None:
    started = time.monotonic()
    result, _bodies = run_exec(home, workspace, hostile("noinit", extra="startup_timeout_sec = 0.5"),
                               calls_then())  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.code == 0, result.stderr
    assert "did not start within 0.5 s" in result.stdout
    # now ≈ 6 s: 0.5 s start-up + 5 s of close() waiting on a task stuck in initialize()
    assert elapsed < 4.0, f"exec took {elapsed:.1f} s"


def test_sigterm_during_mcp_shutdown_leaves_no_server_behind(
    home: Path, workspace: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    servers = hostile("stubborn", extra='env_vars = ["PIDFILE"]')
    with FakeResponsesServer([Reply(message_turn("the answer"))]) as fake:
        write_config(home, fake.base_url, extra=servers)
        proc = subprocess.Popen([sys.executable, "-m", "codexbro", "exec", "--skip-git-repo-check", "go"],
                                cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env={**os.environ, "PIDFILE": str(pidfile)})  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "the answer"  # the turn is over: exec is closing
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # e.g. `timeout`, a supervisor, or a second Ctrl-C
        proc.wait(30)
        proc.stdout.close()
    time.sleep(1.0)
    pids = [int(p) for p in pidfile.read_text().split()]
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    for pid in alive:  # do not leave it behind ourselves
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"MCP server {alive} still running after exec exited ({proc.returncode})"

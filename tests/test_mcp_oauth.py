"""``codexbro mcp login|logout`` against a real OAuth-protected MCP server (the SDK's own
authorization-server support, tests/mcp_servers/oauth_server.py): dynamic client registration,
PKCE, the callback on 127.0.0.1, tokens stored 0600 and used (and refreshed) by sessions."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, run_cli, server_process, write_config
from tests.fakes.events import ev_completed, ev_created, ev_function_call, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply

SERVER = Path(__file__).parent / "mcp_servers" / "oauth_server.py"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    with server_process([sys.executable, str(SERVER), str(port)], port, tmp_path / "oauth-server.log"):
        yield f"http://127.0.0.1:{port}/mcp"


def login(home: Path, name: str = "secured") -> subprocess.CompletedProcess[str]:
    """Run `mcp login --no-browser` and play the browser: open the printed URL (the server
    approves at once and redirects to codexbro's callback)."""
    proc = subprocess.Popen([sys.executable, "-m", "codexbro", "mcp", "login", name, "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())  # fmt: skip
    assert proc.stdout is not None
    url = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and url is None:
        line = proc.stdout.readline()
        if not line:
            break
        found = re.search(r"(http://127\.0\.0\.1:\d+/authorize\S*)", line)
        url = found.group(1) if found else None
    assert url is not None, proc.communicate(timeout=10)
    answer = httpx.get(url, follow_redirects=True, timeout=10)
    assert answer.status_code == 200 and "Login finished" in answer.text
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_login_use_and_logout(home: Path, workspace: Path, secured: str) -> None:
    extra = f'[mcp_servers.secured]\nurl = "{secured}"\n'
    (home / "config.toml").write_text(extra)
    before = run_cli("mcp", "list", "--json")
    assert json.loads(before.stdout)[0]["auth_status"] == "not_logged_in"

    done = login(home)
    assert done.returncode == 0, done.stderr
    assert "Successfully logged in to MCP server 'secured'." in done.stdout
    store = home / ".credentials" / "mcp-oauth.json"
    assert oct(store.stat().st_mode & 0o777) == "0o600"
    assert oct(store.parent.stat().st_mode & 0o777) == "0o700"
    entry = json.loads(store.read_text())[f"secured|{secured}"]
    assert entry["tokens"]["access_token"].startswith("at_") and entry["client"]["client_id"]
    assert entry["tokens"]["access_token"] not in done.stdout + done.stderr
    assert json.loads(run_cli("mcp", "list", "--json").stdout)[0]["auth_status"] == "o_auth"

    script = [Reply([ev_created(), ev_function_call("c1", "mcp__secured__whoami", {}), ev_completed()]),
              Reply(message_turn("ok"))]  # fmt: skip
    with FakeResponsesServer(script) as fake:
        write_config(home, fake.base_url, extra=extra)
        result = run_cli("exec", "--json", "--skip-git-repo-check", "who am i", cwd=workspace)
        bodies = fake.bodies()
    assert result.code == 0, result.stderr
    assert "you are logged in" in json.dumps(bodies[1]["input"])

    # An expired login is refreshed by the session (refresh token → new tokens, stored).
    doc = json.loads(store.read_text())
    old = doc[f"secured|{secured}"]["tokens"]["access_token"]
    doc[f"secured|{secured}"]["tokens"]["expires_at"] = int(time.time()) - 10
    store.write_text(json.dumps(doc))
    with FakeResponsesServer(script) as fake:
        write_config(home, fake.base_url, extra=extra)
        result = run_cli("exec", "--json", "--skip-git-repo-check", "who am i", cwd=workspace)
        bodies = fake.bodies()
    assert result.code == 0, result.stderr
    assert "you are logged in" in json.dumps(bodies[1]["input"])
    renewed = json.loads(store.read_text())[f"secured|{secured}"]["tokens"]
    assert renewed["access_token"] != old and renewed["expires_at"] > time.time()

    out = run_cli("mcp", "logout", "secured")
    assert out.code == 0 and "Removed OAuth credentials for 'secured'." in out.stdout
    assert f"secured|{secured}" not in json.loads(store.read_text())
    with FakeResponsesServer([Reply(message_turn("ok"))]) as fake:
        write_config(home, fake.base_url, extra=extra)
        result = run_cli("exec", "--json", "--skip-git-repo-check", "who am i", cwd=workspace)
    warnings = [e["item"]["message"] for e in result.events()
                if e["type"] == "item.completed" and e["item"]["type"] == "error"]  # fmt: skip
    assert any("`secured` failed to start" in w and "codexbro mcp login secured" in w for w in warnings), (
        warnings
    )


def test_login_refusals(home: Path) -> None:
    (home / "config.toml").write_text(
        '[mcp_servers.local]\ncommand = "x"\n[mcp_servers.tok]\nurl = "http://127.0.0.1:9/mcp"\nbearer_token_env_var = "T"\n'
    )
    stdio = run_cli("mcp", "login", "local")
    assert stdio.code == 1 and "only supported for streamable HTTP servers" in stdio.stderr
    bearer = run_cli("mcp", "login", "tok")
    assert bearer.code == 1 and "bearer token" in bearer.stderr
    missing = run_cli("mcp", "login", "nope")
    assert missing.code == 1 and "No MCP server named 'nope' found." in missing.stderr
    nothing = run_cli("mcp", "logout", "tok")
    assert nothing.code == 0 and "No OAuth credentials stored for 'tok'." in nothing.stdout

"""The OAuth callback listener of `codexbro mcp login` (src/codexbro/mcp/oauth.py `_login`,
`_callback`) against the SDK's OAuth-protected test server.

Findings:
- Terminal injection: the callback's `error` / `error_description` (sent by the authorization
  server — or by any web page or local process that hits 127.0.0.1:PORT; the state is not checked
  for errors) go into a UserError that `cli/main.py` prints raw: ESC/OSC sequences reach the
  terminal. The same path prints the SDK's exception text raw (e.g. "Registration failed: 400
  <response body>", "State parameter mismatch: <attacker state> != <ours>").
- Login denial by a forged callback: the listener resolves on the *first* request that has a `code`
  (any path, any state), answers it "Login finished", and the SDK then aborts the login with a state
  mismatch — the user's real redirect is ignored. A request line over 64 KiB escapes the handler
  (ValueError is not caught) and prints an asyncio traceback.

The SDK does check `state` (oauth2.py `_perform_authorization_code_grant`), so a forged code is
never exchanged — verified; the problem is that it ends the login.

Expected: remember the `state` of the authorization URL (in the `redirect` handler, which receives
that URL), answer 400 and keep waiting for requests whose path or state do not match (errors
included); catch ValueError/LimitOverrunError in `_callback`; print every CodexbroError through
`textsafe.for_terminal` in `cli/main.py` (and `cli/chatgpt.py`)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import free_port, server_process

SERVER = Path(__file__).parent.parent / "mcp_servers" / "oauth_server.py"


@pytest.fixture
def secured(tmp_path: Path, home: Path) -> Iterator[str]:
    port = free_port()
    with server_process([sys.executable, str(SERVER), str(port)], port, tmp_path / "oauth-server.log"):
        url = f"http://127.0.0.1:{port}/mcp"
        (home / "config.toml").write_text(f'[mcp_servers.secured]\nurl = "{url}"\n')
        yield url


def start_login() -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "codexbro", "mcp", "login", "secured", "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())  # fmt: skip
    assert proc.stdout is not None
    url = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and url is None:
        found = re.search(r"(http://127\.0\.0\.1:\d+/authorize\S*)", proc.stdout.readline())
        url = found.group(1) if found else None
    assert url is not None
    return proc, url, parse_qs(urlsplit(url).query)["redirect_uri"][0]


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


def test_callback_error_text_is_not_printed_raw(secured: str) -> None:
    proc, url, redirect = start_login()
    state = parse_qs(urlsplit(url).query)["state"][0]  # an error for this login (others are ignored)
    httpx.get(redirect, params={"error": "access_denied\x1b]0;PWNED\x07\x1b[2J", "state": state,
                                "error_description": "\x1b]52;c;ZWNobyBwd25lZA==\x07"}, timeout=10)  # fmt: skip
    code, _out, err = finish(proc)
    assert code == 1
    # now: "Error: the server refused the login: access_denied\x1b]0;PWNED\x07\x1b[2J \x1b]52;c;…"
    assert "\x1b" not in err and "\x07" not in err, repr(err[-400:])


def test_forged_or_garbage_callbacks_do_not_end_the_login(secured: str) -> None:
    proc, url, redirect = start_login()
    port = urlsplit(redirect).port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:  # a 100 KB request line
        c.sendall(b"GET /" + b"A" * 100_000 + b" HTTP/1.1\r\n\r\n")
        c.recv(100)
    forged = httpx.get(f"{redirect}?code=attacker-code&state=attacker-state", timeout=10)
    assert forged.status_code == 400, "a callback with someone else's state was accepted"
    real = httpx.get(url, follow_redirects=True, timeout=10)  # the user's real browser redirect
    code, out, err = finish(proc)
    assert real.status_code == 200 and code == 0, err[-600:]
    assert "Successfully logged in" in out
    assert "Traceback" not in err, err[-600:]

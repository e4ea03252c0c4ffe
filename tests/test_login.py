"""Browser (PKCE) and device-code login against a fake OAuth issuer on loopback; the browser step is
an HTTP GET to the local callback, as the issue allows."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.fakes.responses_server import FakeResponsesServer, Recorded
from tests.test_auth import jwt

ID_TOKEN = jwt({"email": "dev@example.com", "https://api.openai.com/auth": {"chatgpt_account_id": "acct_9",
                                                                           "chatgpt_plan_type": "pro"}})  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token_route(fake: FakeResponsesServer, seen: list[Recorded]) -> None:
    def handler(rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        seen.append(rec)
        body = {"id_token": ID_TOKEN, "access_token": jwt({"exp": 9999999999}), "refresh_token": "rt_new"}
        return 200, {"content-type": "application/json"}, json.dumps(body).encode()

    fake.route("POST", "/oauth/token", handler)


def start_login(fake: FakeResponsesServer, port: int, *args: str) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "CODEXBRO_LOGIN_ISSUER": f"http://127.0.0.1:{fake.port}",
        "CODEXBRO_LOGIN_PORT": str(port),
    }
    proc = subprocess.Popen([sys.executable, "-m", "codexbro", "login", "--no-browser", *args], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:  # sign-in instructions go to stderr
        if line.startswith("http://"):
            return proc, line.strip()
    raise AssertionError("no sign-in URL printed on stderr")


def test_browser_login_end_to_end(home: Path, fake: FakeResponsesServer) -> None:
    seen: list[Recorded] = []
    token_route(fake, seen)
    port = free_port()
    proc, url = start_login(fake, port)
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(
        f"http://127.0.0.1:{fake.port}/oauth/authorize?response_type=code&client_id=app_EMoamEEZ73f0CkXaXp7hrann"
    )
    assert (
        q["redirect_uri"] == f"http://127.0.0.1:{port}/auth/callback" and q["code_challenge_method"] == "S256"
    )
    assert len(q["state"]) == 43 and "offline_access" in q["scope"]
    with urllib.request.urlopen(f"{q['redirect_uri']}?code=the-code&state={q['state']}", timeout=10) as resp:
        assert resp.status == 200 and b"Signed in" in resp.read()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Logged in using ChatGPT as dev@example.com (pro plan)" in out
    (exchange,) = seen
    form = {k: v[0] for k, v in parse_qs(exchange.body).items()}
    assert form["grant_type"] == "authorization_code" and form["code"] == "the-code"
    assert form["redirect_uri"] == q["redirect_uri"] and len(form["code_verifier"]) >= 43
    auth = json.loads((home / "auth.json").read_text())
    assert auth["auth_mode"] == "chatgpt" and auth["tokens"]["account_id"] == "acct_9"
    assert auth["tokens"]["refresh_token"] == "rt_new"
    assert oct((home / "auth.json").stat().st_mode & 0o777) == "0o600"


def test_wrong_state_is_refused(home: Path, fake: FakeResponsesServer) -> None:
    token_route(fake, [])
    port = free_port()
    proc, _url = start_login(fake, port)
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/auth/callback?code=x&state=forged", timeout=10)
        raise AssertionError("a forged state must be refused")
    except urllib.error.HTTPError as exc:
        assert exc.code == 400 and exc.read() == b"State mismatch"
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "state does not match" in err
    assert not (home / "auth.json").exists()


def test_busy_port_is_explained(home: Path, fake: FakeResponsesServer) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        env = {
            **os.environ,
            "CODEXBRO_LOGIN_ISSUER": f"http://127.0.0.1:{fake.port}",
            "CODEXBRO_LOGIN_PORT": str(port),
        }
        res = subprocess.run([sys.executable, "-m", "codexbro", "login", "--no-browser"], env=env,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)  # fmt: skip
    assert (
        res.returncode == 1
        and f"port {port} on 127.0.0.1 is busy" in res.stderr
        and "--device-auth" in res.stderr
    )


def test_device_code_login(home: Path, fake: FakeResponsesServer) -> None:
    seen: list[Recorded] = []
    token_route(fake, seen)
    polls = {"n": 0}
    fake.route("POST", "/api/accounts/deviceauth/usercode", lambda rec: (200, {"content-type": "application/json"},
               json.dumps({"device_auth_id": "dev-1", "user_code": "ABCD-1234", "interval": "0.1"}).encode()))  # fmt: skip

    def poll(rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        polls["n"] += 1
        if polls["n"] < 3:
            return 403, {"content-type": "application/json"}, b'{"error":"pending"}'
        return (
            200,
            {"content-type": "application/json"},
            json.dumps({"authorization_code": "dev-code", "code_verifier": "v" * 43}).encode(),
        )

    fake.route("POST", "/api/accounts/deviceauth/token", poll)
    env = {**os.environ, "CODEXBRO_LOGIN_ISSUER": f"http://127.0.0.1:{fake.port}"}
    res = subprocess.run([sys.executable, "-m", "codexbro", "login", "--device-auth"], env=env,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "enter the code: ABCD-1234" in res.stderr and polls["n"] == 3
    form = {k: v[0] for k, v in parse_qs(seen[0].body).items()}
    assert (
        form["code"] == "dev-code"
        and form["redirect_uri"] == f"http://127.0.0.1:{fake.port}/deviceauth/callback"
    )
    assert json.loads((home / "auth.json").read_text())["tokens"]["account_id"] == "acct_9"

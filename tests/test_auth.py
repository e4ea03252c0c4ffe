"""Credentials: login --with-api-key / status / logout, auth.json safety, ChatGPT token refresh on 401
and before expiry against a fake OAuth token endpoint, and the offline `models` command."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fakes.events import message_turn
from tests.fakes.responses_server import FakeResponsesServer, Recorded, Reply

FIXTURES = Path(__file__).parent / "fixtures"


def jwt(claims: dict[str, object]) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'none'})}.{enc(claims)}.sig"


def chatgpt_config(home: Path, base_url: str) -> None:
    (home / "config.toml").write_text(
        f'model = "gpt-5.1-codex"\nmodel_provider = "oa"\n[model_providers.oa]\nname = "OpenAI"\n'
        f'base_url = "{base_url}"\nrequires_openai_auth = true\nrequest_max_retries = 0\nstream_max_retries = 0\n'
    )


def write_chatgpt_auth(home: Path, access: str, refresh: str = "rt_1") -> None:
    doc = {"auth_mode": "chatgpt", "OPENAI_API_KEY": None,
           "tokens": {"id_token": jwt({"email": "dev@example.com",
                                       "https://api.openai.com/auth": {"chatgpt_plan_type": "plus"}}),
                      "access_token": access, "refresh_token": refresh, "account_id": "acct_42"},
           "last_refresh": "2026-11-23T00:00:00Z"}  # fmt: skip
    (home / "auth.json").write_text(json.dumps(doc))


def test_login_with_api_key_status_logout(home: Path) -> None:
    res = run_cli("login", "--with-api-key", input="sk-proj-abcdefghijklmnop1234\n")
    assert res.code == 0 and "API key saved" in res.stdout and "Reading API key from stdin..." in res.stderr
    auth = home / "auth.json"
    assert json.loads(auth.read_text()) == {
        "auth_mode": "apikey",
        "OPENAI_API_KEY": "sk-proj-abcdefghijklmnop1234",
    }
    assert oct(auth.stat().st_mode & 0o777) == "0o600"
    status = run_cli("login", "status")
    assert status.code == 0 and status.stdout.strip() == "Logged in using an API key - sk-pr***1234"
    assert "abcdefghijklmnop" not in status.stdout
    assert run_cli("logout").stdout.strip() == "Successfully logged out" and not auth.exists()
    assert run_cli("login", "status").code == 1
    assert run_cli("login", "--with-api-key", input="\n").code == 1


def test_stored_key_is_used_and_corrupt_file_is_explained(home: Path, fake: FakeResponsesServer,
                                                          workspace: Path) -> None:  # fmt: skip
    chatgpt_config(home, fake.base_url)
    run_cli("login", "--with-api-key", input="sk-stored-key-000111\n")
    fake.add(Reply(message_turn("ok")))
    assert run_cli("exec", "hi", cwd=workspace).code == 0
    assert fake.requests[0].headers["authorization"] == "Bearer sk-stored-key-000111"
    (home / "auth.json").write_text("{not json")
    res = run_cli("exec", "hi", cwd=workspace)
    assert res.code == 1 and "auth.json is not valid JSON" in res.stderr and "log in again" in res.stderr
    assert run_cli("login", "status").code == 1


def _token_endpoint(
    fake: FakeResponsesServer, calls: list[Recorded], answer: tuple[int, dict[str, object]]
) -> str:
    def handler(rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        calls.append(rec)
        status, body = answer
        return status, {"content-type": "application/json"}, json.dumps(body).encode()

    fake.route("POST", "/oauth/token", handler)
    return f"http://127.0.0.1:{fake.port}/oauth/token"


def test_refresh_on_401(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    chatgpt_config(home, fake.base_url)
    old = jwt({"exp": int(time.time()) + 3600, "n": 1})
    new = jwt({"exp": int(time.time()) + 7200, "n": 2})
    write_chatgpt_auth(home, old)
    calls: list[Recorded] = []
    url = _token_endpoint(fake, calls, (200, {"access_token": new, "refresh_token": "rt_2"}))
    fake.add(Reply(status=401, body=b'{"error":{"message":"token expired"}}'),
             Reply(status=401, body=b'{"error":{"message":"token expired"}}'),
             Reply(message_turn("after refresh")))  # fmt: skip
    res = run_cli("exec", "hi", cwd=workspace, env={"CODEXBRO_REFRESH_TOKEN_URL_OVERRIDE": url})
    assert res.code == 0, res.stderr
    reqs = fake.responses_requests()
    assert [r.headers["authorization"] for r in reqs] == [f"Bearer {old}", f"Bearer {old}", f"Bearer {new}"]
    assert all(r.headers["chatgpt-account-id"] == "acct_42" for r in reqs)
    (call,) = calls
    assert call.body == {"client_id": "app_EMoamEEZ73f0CkXaXp7hrann", "grant_type": "refresh_token",
                         "refresh_token": "rt_1", "refresh_reason": "unauthorized_recovery"}  # fmt: skip
    stored = json.loads((home / "auth.json").read_text())
    assert stored["tokens"]["access_token"] == new and stored["tokens"]["refresh_token"] == "rt_2"
    assert stored["last_refresh"] != "2026-11-23T00:00:00Z"
    assert oct((home / "auth.json").stat().st_mode & 0o777) == "0o600"
    assert old not in res.stderr + res.stdout and new not in res.stderr + res.stdout
    assert "Logged in using ChatGPT as dev@example.com (plus plan)" in run_cli("login", "status").stdout


def test_refresh_before_expiry(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    chatgpt_config(home, fake.base_url)
    write_chatgpt_auth(home, jwt({"exp": int(time.time()) - 10}))
    new = jwt({"exp": int(time.time()) + 3600})
    calls: list[Recorded] = []
    url = _token_endpoint(fake, calls, (200, {"access_token": new}))
    fake.add(Reply(message_turn("fresh")))
    res = run_cli("exec", "hi", cwd=workspace, env={"CODEXBRO_REFRESH_TOKEN_URL_OVERRIDE": url})
    assert res.code == 0, res.stderr
    # (a ChatGPT session also refreshes /models in the background; not the point here)
    assert [r.path for r in fake.requests if "/models" not in r.path] == ["/oauth/token", "/v1/responses"]
    assert "refresh_reason" not in calls[0].body
    assert fake.responses_requests()[0].headers["authorization"] == f"Bearer {new}"
    assert (
        json.loads((home / "auth.json").read_text())["tokens"]["refresh_token"] == "rt_1"
    )  # kept when not rotated


def test_revoked_refresh_token(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    chatgpt_config(home, fake.base_url)
    write_chatgpt_auth(home, jwt({"exp": int(time.time()) - 10}))
    url = _token_endpoint(fake, [], (401, {"error": {"code": "refresh_token_invalidated"}}))
    res = run_cli("exec", "--json", "hi", cwd=workspace, env={"CODEXBRO_REFRESH_TOKEN_URL_OVERRIDE": url})
    assert res.code == 1
    failed = res.events()[-1]
    assert failed["type"] == "turn.failed"
    assert "refresh token was revoked. Please log out and sign in again" in failed["error"]["message"]
    assert fake.responses_requests() == []


def test_models_command_is_offline(home: Path) -> None:
    res = run_cli("models", "--json")
    assert res.code == 0
    doc = json.loads(res.stdout)
    assert (
        len(doc["models"]) == 25 and doc["default"] == "gpt-5.3-codex" and doc["source"] == "bundled catalog"
    )
    shown = run_cli("models", "show", "gpt-5-codex-2025-09")
    assert (
        "metadata from bundled catalog" in shown.stdout
        and "apply_patch_tool_type              freeform" in shown.stdout
    )
    unknown = run_cli("models", "show", "mystery-model")
    assert "Model metadata for `mystery-model` not found" in unknown.stdout


def test_builtin_openai_provider_headers(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    (home / "config.toml").write_text(f'model = "gpt-5.1-codex"\nopenai_base_url = "{fake.base_url}"\n')
    fake.add(Reply(message_turn("ok")))
    env = {
        "CODEXBRO_API_KEY": "sk-env-key-123456",
        "OPENAI_ORGANIZATION": "org-7",
        "OPENAI_PROJECT": "proj-3",
    }
    assert run_cli("exec", "hi", cwd=workspace, env=env).code == 0
    headers = fake.requests[0].headers
    assert headers["authorization"] == "Bearer sk-env-key-123456"
    assert headers["openai-organization"] == "org-7" and headers["openai-project"] == "proj-3"
    assert headers["version"] and headers["originator"] == "codex_exec"
    assert "chatgpt-account-id" not in headers


def test_two_processes_refreshing_at_once_do_not_burn_the_refresh_token(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    """Refresh tokens rotate and are good once: the endpoint answers a reused one as OpenAI's does.
    Two sessions start together with an expired access token; only one may refresh."""
    import subprocess
    import sys
    import threading

    chatgpt_config(home, fake.base_url)
    write_chatgpt_auth(home, jwt({"exp": int(time.time()) - 10}), refresh="rt_1")
    state = {"valid": "rt_1", "n": 1}
    calls: list[Recorded] = []
    guard = threading.Lock()

    def handler(rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        calls.append(rec)
        time.sleep(0.8)  # a slow token endpoint: the other process arrives meanwhile
        with guard:
            if rec.body.get("refresh_token") != state["valid"]:
                body: dict[str, object] = {
                    "error": {"code": "refresh_token_reused", "message": "already used"}
                }
                return 401, {"content-type": "application/json"}, json.dumps(body).encode()
            state["n"] += 1
            state["valid"] = f"rt_{state['n']}"
            access = jwt({"exp": int(time.time()) + 3600, "n": state["n"]})
        answer = {"access_token": access, "refresh_token": state["valid"]}
        return 200, {"content-type": "application/json"}, json.dumps(answer).encode()

    fake.route("POST", "/oauth/token", handler)
    url = f"http://127.0.0.1:{fake.port}/oauth/token"
    fake.add(Reply(message_turn("one")), Reply(message_turn("two")))
    import os

    env = {**os.environ, "CODEXBRO_REFRESH_TOKEN_URL_OVERRIDE": url}
    procs = [
        subprocess.Popen([sys.executable, "-m", "codexbro", "exec", f"hi {i}"], cwd=workspace, env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]  # fmt: skip
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert len(calls) == 1, [c.body for c in calls]
    stored = json.loads((home / "auth.json").read_text())
    assert stored["tokens"]["refresh_token"] == "rt_2"
    sent = {r.headers["authorization"] for r in fake.responses_requests()}
    assert sent == {f"Bearer {stored['tokens']['access_token']}"}


@pytest.mark.parametrize("answer", [200, 500, "unreachable"])
def test_logout_revokes_then_removes(home: Path, fake: FakeResponsesServer, answer: int | str) -> None:
    """As 0.169's `codex logout` (tests/fixtures/codex-0.169/logout-revoke.json): one revoke request
    for the refresh token, then auth.json goes — also when the revoke fails, which codexbro says."""
    captured = json.loads((FIXTURES / "codex-0.169" / "logout-revoke.json").read_text())["request"]
    write_chatgpt_auth(home, jwt({"exp": int(time.time()) + 3600}))
    calls: list[Recorded] = []
    url = f"http://127.0.0.1:{fake.port}/oauth/revoke"
    if answer == "unreachable":
        url = "http://127.0.0.1:9/oauth/revoke"
    else:

        def revoke(rec: Recorded) -> tuple[int, dict[str, str], bytes]:
            calls.append(rec)
            return int(answer), {}, b"{}"

        fake.route("POST", "/oauth/revoke", revoke)
    res = run_cli("logout", env={"CODEXBRO_REVOKE_TOKEN_URL_OVERRIDE": url})
    assert res.code == 0 and res.stdout == "Successfully logged out\n"  # upstream's words
    assert not (home / "auth.json").exists()
    if answer == "unreachable":
        assert "could not revoke the ChatGPT token (http://127.0.0.1:9/oauth/revoke unreachable" in res.stderr
        return
    (call,) = calls
    assert call.path == captured["path"] and call.body == {**captured["body"], "token": "rt_1"}
    assert call.headers["content-type"] == "application/json" and call.headers["originator"] == "codex_cli_rs"
    if answer == 200:
        assert res.stderr == ""
    else:
        assert "could not revoke the ChatGPT token" in res.stderr and "HTTP 500" in res.stderr
        assert "rt_1" not in res.stderr  # never the token itself


def test_logout_with_an_api_key_sends_nothing(home: Path, fake: FakeResponsesServer) -> None:
    (home / "auth.json").write_text('{"OPENAI_API_KEY": "sk-test", "auth_mode": "apikey"}')
    res = run_cli(
        "logout", env={"CODEXBRO_REVOKE_TOKEN_URL_OVERRIDE": f"http://127.0.0.1:{fake.port}/oauth/revoke"}
    )
    assert res.stdout == "Successfully logged out\n" and fake.requests == []
    assert run_cli("logout").stdout == "Not logged in\n"


def test_a_token_with_a_stray_line_break_never_reaches_an_error(home: Path, fake: FakeResponsesServer,
                                                                workspace: Path) -> None:  # fmt: skip
    """A hand-edited auth.json: a trailing newline is trimmed; one inside the token is refused by name,
    never sent (h11 would quote the whole header — the token — in its error)."""
    chatgpt_config(home, fake.base_url)
    token = jwt({"exp": int(time.time()) + 3600})
    write_chatgpt_auth(home, token + "\n")
    fake.add(Reply(message_turn("ok")))
    res = run_cli("exec", "hi", cwd=workspace)
    assert res.code == 0, res.stderr
    assert fake.responses_requests()[0].headers["authorization"] == f"Bearer {token}"
    write_chatgpt_auth(home, token[:20] + "\n" + token[20:])
    res = run_cli("exec", "hi", cwd=workspace)
    assert res.code == 1 and "holds a space or a control character" in res.stderr
    assert token[:20] not in res.stderr + res.stdout
    from codexbro.api.http import describe_transport_error

    class LocalProtocolError(Exception):
        pass

    shown = describe_transport_error(LocalProtocolError(f"Illegal header value b'Bearer {token}\\n'"))
    assert token not in shown and "invalid value" in shown

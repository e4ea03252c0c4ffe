"""A ChatGPT workspace's managed requirements (issue 23): fetched at session start from the config
bundle (0.169's route; the older requirements route when the bundle is absent), kept in the home,
enforced — a chosen setting they forbid is refused naming the requirement and its source, a
default falls back — and shown by `debug request`. Real `codexbro` subprocesses, loopback fake."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fakes.chatgpt_backend import FakeChatGPTBackend
from tests.fakes.events import message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply
from tests.test_auth import jwt

POLICY = ('allowed_approval_policies = ["untrusted", "on-request"]\n'
          'allowed_sandbox_modes = ["read-only"]\nallowed_web_search_modes = ["cached"]\n')  # fmt: skip
BUNDLE = {"config_toml": {"enterprise_managed": []},
          "requirements_toml": {"enterprise_managed": [{"id": "req_1", "name": "Org policy", "contents": POLICY}]}}  # fmt: skip


def login(home: Path, plan: str) -> None:
    claims = {"email": "dev@example.com", "exp": int(time.time()) + 3600,
              "https://api.openai.com/auth": {"chatgpt_plan_type": plan, "chatgpt_account_id": "acct_9"}}  # fmt: skip
    doc = {"auth_mode": "chatgpt", "OPENAI_API_KEY": None,
           "tokens": {"id_token": jwt(claims), "access_token": jwt({"exp": int(time.time()) + 3600}),
                      "refresh_token": "rt_1", "account_id": "acct_9"}, "last_refresh": "2026-12-03T00:00:00Z"}  # fmt: skip
    (home / "auth.json").write_text(json.dumps(doc))


@pytest.fixture
def backend(home: Path, fake: FakeResponsesServer) -> FakeChatGPTBackend:
    (home / "config.toml").write_text(
        f'chatgpt_base_url = "http://127.0.0.1:{fake.port}/backend-api/"\nmodel = "gpt-5.1-codex"\n'
        'model_provider = "oa"\n[model_providers.oa]\nname = "OpenAI"\n'
        f'base_url = "{fake.base_url}"\nrequires_openai_auth = true\nrequest_max_retries = 0\nstream_max_retries = 0\n'
    )
    login(home, "enterprise")
    b = FakeChatGPTBackend(fake)
    b.bundle = BUNDLE
    return b


def bundle_fetches(b: FakeChatGPTBackend) -> int:
    return sum(p.endswith("/wham/config/bundle") for p in b.paths())


def test_a_chosen_setting_the_workspace_forbids_is_refused(
    backend: FakeChatGPTBackend, workspace: Path
) -> None:
    res = run_cli("exec", "--skip-git-repo-check", "-s", "workspace-write", "hi", cwd=workspace)
    assert res.code == 1
    assert "sandbox_mode = 'workspace-write' (from flag) is not allowed by your workspace" in res.stderr
    assert "allowed_sandbox_modes = ['read-only']" in res.stderr
    assert 'enterprise-managed requirements "Org policy" (req_1)' in res.stderr
    assert backend.fake.responses_requests() == []  # refused before anything was asked of the model


def test_a_default_falls_back_and_the_turn_runs(
    backend: FakeChatGPTBackend, workspace: Path, home: Path
) -> None:
    backend.fake.add(Reply(message_turn("ok")))
    res = run_cli("exec", "--skip-git-repo-check", "--json", "hi", cwd=workspace)
    assert res.code == 0, res.stderr
    # exec's own "never" (no one is there to approve) was nobody's choice: it falls back, with a warning
    warned = [json.loads(line) for line in res.stdout.splitlines() if "approval_policy defaults to" in line]
    assert warned and "which allowed_approval_policies does not allow" in json.dumps(warned[0])
    assert "using 'untrusted'" in json.dumps(warned[0])
    cache = home / "managed_requirements.json"
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    assert json.loads(cache.read_text())["fragments"][0]["name"] == "Org policy"
    # Within the hour the kept copy is used: no second fetch.
    res = run_cli("debug", "request", "hi", cwd=workspace)
    assert res.code == 0, res.stderr
    assert bundle_fetches(backend) == 1
    assert "policy       sandbox read-only, approvals untrusted" in res.stdout
    assert "allowed_sandbox_modes = ['read-only']  (set by enterprise-managed requirements" in res.stdout
    assert "allowed_web_search_modes: not enforced by codexbro" in res.stdout


def test_offline_uses_the_kept_copy_then_warns_without_one(backend: FakeChatGPTBackend, workspace: Path,
                                                           home: Path) -> None:  # fmt: skip
    assert run_cli("debug", "request", "hi", cwd=workspace).code == 0  # fetched and kept
    cache = home / "managed_requirements.json"
    doc = json.loads(cache.read_text())
    doc["fetched_at"] = time.time() - 7200  # stale: a fetch is tried first
    cache.write_text(json.dumps(doc))
    os.chmod(cache, 0o600)
    backend.fail["/wham/config/bundle"] = (500, {"content-type": "application/json"}, b'{"detail": "down"}')
    stale = run_cli("exec", "--skip-git-repo-check", "-s", "workspace-write", "hi", cwd=workspace)
    assert stale.code == 1 and "stale cache" in stale.stderr  # still enforced, from the copy
    cache.unlink()
    backend.fake.add(Reply(message_turn("ok")))
    res = run_cli("exec", "--skip-git-repo-check", "-s", "workspace-write", "hi", cwd=workspace)
    assert res.code == 0, res.stderr
    assert "managed requirements could not be fetched and none were kept" in res.stderr


def test_the_older_route_when_the_bundle_is_absent(backend: FakeChatGPTBackend, workspace: Path) -> None:
    backend.fail["/wham/config/bundle"] = (
        404,
        {"content-type": "application/json"},
        b'{"detail": "Not Found"}',
    )
    backend.fake.route("GET", "/backend-api/wham/config/requirements",
                       lambda rec: (200, {"content-type": "application/json"},
                                    json.dumps({"contents": 'allowed_sandbox_modes = ["read-only"]\n',
                                                "sha256": "abc123"}).encode()))  # fmt: skip
    res = run_cli(
        "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "hi", cwd=workspace
    )
    assert res.code == 1 and "sandbox_mode = 'danger-full-access' (from flag) is not allowed" in res.stderr
    assert "wham/config/requirements" in res.stderr


def test_invalid_requirements_are_refused_and_personal_plans_fetch_nothing(
    backend: FakeChatGPTBackend, workspace: Path, home: Path
) -> None:
    backend.bundle = {
        "requirements_toml": {"enterprise_managed": [{"id": "r", "name": "Bad", "contents": "x = ["}]}
    }
    res = run_cli("debug", "request", "hi", cwd=workspace)
    assert res.code == 1 and 'requirements "Bad" (r) are not valid TOML' in res.stderr
    login(home, "plus")
    before = bundle_fetches(backend)
    assert run_cli("debug", "request", "hi", cwd=workspace).code == 0
    assert bundle_fetches(backend) == before


async def test_a_later_change_is_held_to_them_too(backend: FakeChatGPTBackend, workspace: Path) -> None:
    """`/approvals` (OverrideTurnContext) and an app-server client change settings mid-session:
    the requirements hold there too."""
    import asyncio

    from codexbro import protocol as p
    from codexbro.composition import SessionOptions, start_session
    from codexbro.config.loader import Overrides, load_config

    config = load_config(
        Overrides(cwd=workspace, flags={"sandbox_mode": "read-only", "approval_policy": "untrusted"})
    )
    session = start_session(config, SessionOptions(ephemeral=True, interactive=True))
    try:
        session.submit(p.OverrideTurnContext(sandbox_mode="danger-full-access"))
        async with asyncio.timeout(10):
            while True:
                msg = (await session.next_event()).msg
                if isinstance(msg, p.ErrorEvent):
                    break
        assert "sandbox_mode = 'danger-full-access' is not allowed by your workspace" in msg.message
        assert session.config.sandbox_mode == "read-only"
        session.submit(p.OverrideTurnContext(approval_policy="on-request"))
        async with asyncio.timeout(10):
            while not isinstance((await session.next_event()).msg, p.SessionConfigured):
                pass
        assert session.config.approval_policy == "on-request"  # an allowed change goes through
    finally:
        await session.close()


def test_odd_requirements_and_plans(backend: FakeChatGPTBackend, workspace: Path, home: Path) -> None:
    """Values codexbro does not know are refused by name; a deeply nested fragment is an error, not
    a traceback; an unknown plan is asked (not trusted); a copy stamped in the future is not fresh."""
    backend.bundle = {"requirements_toml": {"enterprise_managed": [
        {"id": "r", "name": "Typo", "contents": 'allowed_sandbox_modes = ["workspace_write"]\n'}]}}  # fmt: skip
    res = run_cli("debug", "request", "hi", cwd=workspace)
    assert (
        res.code == 1
        and "allow 'workspace_write' in allowed_sandbox_modes, which is not one of" in res.stderr
    )
    deep = "x = " + "[" * 5000 + "]" * 5000 + "\n"
    backend.bundle = {
        "requirements_toml": {"enterprise_managed": [{"id": "d", "name": "Deep", "contents": deep}]}
    }
    res = run_cli("debug", "request", "hi", cwd=workspace)
    assert res.code == 1 and "Traceback" not in res.stderr and '"Deep"' in res.stderr
    backend.bundle = BUNDLE
    login(home, "quorum")  # a plan codexbro does not know: asked
    before = bundle_fetches(backend)
    assert "allowed_sandbox_modes" in run_cli("debug", "request", "hi", cwd=workspace).stdout
    assert bundle_fetches(backend) == before + 1
    cache = home / "managed_requirements.json"
    doc = json.loads(cache.read_text())
    doc["fetched_at"] = time.time() + 10 * 86400
    cache.write_text(json.dumps(doc))
    os.chmod(cache, 0o600)
    assert run_cli("debug", "request", "hi", cwd=workspace).code == 0
    assert bundle_fetches(backend) == before + 2  # not trusted as fresh: fetched again


def test_a_failed_fetch_is_not_waited_for_again_at_once(backend: FakeChatGPTBackend, workspace: Path) -> None:
    """A server opening many sessions (app server): after a failed fetch, the next sessions within
    a minute open at once (with the warning) instead of waiting again."""
    from codexbro.composition import managed
    from codexbro.config.loader import Overrides, load_config

    backend.fail["/wham/config/bundle"] = (500, {"content-type": "application/json"}, b'{"detail": "down"}')
    config = load_config(Overrides(cwd=workspace, flags={"sandbox_mode": "read-only"}))
    managed._FAILED.clear()
    first = managed.load(config)
    assert first.origin == "none" and "could not be fetched" in first.note
    started = time.monotonic()
    again = managed.load(config)
    assert time.monotonic() - started < 0.5 and "less than a minute ago" in again.note
    assert bundle_fetches(backend) == 1
    managed._FAILED.clear()


def test_a_broken_auth_json_does_not_stop_an_api_key_session(home: Path, fake: FakeResponsesServer,
                                                             workspace: Path) -> None:  # fmt: skip
    """Requirements look at auth.json for a workspace login; one that cannot be read is no such login
    — a session on an API key from the environment still runs."""
    from tests.conftest import write_config

    write_config(home, fake.base_url)
    (home / "auth.json").write_text("{not json")
    fake.add(Reply(message_turn("ok")))
    res = run_cli("exec", "--skip-git-repo-check", "hi", cwd=workspace)
    assert res.code == 0, res.stderr

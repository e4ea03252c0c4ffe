"""Live catalog refresh: GET /models with client_version and ETag, models_cache.json with a TTL."""

from __future__ import annotations

import json
import time
from pathlib import Path

from codexbro import __version__
from tests.conftest import run_cli, write_config
from tests.fakes.events import message_turn
from tests.fakes.responses_server import FakeResponsesServer, Recorded, Reply
from tests.test_auth import chatgpt_config, jwt, write_chatgpt_auth

REMOTE = {"models": [{"slug": "gpt-9-test", "display_name": "GPT-9 Test", "priority": 0, "visibility": "list",
                      "shell_type": "shell_command", "context_window": 400000}]}  # fmt: skip


def models_route(fake: FakeResponsesServer, seen: list[Recorded]) -> None:
    def handler(rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        seen.append(rec)
        if rec.headers.get("if-none-match") == '"etag-1"':
            return 304, {}, b""
        return 200, {"content-type": "application/json", "etag": '"etag-1"'}, json.dumps(REMOTE).encode()

    fake.route("GET", "/v1/models", handler)


def test_refresh_cache_etag_and_offline_listing(home: Path, fake: FakeResponsesServer) -> None:
    write_config(home, fake.base_url)
    seen: list[Recorded] = []
    models_route(fake, seen)
    res = run_cli("models", "--refresh", "--json")
    assert res.code == 0, res.stderr
    assert "refreshed from" in res.stderr and "1 models" in res.stderr
    assert seen[0].path == f"/v1/models?client_version={__version__}"
    assert seen[0].headers["authorization"].startswith("Bearer ")
    cache = json.loads((home / "models_cache.json").read_text())
    assert cache["etag"] == '"etag-1"' and cache["client_version"] == __version__
    listed = json.loads(res.stdout)
    assert listed["default"] == "gpt-9-test" and len(listed["models"]) == 26  # 25 bundled + 1 live
    # Offline: the cache is used without a request.
    offline = run_cli("models", "show", "gpt-9-test")
    assert "GPT-9 Test" in offline.stdout and len(seen) == 1
    # Second refresh: If-None-Match → 304, the cache stays and its time is renewed.
    before = cache["fetched_at"]
    time.sleep(0.01)
    again = run_cli("models", "--refresh")
    assert "unchanged (ETag matched)" in again.stderr and seen[1].headers["if-none-match"] == '"etag-1"'
    assert json.loads((home / "models_cache.json").read_text())["fetched_at"] != before


def test_cache_for_another_version_is_ignored_and_catalog_json_wins(home: Path, fake: FakeResponsesServer,
                                                                    tmp_path: Path) -> None:  # fmt: skip
    (home / "models_cache.json").write_text(json.dumps({"fetched_at": "2099-01-01T00:00:00Z", "etag": "x",
                                                        "client_version": "0.0.1", "models": REMOTE["models"]}))  # fmt: skip
    assert "gpt-9-test" not in run_cli("models").stdout
    custom = tmp_path / "catalog.json"
    custom.write_text(json.dumps({"models": [{"slug": "only-me"}]}))
    write_config(home, fake.base_url, extra=f'model_catalog_json = "{custom}"')
    res = run_cli("models", "--refresh", "--json")
    assert "nothing to refresh" in res.stderr and [m["slug"] for m in json.loads(res.stdout)["models"]] == [
        "only-me"
    ]
    assert fake.requests == []


def test_chatgpt_session_refreshes_in_the_background(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    chatgpt_config(home, fake.base_url)
    write_chatgpt_auth(home, jwt({"exp": int(time.time()) + 3600}))
    seen: list[Recorded] = []
    models_route(fake, seen)
    fake.add(Reply(message_turn("ok")))
    assert run_cli("exec", "hi", cwd=workspace).code == 0
    assert len(seen) == 1 and (home / "models_cache.json").exists()
    assert seen[0].headers["chatgpt-account-id"] == "acct_42"

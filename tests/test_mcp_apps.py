"""ChatGPT connectors through the apps MCP gateway: a ChatGPT login gets the ``codex_apps`` server
(``…/backend-api/wham/apps``, the account's headers) in its sessions, and ``codexbro connectors
active`` lists what it offers — against a loopback fake gateway speaking real streamable-HTTP MCP
(tests/mcp_servers/apps_gateway.py)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codexbro.config.loader import Overrides, load_config
from codexbro.mcp.apps import gateway
from tests.conftest import free_port, run_cli, server_process
from tests.fakes.events import ev_completed, ev_created, ev_function_call, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply
from tests.test_auth import jwt, write_chatgpt_auth

GATEWAY = Path(__file__).parent / "mcp_servers" / "apps_gateway.py"
TOKEN = jwt({"exp": int(time.time()) + 24 * 3600, "purpose": "apps-test"})


@pytest.fixture
def fake_gateway(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port, log = free_port(), tmp_path / "gateway.log"
    env = {"GATEWAY_TOKEN": TOKEN, "GATEWAY_LOG": str(log), "PATH": "/usr/bin:/bin"}
    with server_process([sys.executable, str(GATEWAY), str(port)], port, tmp_path / "gateway.err", env):
        yield port, log


def chatgpt_setup(home: Path, model_base: str, gateway_port: int, token: str = TOKEN) -> None:
    (home / "config.toml").write_text(
        f'model = "gpt-5.1-codex"\nmodel_provider = "oa"\nchatgpt_base_url = "http://127.0.0.1:{gateway_port}/backend-api/"\n'
        f'[model_providers.oa]\nname = "OpenAI"\nbase_url = "{model_base}"\nrequires_openai_auth = true\n'
        "request_max_retries = 0\nstream_max_retries = 0\n"
    )
    write_chatgpt_auth(home, token)


def test_connectors_reach_the_model_with_the_account_headers(home: Path, workspace: Path,
                                                             fake_gateway: tuple[int, Path]) -> None:  # fmt: skip
    port, log = fake_gateway
    script = [
        Reply([ev_created(), ev_function_call("c1", "mcp__codex_apps__github_search_issues", {"query": "flaky"}),
               ev_completed()]),
        Reply(message_turn("found them")),
    ]  # fmt: skip
    with FakeResponsesServer(script) as fake:
        chatgpt_setup(home, fake.base_url, port)
        result = run_cli("exec", "--json", "flaky tests?", cwd=workspace)
        bodies = fake.bodies()
    assert result.code == 0, result.stderr
    names = [t.get("name") for t in bodies[0]["tools"]]
    assert {"mcp__codex_apps__github_search_issues", "mcp__codex_apps__calendar_find_events"} <= set(names)
    output = next(i["output"] for i in bodies[1]["input"] if i.get("type") == "function_call_output")
    assert "2 issues match 'flaky'" in json.dumps(output)
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert seen and all(s["path"] == "/backend-api/wham/apps" for s in seen)
    assert all(s["authorization"] == f"Bearer {TOKEN}" and s["account"] == "acct_42" for s in seen)
    assert TOKEN not in result.stdout + result.stderr  # the token never shows


def test_connectors_active_lists_them(home: Path, fake_gateway: tuple[int, Path]) -> None:
    port, _log = fake_gateway
    chatgpt_setup(home, "http://127.0.0.1:9/unused", port)
    result = run_cli("connectors", "active", "--json")
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["route"] == "wham.apps" and doc["gateway"].endswith("/backend-api/wham/apps")
    assert [(c["id"], c["name"], c["tools"]) for c in doc["connectors"]] == [
        ("connector_github", "GitHub", ["github_search_issues"]),
        ("connector_gcal", "Google Calendar", ["calendar_find_events"]),
    ]
    table = run_cli("connectors", "active")
    assert "2 active connectors" in table.stdout and "GitHub" in table.stdout


def test_a_rejected_token_is_reported_and_the_session_goes_on(home: Path, workspace: Path,
                                                             fake_gateway: tuple[int, Path]) -> None:  # fmt: skip
    port, _log = fake_gateway
    with FakeResponsesServer([Reply(message_turn("ok"))]) as fake:
        chatgpt_setup(
            home, fake.base_url, port, token=jwt({"exp": int(time.time()) + 3600, "who": "wrong-token"})
        )
        result = run_cli("exec", "--json", "hi", cwd=workspace)
        names = [t.get("name") for t in fake.bodies()[0]["tools"]]
    assert result.code == 0, result.stderr
    assert not any(str(n).startswith("mcp__codex_apps") for n in names)
    warnings = [e["item"]["message"] for e in result.events() if e["type"] == "item.completed"
                and e["item"]["type"] == "error"]  # fmt: skip
    assert any("`codex_apps` failed to start" in w and "401" in w for w in warnings), warnings
    assert "Bearer" not in result.stdout + result.stderr
    inactive = run_cli("connectors", "active")
    assert inactive.code == 1 and "did not answer" in inactive.stderr


def test_gateway_urls(home: Path) -> None:
    def url(base: str, *flags: str) -> str:
        config = load_config(Overrides(cli_overrides=[f'chatgpt_base_url="{base}"', *flags]))
        return gateway(config)[0]

    assert url("https://chatgpt.com/backend-api/") == "https://chatgpt.com/backend-api/wham/apps"
    assert url("https://chat.openai.com") == "https://chat.openai.com/backend-api/wham/apps"
    assert url("http://localhost:8080/api/codex") == "http://localhost:8080/api/codex/apps"
    assert url("http://localhost:8080") == "http://localhost:8080/api/codex/apps"
    assert url("https://chatgpt.com/backend-api/", "features.apps_mcp_gateway=true") == (
        "https://api.openai.com/v1/connectors/gateways/flat/mcp"
    )


def test_api_key_sessions_and_switched_off_apps_have_no_gateway(home: Path, workspace: Path,
                                                               fake_gateway: tuple[int, Path]) -> None:  # fmt: skip
    port, log = fake_gateway
    with FakeResponsesServer([Reply(message_turn("ok"))]) as fake:
        chatgpt_setup(home, fake.base_url, port)
        result = run_cli("exec", "-c", "features.apps=false", "hi", cwd=workspace)
        names = [t.get("name") for t in fake.bodies()[0]["tools"]]
    assert result.code == 0, result.stderr
    assert "list_mcp_resources" not in names and not log.exists()


def test_routes_marks_the_gateway_used_for_a_chatgpt_login(home: Path) -> None:
    write_chatgpt_auth(home, TOKEN)
    shown = json.loads(run_cli("routes", "--json").stdout)
    rows = [r for r in shown if r.get("name") in ("wham.apps", "connectors.gateway_mcp")]
    assert rows, shown
    assert {r["name"]: r["status"] for r in rows}["wham.apps"] == "used"
    gateway_urls = [r["url"] for r in rows if r["name"] == "connectors.gateway_mcp"]
    assert gateway_urls == ["https://api.openai.com/v1/connectors/gateways/flat/mcp"]

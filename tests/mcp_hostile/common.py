"""Shared helpers for the MCP attack reproducers: a hostile stdio server in config.toml, and
`codexbro exec` runs against the loopback fake Responses server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.conftest import run_cli, write_config
from tests.fakes.events import ev_completed, ev_created, ev_function_call, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply

HOSTILE = Path(__file__).parent / "hostile_server.py"
PROBE = Path(__file__).parent.parent / "mcp_servers" / "probe_server.py"


def hostile(mode: str, arg: str = "", *, name: str = "h", extra: str = "") -> str:
    return f"""
[mcp_servers.{name}]
command = "{sys.executable}"
args = ["{HOSTILE}", "{mode}", "{arg}"]
{extra}
"""


def probe(name: str = "probe", extra: str = "") -> str:
    return f'\n[mcp_servers.{name}]\ncommand = "{sys.executable}"\nargs = ["{PROBE}"]\n{extra}\n'


def calls_then(*calls: tuple[str, str, dict[str, Any]], more: list[Reply] | None = None) -> list[Reply]:
    events = [ev_created(), *(ev_function_call(cid, n, a) for cid, n, a in calls), ev_completed()]
    return [Reply(events), *(more or []), Reply(message_turn("done"))]


def outputs(body: dict[str, Any]) -> dict[str, Any]:
    return {i["call_id"]: i["output"] for i in body["input"] if i.get("type") == "function_call_output"}


def tool_names(body: dict[str, Any]) -> list[str]:
    return [str(t.get("name", t.get("type"))) for t in body["tools"]]


def run_exec(home: Path, workspace: Path, servers: str, script: list[Reply], *, human: bool = False,
             model: str = "gpt-5.1-codex", env: dict[str, str] | None = None, timeout: float = 60,
             ) -> tuple[Any, list[dict[str, Any]]]:  # fmt: skip
    with FakeResponsesServer(script) as fake:
        write_config(home, fake.base_url, extra=servers, model=model)
        mode = [] if human else ["--json"]
        result = run_cli(
            "exec", *mode, "--skip-git-repo-check", "go", cwd=workspace, env=env, timeout=timeout
        )
        bodies = fake.bodies()
    return result, bodies


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)

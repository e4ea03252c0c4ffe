"""0.169's deferred MCP tools (models whose catalog entry has ``supports_search_tool``): the tools
are not on the menu, the developer message lists their namespaces, ``tool_search`` finds them and
a namespaced call runs them — compared with what the real Codex 0.169 sent for the same script
(tests/fixtures/codex-0.169/mcp-tool-search.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from codexbro.mcp.search import rank
from tests.conftest import run_cli, write_config
from tests.fakes.events import ev_completed, ev_created, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply

UPSTREAM = json.loads(
    (Path(__file__).parent / "fixtures" / "codex-0.169" / "mcp-tool-search.json").read_text()
)
PROBE = Path(__file__).parent / "mcp_servers" / "probe_server.py"


def _done(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "response.output_item.done", "output_index": 0, "item": item}


def script() -> list[Reply]:
    search = {"type": "tool_search_call", "call_id": "ts1", "status": "completed", "execution": "client",
              "arguments": {"query": "echo text", "limit": 8}}  # fmt: skip
    call = {"type": "function_call", "call_id": "f1", "namespace": "mcp__probe", "name": "echo",
            "arguments": json.dumps({"text": "hi"})}  # fmt: skip
    pixel = {
        "type": "function_call",
        "call_id": "f3",
        "namespace": "mcp__probe",
        "name": "pixel",
        "arguments": "{}",
    }
    flat = {"type": "function_call", "call_id": "f2", "name": "mcp__probe__echo", "arguments": "{}"}
    return [
        Reply([ev_created(), _done(search), ev_completed()]),
        Reply([ev_created("r2"), _done(call), _done(flat), _done(pixel), ev_completed("r2")]),
        Reply(message_turn("done")),
    ]


def test_deferred_tools_as_upstream(home: Path, workspace: Path) -> None:
    extra = f'[mcp_servers.probe]\ncommand = "{sys.executable}"\nargs = ["{PROBE}"]\n'
    with FakeResponsesServer(script()) as fake:
        write_config(home, fake.base_url, extra=extra, model="gpt-5.5")
        result = run_cli("exec", "--json", "--skip-git-repo-check", "use echo", cwd=workspace)
        bodies = fake.bodies()
    assert result.code == 0, result.stderr
    first = bodies[0]
    names = [t.get("name", t.get("type")) for t in first["tools"]]
    assert not any(n.startswith("mcp__") for n in names)  # deferred: not on the menu
    assert names.index("read_mcp_resource") < names.index("tool_search")
    assert names[-1] == "tool_search"  # after view_image, as upstream (web_search is off here)
    spec = next(t for t in first["tools"] if t.get("type") == "tool_search")
    assert spec == UPSTREAM["tool_search_spec"]
    developer = [c["text"] for i in first["input"] if i.get("role") == "developer" for c in i["content"]]
    # Upstream also lists its multi-agent tools' namespace; codexbro has no such tools.
    expected = "\n".join(
        line for line in UPSTREAM["deferred_developer_text"].splitlines() if "multi_agent" not in line
    )
    assert expected in developer
    found = next(i for i in bodies[1]["input"] if i.get("type") == "tool_search_output")
    assert found == UPSTREAM["tool_search_output"]
    outputs = {
        i["call_id"]: i["output"] for i in bodies[2]["input"] if i.get("type") == "function_call_output"
    }
    assert outputs["f1"].split("\n", 1)[1] == UPSTREAM["function_call_output"].split("\n", 1)[1]
    assert outputs["f2"] == "unsupported call: mcp__probe__echo"  # as upstream: the flat name is not a tool
    # Without structured content: content items, as upstream's (the wall time aside).
    assert outputs["f3"][1:] == UPSTREAM["content_output"][1:]
    assert outputs["f3"][0]["text"].startswith("Wall time: ") and outputs["f3"][0]["text"].endswith(
        " seconds\nOutput:"
    )
    items = [
        e["item"]
        for e in result.events()
        if e["type"] == "item.completed" and e["item"]["type"] == "mcp_tool_call"
    ]
    assert [(i["server"], i["tool"], i["status"]) for i in items] == [
        ("probe", "echo", "completed"),
        ("probe", "pixel", "completed"),
    ]


def test_models_without_the_search_tool_get_the_flat_tools(home: Path, workspace: Path) -> None:
    extra = f'[mcp_servers.probe]\ncommand = "{sys.executable}"\nargs = ["{PROBE}"]\n'
    with FakeResponsesServer([Reply(message_turn("ok"))]) as fake:
        write_config(home, fake.base_url, extra=extra, model="gpt-5.4")
        result = run_cli("exec", "--json", "--skip-git-repo-check", "hi", cwd=workspace)
        first = fake.bodies()[0]
    assert result.code == 0, result.stderr
    names = [t.get("name", t.get("type")) for t in first["tools"]]
    assert "tool_search" not in names and "mcp__probe__echo" in names
    assert not any("Deferred tool namespaces" in json.dumps(i) for i in first["input"])


def test_bm25_ranks_by_relevance() -> None:
    docs = ["echo echo text back", "add numbers integers", "write a note text", "crash kill server process"]
    assert rank("echo text", docs, 8)[0] == 0
    assert rank("kill the server", docs, 8) == [3]
    assert rank("zebra", docs, 8) == []
    assert len(rank("text", docs, 1)) == 1

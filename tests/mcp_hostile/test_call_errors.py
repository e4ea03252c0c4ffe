"""Finding: `McpConnection._call_error` (src/codexbro/mcp/connection.py) classifies a failed call by
*substring* of its message: any error text containing "closed" marks the server failed and stops it
for the rest of the session, and any text containing "timed out" is reported as codexbro's own
`tool_timeout_sec` timeout. The text comes from the server (a JSON-RPC error) and, through
`read_mcp_resource`'s `uri`, from the model: one call reading `probe://closed` removes a healthy
server and all its tools.

Expected instead: a JSON-RPC error answered by a live server is that call's error only; the server
is marked stopped only when its connection really ended (the SDK's local CONNECTION_CLOSED outcome /
the runner noticed EOF / a ping fails), and "timed out" only when our own read timeout elapsed."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.events import ev_completed, ev_created, ev_function_call
from tests.fakes.responses_server import Reply
from tests.mcp_hostile.common import calls_then, dumps, hostile, outputs, probe, run_exec, tool_names


def test_model_kills_a_healthy_server_by_reading_a_resource_named_closed(home: Path, workspace: Path) -> None:
    script = calls_then(
        ("c1", "read_mcp_resource", {"server": "probe", "uri": "probe://closed"}),
        more=[Reply([ev_created("r2"), ev_function_call("c2", "mcp__probe__echo", {"text": "still there?"}),
                     ev_completed("r2")])],
    )  # fmt: skip
    result, bodies = run_exec(home, workspace, probe(), script)
    assert result.code == 0, result.stderr
    first = outputs(bodies[1])["c1"]
    # Should: "read_mcp_resource failed: MCPError: Unknown resource: probe://closed" — the server lives on.
    assert "stopped" not in first, first
    assert "mcp__probe__echo" in tool_names(bodies[1])  # its tools must stay on the menu
    assert "echo: still there?" in dumps(outputs(bodies[2])["c2"])


def test_a_json_rpc_error_mentioning_closed_does_not_stop_the_server(home: Path, workspace: Path) -> None:
    script = calls_then(("c1", "mcp__h__echo", {}), ("c2", "mcp__h__echo", {}))
    result, bodies = run_exec(home, workspace, hostile("closed_error"), script)
    assert result.code == 0, result.stderr
    out = outputs(bodies[1])
    # Should: both calls report the server's own error text ("Invalid params: ticket is closed").
    assert "ticket is closed" in out["c1"] and "ticket is closed" in out["c2"], out
    assert "mcp__h__echo" in tool_names(bodies[1])


def test_a_server_error_saying_timed_out_is_not_our_timeout(home: Path, workspace: Path) -> None:
    script = calls_then(("c1", "mcp__h__echo", {}))
    result, bodies = run_exec(home, workspace, hostile("timedout_error"), script)
    assert result.code == 0, result.stderr
    out = outputs(bodies[1])["c1"]
    # Now: "timed out after 60 s (`mcp_servers.h.tool_timeout_sec`)" although it answered at once,
    # and the server's message is lost. Should: the server's text, no tool_timeout_sec hint.
    assert "upstream API timed out" in out and "tool_timeout_sec" not in out, out

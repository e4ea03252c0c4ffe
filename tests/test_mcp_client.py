"""MCP servers through real ``codexbro exec`` turns: a stdio server and a streamable-HTTP server
written with the official SDK (tests/mcp_servers/probe_server.py) are started by codexbro, their
tools reach the model as ``mcp__SERVER__TOOL``, and the fake Responses server sees the outputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, run_cli, server_process, write_config
from tests.fakes.events import ev_completed, ev_created, ev_function_call, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply

PROBE = Path(__file__).parent / "mcp_servers" / "probe_server.py"


def stdio_server(name: str = "probe", extra: str = "") -> str:
    return f"""
[mcp_servers.{name}]
command = "{sys.executable}"
args = ["{PROBE}"]
{extra}
"""


def call_then_answer(*calls: tuple[str, str, dict[str, Any]], answer: str = "done") -> list[Reply]:
    events = [ev_created(), *(ev_function_call(cid, name, args) for cid, name, args in calls), ev_completed()]
    return [Reply(events), Reply(message_turn(answer))]


def outputs(body: dict[str, Any]) -> dict[str, Any]:
    return {i["call_id"]: i["output"] for i in body["input"] if i.get("type") == "function_call_output"}


def tool_names(body: dict[str, Any]) -> list[str]:
    return [t.get("name", t.get("type")) for t in body["tools"]]


def exec_json(workspace: Path, *extra: str, timeout: float = 60) -> tuple[int, list[dict[str, Any]], str]:
    result = run_cli("exec", "--json", "--skip-git-repo-check", *extra, "use the tools", cwd=workspace,
                     timeout=timeout)  # fmt: skip
    return result.code, result.events(), result.stderr


def test_stdio_tools_reach_the_model_and_run(home: Path, workspace: Path, tmp_path: Path) -> None:
    log = tmp_path / "probe.log"
    with FakeResponsesServer(call_then_answer(
        ("c1", "mcp__probe__echo", {"text": "hi"}),
        ("c2", "mcp__probe__add_numbers_v2", {"a": 2, "b": 3}),
        ("c3", "mcp__probe__pixel", {}),
        ("c4", "mcp__probe__fail", {"reason": "nope"}),
    )) as fake:  # fmt: skip
        write_config(home, fake.base_url, extra=stdio_server(extra=f'env = {{ PROBE_LOG = "{log}" }}'))
        code, events, stderr = exec_json(workspace)
        bodies = fake.bodies()
    assert code == 0, stderr
    names = tool_names(bodies[0])
    # Upstream's order: shell tools, the resource tools, …, then the servers' tools last.
    assert names.index("shell_command") < names.index("list_mcp_resources") < names.index("update_plan")
    assert names[-9:] == sorted(names[-9:])  # the server's tools, last
    assert "mcp__probe__add_numbers_v2" in names  # `add-numbers.v2` sanitised
    add_spec = next(t for t in bodies[0]["tools"] if t.get("name") == "mcp__probe__add_numbers_v2")
    assert add_spec["parameters"]["properties"]["a"] == {"type": "integer"}
    assert add_spec["parameters"]["required"] == ["a", "b"]
    out = outputs(bodies[1])
    # 0.169's shapes: structured content → "Wall time … Output:\n{json}", else content items.
    assert out["c2"].startswith("Wall time: ") and out["c2"].endswith('Output:\n{"sum":5}')
    echo = out["c1"]
    assert isinstance(echo, str) and echo.endswith('Output:\n{"result":"echo: hi"}')
    assert isinstance(out["c3"], list) and out["c3"][1] == {"type": "input_text", "text": "a red pixel"}
    assert out["c3"][2]["type"] == "input_image" and out["c3"][2]["image_url"].startswith(
        "data:image/png;base64,"
    )
    assert isinstance(out["c4"], list) and "nope" in out["c4"][1]["text"]
    assert log.read_text().splitlines() == ["echo hi", "add 2 3"]
    items = [
        e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == "mcp_tool_call"
    ]
    by_tool = {i["tool"]: i for i in items}
    assert by_tool["add-numbers.v2"]["server"] == "probe"
    assert by_tool["add-numbers.v2"]["arguments"] == {"a": 2, "b": 3}
    assert by_tool["add-numbers.v2"]["result"]["structured_content"] == {"sum": 5}
    assert by_tool["add-numbers.v2"]["status"] == "completed"
    assert by_tool["fail"]["status"] == "failed"
    started = [e for e in events if e["type"] == "item.started" and e["item"]["type"] == "mcp_tool_call"]
    assert len(started) == 4 and started[0]["item"]["status"] == "in_progress"


def test_enabled_and_disabled_tools_filter_the_menu(home: Path, workspace: Path) -> None:
    extra = 'enabled_tools = ["echo", "pixel", "env"]\ndisabled_tools = ["pixel"]'
    with FakeResponsesServer([Reply(message_turn("ok"))]) as fake:
        write_config(home, fake.base_url, extra=stdio_server(extra=extra))
        code, _events, stderr = exec_json(workspace)
        names = [n for n in tool_names(fake.bodies()[0]) if n.startswith("mcp__")]
    assert code == 0, stderr
    assert names == ["mcp__probe__echo", "mcp__probe__env"]


def test_server_env_is_small_and_explicit(home: Path, workspace: Path) -> None:
    """A stdio server gets a small default environment, `env_vars` passed through and `env`: not the
    agent's credentials."""
    extra = 'env_vars = ["PASS_ME"]\nenv = { SET_ME = "yes" }'
    with FakeResponsesServer(call_then_answer(
        ("c1", "mcp__probe__env", {"name": "FAKE_API_KEY"}),
        ("c2", "mcp__probe__env", {"name": "PASS_ME"}),
        ("c3", "mcp__probe__env", {"name": "SET_ME"}),
        ("c4", "mcp__probe__env", {"name": "NOT_PASSED"}),
    )) as fake:  # fmt: skip
        write_config(home, fake.base_url, extra=stdio_server(extra=extra))
        result = run_cli("exec", "--json", "--skip-git-repo-check", "go", cwd=workspace,
                         env={"PASS_ME": "passed", "NOT_PASSED": "leak"})  # fmt: skip
        out = {k: v for k, v in outputs(fake.bodies()[1]).items()}
    assert result.code == 0, result.stderr
    assert "FAKE_API_KEY=<unset>" in json.dumps(out["c1"])
    assert "PASS_ME=passed" in json.dumps(out["c2"])
    assert "SET_ME=yes" in json.dumps(out["c3"])
    assert "NOT_PASSED=<unset>" in json.dumps(out["c4"])


def test_resources(home: Path, workspace: Path) -> None:
    with FakeResponsesServer(call_then_answer(
        ("c1", "list_mcp_resources", {}),
        ("c2", "list_mcp_resource_templates", {"server": "probe"}),
        ("c3", "read_mcp_resource", {"server": "probe", "uri": "probe://readme"}),
        ("c4", "list_mcp_resources", {"cursor": "x"}),
        ("c5", "read_mcp_resource", {"server": "nosuch", "uri": "probe://readme"}),
    )) as fake:  # fmt: skip
        write_config(home, fake.base_url, extra=stdio_server())
        code, events, stderr = exec_json(workspace)
        out = outputs(fake.bodies()[1])
    assert code == 0, stderr
    listed = json.loads(out["c1"])["resources"]
    assert listed[0]["server"] == "probe" and listed[0]["uri"] == "probe://readme"
    templates = json.loads(out["c2"])["resourceTemplates"]
    assert templates[0]["uriTemplate"] == "probe://items/{item}"
    read = json.loads(out["c3"])
    assert read["contents"][0]["text"] == "probe readme text"
    assert out["c4"] == "cursor can only be used when a server is specified"
    assert "unknown MCP server `nosuch`" in out["c5"]
    items = [
        e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == "mcp_tool_call"
    ]
    assert {i["server"] for i in items} == {"codex"}  # upstream's server name for the resource tools


def test_tool_timeout(home: Path, workspace: Path) -> None:
    with FakeResponsesServer(call_then_answer(("c1", "mcp__probe__slow", {"seconds": 5}))) as fake:
        write_config(home, fake.base_url, extra=stdio_server(extra="tool_timeout_sec = 0.5"))
        started = time.monotonic()
        code, events, stderr = exec_json(workspace)
        elapsed = time.monotonic() - started
        out = outputs(fake.bodies()[1])
    assert code == 0, stderr
    assert "timed out after 0.5 s" in out["c1"] and "tool_timeout_sec" in out["c1"]
    item = next(
        e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == "mcp_tool_call"
    )
    assert item["status"] == "failed" and "timed out" in item["error"]["message"]
    assert elapsed < 15


def test_crashing_server_is_reported_once_and_the_session_goes_on(home: Path, workspace: Path) -> None:
    script = [
        Reply([ev_created(), ev_function_call("c1", "mcp__probe__crash", {}), ev_completed()]),
        Reply(
            [ev_created("r2"), ev_function_call("c2", "mcp__probe__echo", {"text": "x"}), ev_completed("r2")]
        ),
        Reply(message_turn("carried on")),
    ]
    with FakeResponsesServer(script) as fake:
        write_config(home, fake.base_url, extra=stdio_server())
        code, events, stderr = exec_json(workspace)
        bodies = fake.bodies()
    assert code == 0, stderr
    assert "stopped" in json.dumps(outputs(bodies[1])["c1"])
    assert "probe: crashing on purpose" in json.dumps(outputs(bodies[1])["c1"])  # its stderr tail
    # After the crash its tools are gone from the menu, and a call to one answers clearly.
    assert not any(n.startswith("mcp__probe__") for n in tool_names(bodies[1]))
    assert outputs(bodies[2])["c2"] == "unsupported call: mcp__probe__echo"
    warnings = [
        e["item"]["message"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == "error"
    ]
    assert len([w for w in warnings if "MCP server `probe` stopped" in w]) == 1
    assert events[-1]["type"] == "turn.completed"


def test_server_that_fails_to_start(home: Path, workspace: Path) -> None:
    extra = stdio_server(extra='env = { PROBE_FAIL_START = "1" }') + stdio_server("good")
    with FakeResponsesServer([Reply(message_turn("ok"))]) as fake:
        write_config(home, fake.base_url, extra=extra)
        code, events, stderr = exec_json(workspace)
        names = tool_names(fake.bodies()[0])
    assert code == 0, stderr
    assert "mcp__good__echo" in names and not any(n.startswith("mcp__probe__") for n in names)
    warnings = [
        e["item"]["message"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == "error"
    ]
    [failure] = [w for w in warnings if "`probe`" in w]
    assert "failed to start" in failure and "refusing to start (PROBE_FAIL_START)" in failure


def test_required_server_failing_fails_exec(home: Path, workspace: Path) -> None:
    extra = stdio_server(extra='required = true\nenv = { PROBE_FAIL_START = "1" }')
    with FakeResponsesServer([Reply(message_turn("never sent"))]) as fake:
        write_config(home, fake.base_url, extra=extra)
        code, events, _stderr = exec_json(workspace)
        sent = len(fake.bodies())
    assert code == 1
    assert sent == 0
    failed = next(e for e in events if e["type"] == "turn.failed")
    assert "required MCP server `probe` failed to start" in failed["error"]["message"]


def test_missing_command_is_reported(home: Path, workspace: Path) -> None:
    extra = '[mcp_servers.ghost]\ncommand = "/nonexistent/mcp-server"\n'
    with FakeResponsesServer([Reply(message_turn("ok"))]) as fake:
        write_config(home, fake.base_url, extra=extra)
        code, events, stderr = exec_json(workspace)
    assert code == 0, stderr
    warnings = [
        e["item"]["message"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == "error"
    ]
    assert any("`ghost` failed to start" in w and "/nonexistent/mcp-server" in w for w in warnings)


def test_startup_timeout(home: Path, workspace: Path) -> None:
    """A server slower than `startup_timeout_sec` is dropped, and exec does not wait longer."""
    extra = f'[mcp_servers.sleepy]\ncommand = "{sys.executable}"\nargs = ["-c", "import time; time.sleep(30)"]\nstartup_timeout_sec = 1\n'
    with FakeResponsesServer([Reply(message_turn("ok"))]) as fake:
        write_config(home, fake.base_url, extra=extra)
        started = time.monotonic()
        code, events, stderr = exec_json(workspace)
        elapsed = time.monotonic() - started
    assert code == 0, stderr
    assert elapsed < 12
    warnings = [
        e["item"]["message"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == "error"
    ]
    assert any("did not start within 1 s" in w for w in warnings)


def test_elicitation_is_declined_in_exec(home: Path, workspace: Path) -> None:
    with FakeResponsesServer(call_then_answer(("c1", "mcp__probe__ask", {"question": "sure?"}))) as fake:
        write_config(home, fake.base_url, extra=stdio_server())
        code, events, stderr = exec_json(workspace)
        out = outputs(fake.bodies()[1])
    assert code == 0, stderr
    assert "elicitation: decline" in json.dumps(out["c1"])
    warnings = [
        e["item"]["message"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == "error"
    ]
    assert any("asked for input; declined" in w and "sure?" in w for w in warnings)


def test_human_output_names_the_calls(home: Path, workspace: Path) -> None:
    with FakeResponsesServer(call_then_answer(("c1", "mcp__probe__echo", {"text": "hi"}))) as fake:
        write_config(home, fake.base_url, extra=stdio_server())
        result = run_cli("exec", "--skip-git-repo-check", "go", cwd=workspace)
    assert result.code == 0, result.stderr
    assert "mcp: probe/echo started" in result.stderr
    assert "mcp: probe/echo (completed in" in result.stderr


def test_bad_entries_name_the_server_and_key(home: Path, workspace: Path) -> None:
    cases = {
        '[mcp_servers.a]\ncommand = 5\n': "`mcp_servers.a.command` must be a string",
        '[mcp_servers.a]\ncommand = "x"\nurl = "http://y"\n': "`mcp_servers.a`: url is not supported for stdio",
        '[mcp_servers.a]\nargs = []\n': "`mcp_servers.a`: invalid transport",
        '[mcp_servers.a]\ncommand = "x"\ndefault_tools_approval_mode = "sometimes"\n':
            "`mcp_servers.a.default_tools_approval_mode` must be one of",
        '[mcp_servers.a]\ncommand = "x"\n[mcp_servers.a.tools.echo]\napproval_mode = 3\n':
            "`mcp_servers.a.tools.echo.approval_mode` must be one of",
        '[mcp_servers.a]\nurl = "ftp://x"\n': "`mcp_servers.a.url`: must be an http:// or https:// URL",
        '[mcp_servers.a]\ncommand = "x"\nbearer_token_env_var = "T"\n': "only streamable HTTP servers",
        '[mcp_servers.a]\ncommand = "x"\nstartup_timeout_sec = -1\n': "non-negative number of seconds",
    }  # fmt: skip
    for text, expected in cases.items():
        (home / "config.toml").write_text(text)
        result = run_cli("mcp", "list", cwd=workspace)
        assert result.code == 1 and expected in result.stderr, (text, result.stderr)
    # Every key 0.169 accepts is accepted.
    (home / "config.toml").write_text(
        '[mcp_servers.full]\ncommand = "x"\nargs = ["a"]\nenv = { A = "1" }\nenv_vars = ["B"]\ncwd = "/tmp"\n'
        "enabled = true\nrequired = false\nstartup_timeout_sec = 2.5\nstartup_timeout_ms = 100\ntool_timeout_sec = 30\n"
        'enabled_tools = ["t"]\ndisabled_tools = ["u"]\nsupports_parallel_tool_calls = true\nscopes = ["s"]\n'
        'oauth_resource = "https://r"\ndefault_tools_approval_mode = "writes"\n'
        '[mcp_servers.full.tools.t]\napproval_mode = "approve"\n'
        '[mcp_servers.web]\nurl = "https://x/mcp"\nbearer_token_env_var = "T"\nhttp_headers = { X = "1" }\n'
        'env_http_headers = { Y = "Z" }\n[mcp_servers.web.oauth]\nclient_id = "c"\n'
        'mcp_oauth_credentials_store = "file"\nmcp_oauth_callback_port = 5555\n'
    )
    result = run_cli("mcp", "list", "--json", cwd=workspace)
    assert result.code == 0, result.stderr
    assert "unknown config key" not in result.stderr
    listed = {s["name"]: s for s in json.loads(result.stdout)}
    assert listed["full"]["startup_timeout_sec"] == 2.5 and listed["full"]["tool_timeout_sec"] == 30


# ---- streamable HTTP -------------------------------------------------------------------------------


@pytest.fixture
def http_probe(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    with server_process([sys.executable, str(PROBE), "http", str(port)], port, tmp_path / "http-probe.log"):
        yield f"http://127.0.0.1:{port}/mcp"


def test_streamable_http_server(home: Path, workspace: Path, http_probe: str) -> None:
    extra = f'[mcp_servers.web]\nurl = "{http_probe}"\nbearer_token_env_var = "WEB_TOKEN"\n'
    with FakeResponsesServer(call_then_answer(
        ("c1", "mcp__web__add_numbers_v2", {"a": 20, "b": 22}),
        ("c2", "read_mcp_resource", {"server": "web", "uri": "probe://items/7"}),
    )) as fake:  # fmt: skip
        write_config(home, fake.base_url, extra=extra)
        result = run_cli(
            "exec", "--json", "--skip-git-repo-check", "go", cwd=workspace, env={"WEB_TOKEN": "tok"}
        )
        out = outputs(fake.bodies()[1])
    assert result.code == 0, result.stderr
    assert out["c1"].endswith('Output:\n{"sum":42}')
    assert json.loads(out["c2"])["contents"][0]["text"] == "item 7"


def test_exec_without_servers_does_not_import_mcp(home: Path, workspace: Path) -> None:
    """The SDK costs ~0.5 s to import: a session with no server never loads it (issue 17.7)."""
    with FakeResponsesServer([Reply(message_turn("ok"))]) as fake:
        write_config(home, fake.base_url)
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "codexbro", "exec", "--skip-git-repo-check",
                               "hi"], cwd=workspace, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    modules = {
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "codexbro.exec.run" in modules  # the measurement works
    assert not {m for m in modules if m == "mcp" or m.startswith(("mcp.", "codexbro.mcp"))}


EVERYTHING = shutil.which("mcp-server-everything")


@pytest.mark.skipif(EVERYTHING is None, reason="mcp-server-everything is not installed (npm install -g "
                    "@modelcontextprotocol/server-everything; .ci/run does it)")  # fmt: skip
def test_third_party_everything_server(home: Path, workspace: Path) -> None:
    """The reference "everything" server from npm (TypeScript SDK): names with `-`, structured
    content, images, resources."""
    extra = f'[mcp_servers.everything]\ncommand = "{EVERYTHING}"\nstartup_timeout_sec = 30\n'
    with FakeResponsesServer(call_then_answer(
        ("c1", "mcp__everything__echo", {"message": "hi"}),
        ("c2", "mcp__everything__get_sum", {"a": 1, "b": 41}),
        ("c3", "mcp__everything__get_tiny_image", {}),
        ("c4", "list_mcp_resources", {"server": "everything"}),
    )) as fake:  # fmt: skip
        write_config(home, fake.base_url, extra=extra)
        code, events, stderr = exec_json(workspace, timeout=90)
        bodies = fake.bodies()
    assert code == 0, stderr
    names = tool_names(bodies[0])
    assert {"mcp__everything__echo", "mcp__everything__get_sum"} <= set(names)
    out = outputs(bodies[1])
    assert "Echo: hi" in json.dumps(out["c1"])
    assert "42" in json.dumps(out["c2"])
    assert any(i.get("type") == "input_image" for i in out["c3"])
    assert json.loads(out["c4"])["resources"]
    done = [
        e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == "mcp_tool_call"
    ]
    assert {i["tool"] for i in done} >= {"echo", "get-sum", "get-tiny-image"}


def test_debug_request_shows_the_mcp_tools(home: Path, workspace: Path) -> None:
    with FakeResponsesServer() as fake:
        write_config(home, fake.base_url, extra=stdio_server())
        result = run_cli("debug", "request", "--json", "hi", cwd=workspace)
    assert result.code == 0, result.stderr
    assert "mcp__probe__echo" in result.stdout and "list_mcp_resources" in result.stdout


def test_a_text_turn_imports_only_what_it_uses(home: Path, workspace: Path) -> None:
    """Issue 19.5: the third-party packages `codexbro exec` loads for a text turn are h11 and msgspec
    and nothing else (no MCP SDK, no TUI, no TOML writer, no websockets, no pydantic)."""
    import importlib.util

    with FakeResponsesServer([Reply(message_turn("ok"))]) as fake:
        write_config(home, fake.base_url)
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "codexbro", "exec", "--skip-git-repo-check",
                               "hi"], cwd=workspace, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [
        ln
        for ln in proc.stderr.splitlines()
        if ln.startswith("import time:") and "imported package" not in ln
    ]
    top = {ln.rsplit("|", 1)[-1].strip().split(".")[0] for ln in lines}
    # Optional imports a package tries and the site's own hooks are logged even when absent: only
    # installed packages count.
    site_hooks = ("sitecustomize", "usercustomize", "org")
    installed = {t for t in top if t not in site_hooks and importlib.util.find_spec(t) is not None}
    third_party = {
        t for t in installed if t not in sys.stdlib_module_names and t != "codexbro" and t[0] != "_"
    }
    # h11 speaks HTTP (httpx, httpcore and anyio cost ~100 ms to import: api/transport.py); certifi only
    # for https; msgspec builds the records (and loads typing_extensions when it is installed)
    assert "codexbro" in top and third_party <= {"h11", "certifi", "msgspec", "typing_extensions"}, sorted(
        third_party
    )
    # … and of codexbro itself, none of what only a command, another subcommand or a sub-agent needs
    # (issue 19: those are loaded when first used); nor the log file's rotating handler (no record).
    modules = {ln.rsplit("|", 1)[-1].strip() for ln in lines}
    unneeded = {"codexbro.sandbox.linux", "codexbro.sandbox.layout", "codexbro.sandbox.container",
                "codexbro.sandbox.probes", "codexbro.core.subagents", "codexbro.tools.spawn",
                "codexbro.cli.commands.mcp", "codexbro.cli.commands.login", "logging.handlers"}  # fmt: skip
    assert not modules & unneeded, sorted(modules & unneeded)

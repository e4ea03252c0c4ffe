"""MCP in an interactive session (in process, scripted model, a real SDK server subprocess): the
approval modes ask the user, remembered approvals, elicitations answered through the Op protocol,
and ``ListMcpTools`` for ``/mcp``."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from codexbro import protocol as p
from codexbro.api.scripted import Reply, ScriptedModelClient, calls, says
from codexbro.config.loader import Overrides, load_config
from codexbro.core.history import History
from codexbro.core.rollout import RolloutRecorder, new_thread_id
from codexbro.core.session import Session
from codexbro.mcp.manager import McpManager
from codexbro.models.catalog import ModelCatalog
from codexbro.tools.resources import ToolResources

PROBE = Path(__file__).parent / "mcp_servers" / "probe_server.py"


def mcp_session(cwd: Path, replies: list[Reply], log: Path, *, approval: str = "on-request",
                server_extra: tuple[str, ...] = ()) -> tuple[Session, ScriptedModelClient]:  # fmt: skip
    config = load_config(Overrides(
        cwd=cwd, flags={"approval_policy": approval, "sandbox_mode": "read-only"},
        cli_overrides=[f'mcp_servers.probe.command="{sys.executable}"', f'mcp_servers.probe.args=["{PROBE}"]',
                       f'mcp_servers.probe.env={{PROBE_LOG="{log}"}}', *server_extra],
    ))  # fmt: skip
    model = ModelCatalog.bundled().resolve("gpt-5.1-codex").info
    client = ScriptedModelClient(replies)
    thread_id = new_thread_id()
    recorder = RolloutRecorder(config.codexbro_home, thread_id)
    recorder.write(
        "session_meta", {"id": thread_id, "cwd": str(cwd), "originator": "test", "cli_version": "0"}
    )
    manager = McpManager(config.mcp_servers, cwd=cwd, env=dict(os.environ), home=config.codexbro_home)
    session = Session(config=config, model=model, client=client, thread_id=thread_id, recorder=recorder,
                      history=History(), resumed=False, warnings=[], can_ask_user=True,
                      tool_resources=ToolResources(thread_id, manager))  # fmt: skip
    return session, client


def turn(text: str) -> p.UserTurn:
    return p.UserTurn((p.UserInput("text", text=text),))


async def run_turn(session: Session, answer: Any = None) -> list[p.EventMsg]:
    """One turn; ``answer(event)`` may return an Op for a request event."""
    seen: list[p.EventMsg] = []
    async with asyncio.timeout(60):
        while not isinstance(seen[-1:] and seen[-1], p.TaskComplete | p.TurnAborted):
            msg = (await session.next_event()).msg
            seen.append(msg)
            op = answer(msg) if answer else None
            if op is not None:
                session.submit(op)
    return seen


def outputs(client: ScriptedModelClient, index: int) -> dict[str, Any]:
    return {
        i["call_id"]: i["output"] for i in client.prompts[index].input if i["type"] == "function_call_output"
    }


def log_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


async def test_auto_mode_asks_for_a_tool_without_annotations(workspace: Path, tmp_path: Path) -> None:
    log = tmp_path / "probe.log"
    replies: list[Reply] = [
        [calls("mcp__probe__write_note", {"text": "one"}, "c1")],
        [calls("mcp__probe__write_note", {"text": "two"}, "c2")],
        [calls("mcp__probe__write_note", {"text": "three"}, "c3")],
        [calls("mcp__probe__echo", {"text": "read-only: never asked"}, "c4")],
        [says("done")],
    ]
    session, client = mcp_session(workspace, replies, log)
    asked: list[dict[str, Any]] = []
    choices = iter(["Decline", "Accept for session"])

    def answer(msg: p.EventMsg) -> p.Op | None:
        if isinstance(msg, p.RequestUserInput):
            question = msg.questions[0]
            asked.append(question)
            return p.UserInputAnswer(msg.call_id, {question["id"]: next(choices)})
        return None

    session.submit(turn("go"))
    seen = await run_turn(session, answer)
    await session.close()
    assert [q["id"] for q in asked] == ["mcp_tool_call_approval_c1", "mcp_tool_call_approval_c2"]
    assert "Allow the `probe` MCP server to run tool `write_note`?" in asked[0]["question"]
    assert [o["label"] for o in asked[0]["options"]] == ["Accept", "Accept for session", "Decline", "Cancel"]
    assert outputs(client, 1)["c1"] == "user rejected MCP tool call"
    # Accepted for the session: the third call is not asked again; the read-only tool never is.
    assert log_lines(log) == ["write_note two", "write_note three", "echo read-only: never asked"]
    ends = [e for e in seen if isinstance(e, p.McpToolCallEnd)]
    assert ends[0].result == {"Err": "user rejected MCP tool call"} and ends[1].ok


async def test_prompt_and_approve_modes(workspace: Path, tmp_path: Path) -> None:
    log = tmp_path / "probe.log"
    replies: list[Reply] = [
        [calls("mcp__probe__echo", {"text": "asked"}, "c1"), calls("mcp__probe__write_note", {"text": "free"}, "c2")],
        [says("done")],
    ]  # fmt: skip
    session, _client = mcp_session(workspace, replies, log, server_extra=(
        'mcp_servers.probe.tools.echo.approval_mode="prompt"',
        'mcp_servers.probe.default_tools_approval_mode="approve"',
    ))  # fmt: skip
    asked: list[str] = []

    def answer(msg: p.EventMsg) -> p.Op | None:
        if isinstance(msg, p.RequestUserInput):
            asked.append(msg.questions[0]["question"])
            return p.UserInputAnswer(msg.call_id, {msg.questions[0]["id"]: "Accept"})
        return None

    session.submit(turn("go"))
    await run_turn(session, answer)
    await session.close()
    assert len(asked) == 1 and "`echo`" in asked[0]  # prompt: even a read-only tool; approve: never
    assert sorted(log_lines(log)) == ["echo asked", "write_note free"]


async def test_elicitation_goes_to_the_front_end(workspace: Path, tmp_path: Path) -> None:
    replies: list[Reply] = [
        [calls("mcp__probe__ask", {"question": "proceed?"}, "c1")],
        [calls("mcp__probe__ask", {"question": "again?"}, "c2")],
        [says("done")],
    ]
    session, client = mcp_session(workspace, replies, tmp_path / "log", approval="never")
    requests: list[p.ElicitationRequest] = []
    decisions = iter([("accept", {"ok": True}), ("decline", None)])

    def answer(msg: p.EventMsg) -> p.Op | None:
        if isinstance(msg, p.ElicitationRequest):
            requests.append(msg)
            decision, content = next(decisions)
            return p.ResolveElicitation(msg.server_name, msg.id, decision, content)  # type: ignore[arg-type]
        return None

    session.submit(turn("go"))
    await run_turn(session, answer)
    await session.close()
    assert [r.message for r in requests] == ["proceed?", "again?"]
    assert requests[0].server_name == "probe"
    assert requests[0].requested_schema and "ok" in requests[0].requested_schema["properties"]
    assert "elicitation: accept" in str(outputs(client, 1)["c1"])
    assert "elicitation: decline" in str(outputs(client, 2)["c2"])


async def test_list_mcp_tools(workspace: Path, tmp_path: Path) -> None:
    session, _client = mcp_session(workspace, [[says("hi")]], tmp_path / "log")
    session.submit(turn("hello"))  # the turn waits for the servers
    seen = await run_turn(session)
    session.submit(p.ListMcpTools())
    response = (await asyncio.wait_for(session.next_event(), 10)).msg
    await session.close()
    assert isinstance(response, p.McpListToolsResponse)
    [server] = response.servers
    assert server["name"] == "probe" and server["state"] == "ready" and "echo" in server["tools"]
    updates = [e.status["state"] for e in seen if isinstance(e, p.McpStartupUpdate)]
    assert updates == ["starting", "ready"]
    complete = next(e for e in seen if isinstance(e, p.McpStartupComplete))
    assert complete.ready == ["probe"] and complete.failed == []


async def test_tui_shows_mcp_calls_elicitations_and_slash_mcp(home: Path, workspace: Path) -> None:
    """The TUI (Textual pilot, loopback fake): an MCP call as a cell, an elicitation as a dialog
    whose fields become the answer's content, and /mcp listing the servers."""
    from codexbro.composition import SessionOptions, start_session
    from codexbro.tui import cells
    from codexbro.tui.app import CodexbroApp
    from codexbro.tui.dialogs import ElicitationScreen
    from tests.conftest import write_config
    from tests.fakes.events import ev_completed, ev_created, ev_function_call, message_turn
    from tests.fakes.responses_server import FakeResponsesServer
    from tests.fakes.responses_server import Reply as FakeReply

    script = [
        FakeReply([ev_created(), ev_function_call("c1", "mcp__probe__add_numbers_v2", {"a": 1, "b": 2}),
                   ev_function_call("c2", "mcp__probe__ask", {"question": "sure?"}), ev_completed()]),
        FakeReply(message_turn("done")),
    ]  # fmt: skip
    with FakeResponsesServer(script) as fake:
        write_config(
            home,
            fake.base_url,
            extra=f'[mcp_servers.probe]\ncommand = "{sys.executable}"\nargs = ["{PROBE}"]\n',
        )
        config = load_config(Overrides(cwd=workspace, flags={"approval_policy": "never"}))
        app = CodexbroApp(start_session(config, SessionOptions(interactive=True)))
        async with app.run_test(size=(110, 40)) as pilot:
            await pilot.press(*"go", "enter")
            async with asyncio.timeout(30):
                while not isinstance(app.screen, ElicitationScreen):
                    await pilot.pause(0.05)
            await pilot.press(*"yes", "enter")
            async with asyncio.timeout(30):
                while app.running or not list(app.query(cells.AgentCell)):
                    await pilot.pause(0.05)
            mcp_cells = list(app.query(cells.McpCell))
            assert len(mcp_cells) == 2
            shown = [str(c.out.render()) for c in mcp_cells]
            assert any('"sum": 3' in s or "3" in s for s in shown)
            assert any("elicitation: accept" in s for s in shown)
            await pilot.press(*"/mcp", "enter")
            async with asyncio.timeout(10):
                while not any("probe  ready" in str(n.render()) for n in app.query(cells.NoteCell)):
                    await pilot.pause(0.05)
        await app.session.close()

"""Finding: an MCP elicitation whose requested schema has a property name that is not a Textual
identifier ("first name", "a.b", "é", "x/y" — all valid JSON-schema property names, accepted by the
SDK) crashes the whole TUI: `tui/dialogs.py::ElicitationScreen.compose` builds
`Input(id=f"field-{name}")`, Textual raises `BadIdentifier`, and the app exits (return code 1) in
the middle of the session. Any configured server can end the user's TUI session this way.

Expected: fields get generated ids (`field-0`, `field-1`, … kept in a list beside the names), and
`action_answer` maps them back to the property names; the dialog shows and its answer is sent."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from codexbro.composition import SessionOptions, start_session
from codexbro.config.loader import Overrides, load_config
from tests.conftest import write_config
from tests.fakes.events import ev_completed, ev_created, ev_function_call, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply
from tests.mcp_hostile.common import HOSTILE


async def test_elicitation_with_a_spaced_field_name_does_not_crash_the_tui(
    home: Path, workspace: Path
) -> None:
    from codexbro.tui.app import CodexbroApp
    from codexbro.tui.dialogs import ElicitationScreen

    script = [Reply([ev_created(), ev_function_call("c1", "mcp__h__echo", {}), ev_completed()]),
              Reply(message_turn("done"))]  # fmt: skip
    with FakeResponsesServer(script) as fake:
        extra = f'[mcp_servers.h]\ncommand = "{sys.executable}"\nargs = ["{HOSTILE}", "elicit_odd"]\n'
        write_config(home, fake.base_url, extra=extra)
        config = load_config(Overrides(cwd=workspace, flags={"approval_policy": "never"}))
        app = CodexbroApp(start_session(config, SessionOptions(interactive=True)))
        shown = False
        try:
            async with app.run_test(size=(110, 40)) as pilot:
                await pilot.press(*"go", "enter")
                async with asyncio.timeout(20):
                    while app.return_code is None and not isinstance(app.screen, ElicitationScreen):
                        await pilot.pause(0.05)
                shown = isinstance(app.screen, ElicitationScreen)
                if shown:
                    await pilot.press(*"Ada", "enter")
                    async with asyncio.timeout(20):
                        while app.return_code is None and (app.running or not fake.bodies()[1:]):
                            await pilot.pause(0.05)
        except Exception as exc:  # Textual re-raises the compose error out of run_test
            raise AssertionError(f"the TUI crashed on the elicitation: {type(exc).__name__}: {exc}") from None
        finally:
            await app.session.close()
        assert app.return_code in (None, 0), "the TUI exited"
        assert shown
        assert "first name" in str(fake.bodies()[1]["input"]) and "Ada" in str(fake.bodies()[1]["input"])


async def test_a_server_cannot_stack_hundreds_of_elicitation_dialogs(workspace: Path) -> None:
    """Finding (low): `McpConnection._on_elicit` → `Session.elicit` asks the front end for every
    `elicitation/create` at once, without any limit: a server that sends 300 of them (without
    waiting for answers) gets 300 `ElicitationRequest`s outstanding — 300 stacked modal dialogs in
    the TUI, still there after its tool call has ended. Expected: one elicitation per server at a
    time (an asyncio.Semaphore(1) per server in `McpManager._elicit`), and the rest declined when a
    small queue is full (or when the call that caused them has finished)."""
    import os

    from codexbro import protocol as p
    from codexbro.api.scripted import ScriptedModelClient, calls, says
    from codexbro.core.history import History
    from codexbro.core.rollout import RolloutRecorder, new_thread_id
    from codexbro.core.session import Session
    from codexbro.mcp.manager import McpManager
    from codexbro.models.catalog import ModelCatalog
    from codexbro.tools.resources import ToolResources

    config = load_config(Overrides(cwd=workspace, flags={"approval_policy": "never", "sandbox_mode": "read-only"},
                                   cli_overrides=[f'mcp_servers.h.command="{sys.executable}"',
                                                  f'mcp_servers.h.args=["{HOSTILE}", "elicit_loop", "300"]']))  # fmt: skip
    model = ModelCatalog.bundled().resolve("gpt-5.1-codex").info
    client = ScriptedModelClient([[calls("mcp__h__echo", {}, "c1")], [says("done")]])
    thread_id = new_thread_id()
    recorder = RolloutRecorder(config.codexbro_home, thread_id)
    recorder.write(
        "session_meta", {"id": thread_id, "cwd": str(workspace), "originator": "t", "cli_version": "0"}
    )
    manager = McpManager(config.mcp_servers, cwd=workspace, env=dict(os.environ), home=config.codexbro_home)
    session = Session(config=config, model=model, client=client, thread_id=thread_id, recorder=recorder,
                      history=History(), resumed=False, warnings=[], can_ask_user=True,
                      tool_resources=ToolResources(thread_id, manager))  # fmt: skip
    session.submit(p.UserTurn((p.UserInput("text", text="go"),)))
    asked = 0
    try:
        async with asyncio.timeout(30):
            while True:
                msg = (await session.next_event()).msg
                asked += isinstance(msg, p.ElicitationRequest)
                if isinstance(msg, p.TaskComplete | p.TurnAborted):
                    break
    finally:
        await session.close()
    assert asked <= 3, f"{asked} elicitation dialogs outstanding at once from one server"

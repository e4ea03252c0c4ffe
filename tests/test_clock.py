"""0.169's ``clock.sleep`` (gpt-6-sol's direct tool): on the menu where the catalog asks for it,
answers as the real 0.169 gave them (``fixtures/codex-0.169/clock-sleep.json``), and a sleep that
ends early when input for the turn arrives."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from codexbro.api.scripted import calls, says
from codexbro.models.catalog import ModelCatalog
from tests.conftest import run_cli, write_config
from tests.fakes.events import ev_completed, ev_created, ev_function_call, ev_message
from tests.fakes.responses_server import FakeResponsesServer, Reply
from tests.test_ops import events_until, scripted_session, turn, user_texts

CAPTURE = json.loads((Path(__file__).parent / "fixtures" / "codex-0.169" / "clock-sleep.json").read_text())


def test_sleep_as_0_169(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    pytest.importorskip("py_mini_racer", reason="code mode needs mini-racer (a dependency of codexbro)")
    calls = [i for i in CAPTURE["items"] if i["type"] == "function_call"]
    for n, call in enumerate(calls):
        event = ev_function_call(call["call_id"], "sleep", json.loads(call["arguments"]))
        event["item"]["namespace"] = "clock"
        fake.add(Reply([ev_created(f"r{n}"), event, ev_completed(f"r{n}")]))
    fake.add(Reply([ev_created("end"), ev_message("done"), ev_completed("end")]))
    write_config(home, fake.base_url, model="gpt-6-sol")
    res = run_cli(
        "exec", "--skip-git-repo-check", "-s", "danger-full-access", "hi", cwd=workspace, timeout=120
    )
    assert res.code == 0, res.stderr[-2000:]
    bodies = fake.bodies()
    menu = bodies[0]["input"][0]["tools"]
    assert [ns["name"] for ns in menu] == CAPTURE["namespaces"]
    assert next(ns for ns in menu if ns["name"] == "clock") == CAPTURE["clock"]
    mine = {i["call_id"]: i["output"] for i in bodies[-1]["input"] if i["type"] == "function_call_output"}
    theirs = {i["call_id"]: i["output"] for i in CAPTURE["items"] if i["type"] == "function_call_output"}
    wall = re.compile(r"Wall time: (\d+\.\d{4}) seconds\nSleep completed\.")
    assert (m := wall.fullmatch(mine["call0"])) and wall.fullmatch(theirs["call0"])
    assert 1.2 <= float(m.group(1)) < 2.0
    assert (
        mine["call1"] == theirs["call1"] and mine["call2"] == theirs["call2"]
    )  # the range, in 0.169's words
    for key in ("call3", "call4", "call5"):  # refused (codexbro's words where 0.169 passes serde's on)
        assert mine[key].startswith("failed to parse function arguments:") and "duration_ms" in mine[key]


def test_no_clock_for_models_that_do_not_list_it(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(Reply([ev_created("r"), ev_message("hi"), ev_completed("r")]))
    write_config(home, fake.base_url, model="gpt-5.5")
    assert run_cli("exec", "--skip-git-repo-check", "hi", cwd=workspace).code == 0
    assert "clock" not in json.dumps([t.get("name") for t in fake.bodies()[0].get("tools", [])])


async def test_sleep_ends_as_soon_as_input_is_steered_into_the_turn(workspace: Path) -> None:
    """A real session (scripted model gpt-6-sol): the model sleeps for a minute; the user's input,
    steered into the turn, wakes the sleep at once (no poll) and goes with the next request."""
    sleep = calls("sleep", {"duration_ms": 60_000})
    sleep["namespace"] = "clock"
    session, client = scripted_session(workspace, [[sleep], [says("awake")]])
    session.model = ModelCatalog.bundled().resolve("gpt-6-sol").info
    session.submit(turn("sleep a minute"))
    while not client.prompts:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # the call is sleeping
    steered_at = time.monotonic()
    session.submit(turn("wake up"))
    await events_until(session)
    woke_after = time.monotonic() - steered_at
    output = next(i for i in client.prompts[1].input if i.get("type") == "function_call_output")
    assert str(output["output"]).endswith("Sleep ended early: new input arrived.")
    assert user_texts(client.prompts[1].input)[-1] == "wake up"
    assert woke_after < 1  # the minute was not slept

"""The agent tree under pressure (from a hostile review): work sent to an agent while it is being
closed for a slot, the same name spawned twice at once, reopened agents keeping what they were
spawned with, a child turning on its own ancestor, and interrupts and shutdown across three levels.
Each ran against a real root session and the loopback fake (``tests/fakes/agent_tree.py``), and each
failed before its fix."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from codexbro import protocol as p
from tests.fakes.agent_tree import Fake, Run, outputs_of

pytest.importorskip("py_mini_racer", reason="code mode needs mini-racer (a dependency of codexbro)")
SPEC = json.loads((Path(__file__).parents[1] / "src/codexbro/tools/specs/multi_agent_v2.json").read_text())
Calls = list[tuple[str, dict[str, Any]]] | None


def spawn(*names: str, **extra: Any) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("spawn_agent", {"task_name": n, "message": f"task {n}", "fork_turns": "none", **extra})
        for n in names
    ]


def three_finished(name: str, k: int, body: dict[str, Any]) -> Calls:
    """The root spawns a, b and c (they answer at once), then waits until all three finished."""
    if name == "/root" and k == 0:
        return spawn("a", "b", "c")
    if name == "/root" and k == 3:
        time.sleep(1.5)
        return [("list_agents", {})]
    return None


async def test_a_task_sent_while_its_agent_is_closed_reaches_it(home: Path, workspace: Path) -> None:
    fake = Fake(three_finished)
    async with Run(home, workspace, fake) as run:
        await run.turn("go")
        team = run.tree.teams["/root"]
        spawned, followed = await asyncio.gather(  # as two calls of one response run
            team.spawn_task("d", "task d", fork_turns="none", model=None), team.followup("a", "SECOND")
        )
        await asyncio.sleep(3)
        assert spawned == {"task_name": "/root/d"} and followed == ""
        assert any("SECOND" in json.dumps(b) for b in fake.of("/root/a")), "the task never reached /root/a"


def message_during_eviction(name: str, k: int, body: dict[str, Any]) -> Calls:
    if name == "/root" and k == 4:
        return [*spawn("d"), ("send_message", {"target": "a", "message": "NOTE SENT DURING EVICTION"})]
    if name == "/root" and k == 6:
        time.sleep(1.5)
        return [("followup_task", {"target": "a", "message": "THIRD"})]
    return three_finished(name, k, body)


async def test_a_message_sent_while_its_agent_is_closed_is_kept(home: Path, workspace: Path) -> None:
    fake = Fake(message_during_eviction)
    async with Run(home, workspace, fake) as run:
        await run.turn("go")
    last = json.dumps(fake.of("/root/a")[-1])
    assert "THIRD" in last and "NOTE SENT DURING EVICTION" in last


def same_name_twice(name: str, k: int, body: dict[str, Any]) -> Calls:
    if name == "/root" and k == 3:
        time.sleep(1.5)
        return [("spawn_agent", {"task_name": "dup", "message": "first", "fork_turns": "none"}),
                ("spawn_agent", {"task_name": "dup", "message": "second", "fork_turns": "none"})]  # fmt: skip
    if name == "/root" and k == 5:
        time.sleep(1.5)
        return [("list_agents", {})]
    if name == "/root/dup":
        time.sleep(2)
    return three_finished(name, k, body) if k == 0 else None


async def test_one_name_spawned_twice_at_once_makes_one_agent(home: Path, workspace: Path) -> None:
    from codexbro.core.session import Session

    fake = Fake(same_name_twice)
    run = Run(home, workspace, fake)
    await run.__aenter__()
    await run.turn("go")
    out = outputs_of(fake.of("/root")[-1])
    await run.__aexit__(None, None, None)
    await asyncio.sleep(0.5)
    gc.collect()
    assert list(out.values()).count('{"task_name":"/root/dup"}') == 1
    assert any("already exists" in v for v in out.values())
    assert all(s._released for s in gc.get_objects() if isinstance(s, Session)), "a child session left open"


def reopened(first: list[tuple[str, dict[str, Any]]]) -> Any:
    """a is spawned with ``first``, closed for d's slot, then given a second task."""

    def script(name: str, k: int, body: dict[str, Any]) -> Calls:
        if name != "/root":
            return None
        steps = {0: first, 1: spawn("b", "c"), 3: spawn("d"), 4: [("followup_task", {"target": "a", "message": "SECOND"})],
                 5: [("list_agents", {})]}  # fmt: skip
        if k in (1, 3, 4, 5):
            time.sleep(1.0)
        return steps.get(k)

    return script


async def test_a_reopened_agent_keeps_its_model_and_effort(home: Path, workspace: Path) -> None:
    fake = Fake(reopened(spawn("a", model="gpt-6-luna", reasoning_effort="high")))
    async with Run(home, workspace, fake) as run:
        await run.turn("go")
    first, last = fake.of("/root/a")[0], fake.of("/root/a")[-1]
    assert "SECOND" in json.dumps(last) and first["model"] == "gpt-6-luna"
    assert (last["model"], last["reasoning"]) == (first["model"], first["reasoning"])


async def test_a_reopened_fork_keeps_what_it_inherited(home: Path, workspace: Path) -> None:
    fake = Fake(reopened([("spawn_agent", {"task_name": "a", "message": "task a"})]))  # fork_turns: all
    async with Run(home, workspace, fake) as run:
        await run.turn("THE USER'S ORIGINAL REQUEST")
    last = json.dumps(fake.of("/root/a")[-1])
    assert "SECOND" in last and "THE USER'S ORIGINAL REQUEST" in last and "newly spawned" in last


async def test_a_fork_gets_the_child_role_after_the_note(home: Path, workspace: Path) -> None:
    """As 0.169's fork (multi-agent-v2.json): the fork note, the child's role, the mode, the task."""

    def script(name: str, k: int, body: dict[str, Any]) -> Calls:
        if name == "/root":
            return {0: [("spawn_agent", {"task_name": "forked", "message": "Continue."})],
                    1: [("wait_agent", {"timeout_ms": 10000})]}.get(k)  # fmt: skip
        return None

    fake = Fake(script)
    async with Run(home, workspace, fake) as run:
        await run.turn("hi")
    items = fake.of("/root/forked")[0]["input"]
    texts = [i["content"][0]["text"] for i in items[-4:-1]]
    assert texts[0].startswith("You are now a newly spawned child agent")
    assert texts[1:] == [SPEC["role_child"], SPEC["mode"]]
    assert items[-1]["type"] == "agent_message"


def turns_on_parent(name: str, k: int, body: dict[str, Any]) -> Calls:
    if name in ("/root", "/root/worker"):
        child = "worker" if name == "/root" else "sub"
        return spawn(child) if k == 0 else ([("wait_agent", {"timeout_ms": 10000})] if k < 3 else None)
    if name == "/root/worker/sub" and k == 0:
        time.sleep(0.5)
        return [
            ("interrupt_agent", {"target": "/root/worker"}),
            ("followup_task", {"target": "..", "message": "x"}),
        ]
    return None


async def test_a_child_cannot_interrupt_its_own_ancestor(home: Path, workspace: Path) -> None:
    fake = Fake(turns_on_parent)
    async with Run(home, workspace, fake) as run:
        await run.turn("go")
        await asyncio.sleep(1)
        assert run.tree.agents["/root/worker/sub"].status != "interrupted"
    out = outputs_of(fake.of("/root/worker/sub")[-1])
    assert "is an agent above you" in out["_root_worker_sub_c0_0"]


release, started = threading.Event(), threading.Event()


def three_levels(name: str, k: int, body: dict[str, Any]) -> Calls:
    child = {"/root": "worker", "/root/worker": "sub", "/root/worker/sub": "deeper"}.get(name)
    if child:
        return spawn(child) if k == 0 else [("wait_agent", {"timeout_ms": 60000})]
    started.set()
    release.wait(20)  # the deepest agent's request hangs
    return None


def tree_rows(tree: Any) -> list[tuple[str, Any, bool, bool]]:
    return [
        (path, c.status, c.session.active is not None, c.session._released)
        for path, c in sorted(tree.agents.items())
    ]


async def _until_started() -> None:
    for _ in range(200):
        if started.is_set():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)


async def test_an_interrupt_stops_every_level(home: Path, workspace: Path) -> None:
    release.clear()
    started.clear()
    async with Run(home, workspace, Fake(three_levels)) as run:
        run.session.submit(p.UserTurn((p.UserInput("text", "go"),)))
        await _until_started()
        run.session.submit(p.Interrupt())
        await asyncio.sleep(2.0)
        rows = tree_rows(run.tree)
        release.set()
    assert len(rows) == 3 and not any(active for _, _, active, _ in rows)


async def test_closing_the_root_closes_every_level(home: Path, workspace: Path) -> None:
    release.clear()
    started.clear()
    run = Run(home, workspace, Fake(three_levels))
    await run.__aenter__()
    run.session.submit(p.UserTurn((p.UserInput("text", "go"),)))
    await _until_started()
    tree = run.tree
    await run.__aexit__(None, None, None)
    release.set()
    rows = tree_rows(tree)
    assert len(rows) == 3 and all(released for *_, released in rows)

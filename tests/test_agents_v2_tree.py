"""0.169's multi_agent_v2 as a tree: children that spawn their own agents, one set of four slots for
the whole tree, finished agents closed when a spawn needs their slot, paths relative to the caller.
``codexbro exec`` runs the scripts the real 0.169 ran (``fixtures/codex-0.169/multi-agent-v2-nested.json``)
against a loopback fake answering each agent by its path, and every answer is compared with 0.169's."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, write_config
from tests.fakes.agent_tree import agent_of
from tests.fakes.events import ev_completed, ev_created, ev_function_call, ev_message, sse_frame
from tests.fakes.responses_server import FakeResponsesServer, Recorded

pytest.importorskip("py_mini_racer", reason="code mode needs mini-racer (a dependency of codexbro)")

CAPTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "codex-0.169" / "multi-agent-v2-nested.json").read_text()
)


def outputs(requests: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, str], str]:
    """(agent, call id) → the output the agent's model read."""
    found: dict[tuple[str, str], str] = {}
    for name, body in requests:
        for item in body["input"]:
            if item.get("type") == "function_call_output":
                found[(name, item["call_id"])] = item["output"]
    return found


def upstream(scenario: str) -> dict[tuple[str, str], str]:
    reqs = [(r["name"], {"input": r["input_tail"]}) for r in CAPTURE[scenario]["requests"]]
    return outputs(reqs)


class Agents:
    """The fake's answers: each agent's next step by how many outputs its request carries."""

    def __init__(self, steps: dict[str, list[list[Any]]], hold: dict[str, threading.Event]) -> None:
        self.steps, self.hold = steps, hold
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def __call__(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        headers = {k.lower(): v for k, v in rec.headers.items()}
        name = agent_of(rec.body, headers.get("x-openai-subagent"))
        with self.lock:
            self.requests.append((name, rec.body))
        k = sum(1 for i in rec.body["input"] if i.get("type") == "function_call_output")
        self.on_request(name, k)
        if name in self.hold:
            self.hold[name].wait(60)
        steps = self.steps.get(name, [])
        if k < len(steps):
            fname, args = steps[k]
            call = ev_function_call(f"call{k}", fname, args)
            call["item"]["namespace"] = "collaboration"
            events = [ev_created(f"r{k}"), call, ev_completed(f"r{k}")]
        else:
            events = [ev_created("rend"), ev_message(f"{name} done"), ev_completed("rend")]
        time.sleep(0.3)  # as the capture's fake did
        return 200, {"content-type": "text/event-stream"}, b"".join(sse_frame(e) for e in events)

    def on_request(self, name: str, k: int) -> None:
        pass


def run(home: Path, workspace: Path, agents: Agents) -> list[dict[str, Any]]:
    with FakeResponsesServer() as fake:
        fake.route("POST", "/" + fake.base_url.split("/", 3)[3] + "/responses", agents)
        write_config(home, fake.base_url, model="gpt-6-sol")
        res = run_cli("exec", "--json", "--skip-git-repo-check", "-s", "danger-full-access", "hi", cwd=workspace,
                      timeout=180)  # fmt: skip
    assert res.code == 0, res.stderr[-3000:]
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


class Nested(Agents):
    """deeper answers once sub has listed the tree (as in the capture, where it was still running)."""

    def on_request(self, name: str, k: int) -> None:
        if name == "/root/worker/sub" and k >= 3:
            self.hold["/root/worker/sub/deeper"].set()


def test_children_spawn_their_own_agents_as_0_169(home: Path, workspace: Path) -> None:
    hold = {"/root/worker/sub/deeper": threading.Event()}
    agents = Nested(CAPTURE["steps"]["nested"], hold)
    try:
        run(home, workspace, agents)
    finally:
        hold["/root/worker/sub/deeper"].set()
    mine = outputs(agents.requests)
    theirs = upstream("nested")
    assert mine == theirs
    # A grandchild's task comes from its parent, by the path its parent gave it.
    first = {name: body for name, body in reversed(agents.requests)}
    task = first["/root/worker/sub"]["input"][-1]
    assert task["author"] == "/root/worker" and task["recipient"] == "/root/worker/sub"
    # Every agent has the collaboration tools and a child's role message; the root its own.
    spec = json.loads(
        (Path(__file__).parents[1] / "src/codexbro/tools/specs/multi_agent_v2.json").read_text()
    )
    for name, body in first.items():
        assert [ns["name"] for ns in body["input"][0]["tools"]] == ["functions", "clock", "collaboration"], (
            name
        )
        texts = [i["content"][0]["text"] for i in body["input"]
                 if i.get("type") == "message" and i["role"] == "developer"]  # fmt: skip
        assert (spec["role_root"] if name == "/root" else spec["role_child"]) in texts, name

    # The grandchild's answer went to its parent, not to the root.
    def finals(name: str) -> list[str]:
        last = [body for n, body in agents.requests if n == name][-1]
        return [i["author"] for i in last["input"] if i.get("type") == "agent_message"
                and "FINAL_ANSWER" in i["content"][0]["text"]]  # fmt: skip

    assert finals("/root/worker") == ["/root/worker/sub"]
    assert "/root/worker/sub" not in finals("/root")


class Slots(Agents):
    """b runs until the root's last wait; c, d, e until the root's end (they hold their slots)."""

    def on_request(self, name: str, k: int) -> None:
        if name == "/root" and k >= 12:
            self.hold["/root/b"].set()
        if name == "/root" and k >= 14:
            for key in ("/root/c", "/root/d", "/root/e"):
                self.hold[key].set()


def test_four_slots_for_the_tree_as_0_169(home: Path, workspace: Path) -> None:
    hold = {key: threading.Event() for key in ("/root/b", "/root/c", "/root/d", "/root/e")}
    agents = Slots(CAPTURE["steps"]["slots"], hold)
    try:
        run(home, workspace, agents)
    finally:
        for event in hold.values():
            event.set()
    mine = outputs(agents.requests)
    theirs = upstream("slots")
    assert mine == theirs
    assert mine[("/root", "call8")] == "collab spawn failed: agent thread limit reached"
    assert not any(name == "/root/e" for name, _ in agents.requests)  # refused: never started


def test_a_closed_agent_is_reopened_with_its_history_and_the_messages_it_missed(
    home: Path, workspace: Path
) -> None:
    steps = {"/root": [
        ["spawn_agent", {"task_name": "a", "message": "first task", "fork_turns": "none"}],
        ["wait_agent", {"timeout_ms": 10000}],
        *[["spawn_agent", {"task_name": n, "message": "x", "fork_turns": "none"}] for n in ("b", "c", "d")],
        ["list_agents", {}],
        ["send_message", {"target": "a", "message": "while you were away"}],
        ["followup_task", {"target": "/root/a", "message": "second task"}],
        ["wait_agent", {"timeout_ms": 10000}],
        ["list_agents", {}],
    ]}  # fmt: skip
    agents = Agents(steps, {})
    run(home, workspace, agents)
    out = outputs(agents.requests)
    listed = [a["agent_name"] for a in json.loads(out[("/root", "call5")])["agents"]]
    assert listed == ["/root", "/root/b", "/root/c", "/root/d"]  # a closed for d's slot
    assert out[("/root", "call6")] == "" and out[("/root", "call7")] == ""
    reopened = [body for name, body in agents.requests if name == "/root/a"][-1]["input"]
    texts = [json.dumps(i) for i in reopened]
    order = [next(n for n, t in enumerate(texts) if key in t)
             for key in ("first task", "/root/a done", "while you were away", "second task")]  # fmt: skip
    assert order == sorted(order), "its history, then the message it missed, then the new task"
    final = [body for name, body in agents.requests if name == "/root"][-1]["input"]
    answers = [i for i in final if i.get("type") == "agent_message" and i["author"] == "/root/a"]
    assert len(answers) == 2  # one per task
    listed = [a["agent_name"] for a in json.loads(out[("/root", "call9")])["agents"]]
    assert "/root/a" in listed and len(listed) == 4  # it took a slot back (another finished agent left)


def test_the_tree_s_traffic_is_shown_to_the_user_not_in_json(home: Path, workspace: Path) -> None:
    """exec --json stays as 0.169's (waits only); the human output, like the TUI, says who spawned,
    tasked, messaged and answered whom — a grandchild's too; the trace records it."""
    agents = Nested(CAPTURE["steps"]["nested"], {"/root/worker/sub/deeper": threading.Event()})
    agents.hold["/root/worker/sub/deeper"].set()
    with FakeResponsesServer() as fake:
        fake.route("POST", "/" + fake.base_url.split("/", 3)[3] + "/responses", agents)
        write_config(home, fake.base_url, model="gpt-6-sol")
        trace = workspace.parent / "trace.jsonl"
        res = run_cli("exec", "--skip-git-repo-check", "-s", "danger-full-access", "--trace", str(trace), "hi",
                      cwd=workspace, timeout=180)  # fmt: skip
    assert res.code == 0, res.stderr[-3000:]
    for line in ("agents: /root spawned /root/worker: Spawn a helper.",
                 "agents: /root/worker spawned /root/worker/sub: Go deeper.",
                 "agents: /root/worker/sub answered /root/worker: /root/worker/sub done",
                 "agents: /root/worker sent a message to /root: to root",
                 "agents: /root/worker answered /root: /root/worker done"):  # fmt: skip
        assert line in res.stderr, line
    records = [json.loads(x) for x in trace.read_text().splitlines()]
    team = [(r["action"], r["author"], r["recipient"]) for r in records if r.get("kind") == "agent_team"]
    assert ("spawn", "/root/worker/sub", "/root/worker/sub/deeper") in team
    assert ("answer", "/root/worker/sub/deeper", "/root/worker/sub") in team


async def test_the_tui_shows_the_tree_s_traffic(home: Path, workspace: Path) -> None:
    pytest.importorskip("textual", reason="textual (a base dependency) is not installed")
    import asyncio

    from codexbro.composition import SessionOptions, start_session
    from codexbro.config.loader import Overrides, load_config
    from codexbro.tui import cells
    from codexbro.tui.app import CodexbroApp

    steps = {"/root": [["spawn_agent", {"task_name": "worker", "message": "Count the files.", "fork_turns": "none"}],
                       ["wait_agent", {"timeout_ms": 10000}]]}  # fmt: skip
    agents = Agents(steps, {})
    with FakeResponsesServer() as fake:
        fake.route("POST", "/" + fake.base_url.split("/", 3)[3] + "/responses", agents)
        write_config(home, fake.base_url, model="gpt-6-sol")
        config = load_config(Overrides(cwd=workspace, flags={"sandbox_mode": "danger-full-access"}))
        app = CodexbroApp(start_session(config, SessionOptions(interactive=True)))
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press(*"go", "enter")
            async with asyncio.timeout(60):
                while not (list(app.query(cells.AgentCell)) and not app.running):
                    await pilot.pause(0.05)
            notes = [str(n.render()) for n in app.query(cells.NoteCell)]
        await app.session.close()
    assert any("agents: /root spawned /root/worker: Count the files." in n for n in notes), notes
    assert any("agents: /root/worker answered /root: /root/worker done" in n for n in notes), notes


def test_a_reasoning_effort_override_reaches_the_child(home: Path, workspace: Path) -> None:
    steps = {"/root": [
        ["spawn_agent", {"task_name": "low", "message": "x", "fork_turns": "none", "reasoning_effort": "low"}],
        ["spawn_agent", {"task_name": "odd", "message": "x", "fork_turns": "none", "reasoning_effort": "banana"}],
        ["spawn_agent", {"task_name": "forked", "message": "x", "reasoning_effort": "low"}],
        ["wait_agent", {"timeout_ms": 10000}],
    ]}  # fmt: skip
    agents = Agents(steps, {})
    run(home, workspace, agents)
    child = next(body for name, body in agents.requests if name == "/root/low")
    root = next(body for name, body in agents.requests if name == "/root")
    assert child["reasoning"]["effort"] == "low" and root["reasoning"]["effort"] != "low"
    out = outputs(agents.requests)
    assert out[("/root", "call1")].startswith(
        "could not start the agent: reasoning_effort `banana` is not one"
    )
    assert out[("/root", "call2")].startswith(
        "full-history forks inherit the parent model and reasoning effort"
    )
    assert {name for name, _ in agents.requests} == {"/root", "/root/low"}

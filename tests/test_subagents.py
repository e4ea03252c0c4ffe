"""Sub-agents (``multi_agent_v1``) end to end against the loopback fake, compared with what the real
Codex CLI 0.169 sent and printed for the same script (``fixtures/codex-0.169/multi-agent-*.json``):
the namespace on the menu, a child session whose requests carry the subagent headers, the tools'
JSON outputs, the ``<subagent_notification>``, the ``collab_tool_call`` items of ``exec --json``;
limits, and children stopping when the parent's turn is interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import run_cli, write_config
from tests.fakes.events import ev_completed, ev_created, ev_function_call, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply

FIXTURES = Path(__file__).parent / "fixtures" / "codex-0.169"
MODEL = "gpt-5.6-luna"  # multi_agent_version v1 in the catalog
# 0.169 runs this model in code mode, where it offers no v1 tools; the captures these tests compare
# with were made outside it (upstream's fallback model), so code mode is off here.
NO_CODE_MODE = "[features]\ncode_mode = false"


def agent_call(call_id: str, name: str, args: dict[str, Any]) -> Reply:
    event = ev_function_call(call_id, name, args)
    event["item"]["namespace"] = "multi_agent_v1"
    return Reply([ev_created(), event, ev_completed()])


def from_child(rec: Any) -> bool:
    return bool({k.lower(): v for k, v in rec.headers.items()}.get("x-openai-subagent"))


def run_agents(
    server: FakeResponsesServer, home: Path, workspace: Path, *, extra: str = ""
) -> tuple[Any, list[Any]]:
    """``codexbro exec --json hi`` against ``server``'s script: the result and every request."""
    with server as fake:
        write_config(home, fake.base_url, model=MODEL, extra=f"{extra}\n{NO_CODE_MODE}")
        res = run_cli("exec", "--json", "hi", cwd=workspace, timeout=120)
        assert res.code == 0, res.stderr
        return res, fake.responses_requests()


class ScriptedAgents(FakeResponsesServer):
    """Answers by what each request holds (a parent and its child run at once): the child says
    hello; the parent spawns, waits, closes, then answers — the capture's script."""

    child_reply = "hi from the child"
    child_delay = 0.0

    def _next(self) -> Reply | None:
        rec = self.requests[-1]
        if from_child(rec):
            time.sleep(self.child_delay)
            return Reply(message_turn(self.child_reply))
        outputs = [i for i in rec.body.get("input", []) if i.get("type") == "function_call_output"]
        if not outputs:
            return agent_call("c1", "spawn_agent", {"message": "child task: say hi"})
        agent = json.loads(outputs[0]["output"])["agent_id"]
        if len(outputs) == 1:
            return agent_call("c2", "wait_agent", {"targets": [agent], "timeout_ms": 10000})
        if len(outputs) == 2:
            return agent_call("c3", "close_agent", {"target": agent})
        return Reply(message_turn("parent done"))


def _shape(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with thread ids and item ids replaced by stable names (compare shapes, not ids)."""
    if isinstance(value, dict):
        return {ids.get(k, k): _shape(v, ids) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        return [_shape(v, ids) for v in value]
    if isinstance(value, str):
        return ids.get(value, value)
    return value


def test_spawn_wait_close_as_upstream(home: Path, workspace: Path) -> None:
    res, requests = run_agents(ScriptedAgents(), home, workspace)
    captured = json.loads((FIXTURES / "multi-agent-exec.json").read_text())
    tools = json.loads((FIXTURES / "multi-agent-tools.json").read_text())
    parent, child = requests[0], next(r for r in requests if r.headers.get("x-openai-subagent"))
    # The menu: the namespace, with upstream's five functions and schemas.
    names = [t.get("name") or t.get("type") for t in parent.body["tools"]]
    assert "multi_agent_v1" in names
    ours = next(t for t in parent.body["tools"] if t.get("name") == "multi_agent_v1")
    assert [t["name"] for t in ours["tools"]] == [t["name"] for t in tools["multi_agent_v1"]["tools"]]
    assert [t["parameters"] for t in ours["tools"]] == [
        t["parameters"] for t in tools["multi_agent_v1"]["tools"]
    ]
    # The child: its own thread, the parent's session, the subagent headers, no collaboration tools.
    parent_id = parent.headers["session-id"]
    assert child.headers["x-openai-subagent"] == "collab_spawn"
    assert child.headers["x-codex-parent-thread-id"] == parent_id == child.headers["session-id"]
    assert child.headers["x-client-request-id"] != parent_id
    assert "multi_agent_v1" not in [t.get("name") for t in child.body["tools"]]
    assert child.body["input"][-1]["content"][0]["text"] == "child task: say hi"
    # The outputs and the notification, as 0.169's (ids aside).
    last = requests[-1].body["input"]
    agent_id = json.loads(next(i for i in last if i.get("call_id") == "c1" and "output" in i)["output"])[
        "agent_id"
    ]
    want_last = captured["requests"][-1]["input_tail"]
    upstream_id = json.loads(
        next(i for i in want_last if i.get("call_id") == "c1" and "output" in i)["output"]
    )["agent_id"]
    ids = {agent_id: "AGENT", upstream_id: "AGENT"}
    outputs = {i["call_id"]: json.loads(i["output"]) for i in last if i.get("type") == "function_call_output"}
    want = {
        i["call_id"]: json.loads(i["output"]) for i in want_last if i.get("type") == "function_call_output"
    }
    for call_id in ("c2", "c3"):
        assert _shape(outputs[call_id], ids) == _shape(want[call_id], ids), call_id
    assert set(outputs["c1"]) == set(want["c1"]) == {"agent_id", "nickname"}
    note = next(i for i in last if i.get("role") == "user" and "subagent_notification" in json.dumps(i))
    upstream_note = next(
        i for i in want_last if i.get("role") == "user" and "subagent_notification" in json.dumps(i)
    )
    assert _shape(note["content"][0]["text"].replace(agent_id, "AGENT"), {}) == upstream_note["content"][0][
        "text"
    ].replace(upstream_id, "AGENT")
    # exec --json: the same collab_tool_call items as 0.169's.
    events = [json.loads(line) for line in res.stdout.splitlines()]
    items = [e for e in events if e.get("item", {}).get("type") == "collab_tool_call"]
    upstream = [e for e in captured["exec_json"] if e.get("item", {}).get("type") == "collab_tool_call"]
    threads = {parent_id: "PARENT", agent_id: "AGENT"}
    up_parent = upstream[0]["item"]["sender_thread_id"]
    assert [_shape(e, threads) for e in items] == [
        _shape(e, {up_parent: "PARENT", upstream_id: "AGENT"}) for e in upstream
    ]


class LimitScript(FakeResponsesServer):
    def _next(self) -> Reply | None:
        rec = self.requests[-1]
        if from_child(rec):
            return Reply(message_turn("child"))
        outputs = [i for i in rec.body.get("input", []) if i.get("type") == "function_call_output"]
        if not outputs:
            calls = [agent_call(f"s{n}", "spawn_agent", {"message": "wait"}).events[1] for n in (1, 2)]
            return Reply([ev_created(), *calls, ev_completed()])
        if len(outputs) == 2:
            return agent_call("w", "wait_agent", {"targets": ["nope"]})
        return Reply(message_turn("done"))


def test_agent_limit_and_unknown_ids_are_told_to_the_model(home: Path, workspace: Path) -> None:
    _res, requests = run_agents(LimitScript(), home, workspace, extra="[agents]\nmax_threads = 1\n")
    bodies = [r.body for r in requests if not from_child(r)]
    outputs = {
        i["call_id"]: i["output"]
        for b in bodies
        for i in b["input"]
        if i.get("type") == "function_call_output"
    }
    spawned = sorted(outputs[k] for k in ("s1", "s2"))
    assert "agent limit reached (1 open)" in spawned[0] and "agent_id" in spawned[1], spawned
    assert json.loads(outputs["w"]) == {"status": {"nope": "not_found"}, "timed_out": False}


def test_interrupting_the_parent_interrupts_its_agents(home: Path, workspace: Path) -> None:
    """Ctrl-C while a child works: the parent's turn ends, and so does the child's (its request
    was still streaming); the process exits promptly."""
    with ScriptedAgents() as fake:
        fake.child_delay = 30.0  # the child's request hangs
        write_config(home, fake.base_url, model=MODEL, extra=NO_CODE_MODE)
        env = {**os.environ}
        proc = subprocess.Popen([sys.executable, "-m", "codexbro", "exec", "--json", "hi"], cwd=workspace, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            r.headers.get("x-openai-subagent") for r in fake.requests
        ):
            time.sleep(0.05)
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        assert time.monotonic() - started < 10, stderr
    assert proc.returncode == 130, stderr
    assert json.loads(stdout.splitlines()[-1])["type"] == "turn.failed"


def test_human_output_shows_each_collaboration_call(home: Path, workspace: Path) -> None:
    with ScriptedAgents() as fake:
        write_config(home, fake.base_url, model=MODEL, extra=NO_CODE_MODE)
        res = run_cli("exec", "hi", cwd=workspace, timeout=120)
    assert res.code == 0, res.stderr
    assert "agents: spawn_agent — child task: say hi → " in res.stderr and "pending_init" in res.stderr
    assert "agents: wait → " in res.stderr and "completed: hi from the child" in res.stderr
    assert "agents: close_agent → " in res.stderr and res.stdout.strip() == "parent done"


class ResumeScript(FakeResponsesServer):
    """spawn → wait → close → resume → send_input → wait → answer."""

    def _next(self) -> Reply | None:
        rec = self.requests[-1]
        if from_child(rec):
            said = [i for i in rec.body["input"] if i.get("role") == "user"]
            return Reply(message_turn(f"child says {said[-1]['content'][0]['text']}"))
        outputs = [i for i in rec.body.get("input", []) if i.get("type") == "function_call_output"]
        if not outputs:
            return agent_call("c1", "spawn_agent", {"message": "first"})
        agent = json.loads(outputs[0]["output"])["agent_id"]
        steps = [("c2", "wait_agent", {"targets": [agent]}), ("c3", "close_agent", {"target": agent}),
                 ("c4", "resume_agent", {"id": agent}), ("c5", "send_input", {"target": agent, "message": "again"}),
                 ("c6", "wait_agent", {"targets": [agent]})]  # fmt: skip
        if len(outputs) <= len(steps):
            call_id, name, args = steps[len(outputs) - 1]
            return agent_call(call_id, name, args)
        return Reply(message_turn("done"))


def test_a_closed_agent_is_resumed_with_its_history(home: Path, workspace: Path) -> None:
    _res, requests = run_agents(ResumeScript(), home, workspace)
    last = requests[-1].body["input"]
    raw = {i["call_id"]: i["output"] for i in last if i.get("type") == "function_call_output"}
    assert all(v.startswith("{") for v in raw.values()), raw
    outputs = {k: json.loads(v) for k, v in raw.items()}
    assert outputs["c3"]["previous_status"] == {"completed": "child says first"}
    assert outputs["c4"] == {"status": {"completed": "child says first"}}
    (agent,) = outputs["c6"]["status"]
    assert outputs["c6"]["status"][agent] == {"completed": "child says again"}
    # The reopened child's request carries its first turn too (its rollout was resumed).
    child_requests = [r for r in requests if r.headers.get("x-openai-subagent")]
    texts = json.dumps(child_requests[-1].body["input"])
    assert "child says first" in texts and texts.index("child says first") < texts.index('"again"')


class NoWaitScript(FakeResponsesServer):
    """The parent spawns an agent and answers at once; the child answers a moment later."""

    def _next(self) -> Reply | None:
        rec = self.requests[-1]
        if from_child(rec):
            time.sleep(1.0)
            return Reply(message_turn("late child"))
        outputs = [i for i in rec.body.get("input", []) if i.get("type") == "function_call_output"]
        if not outputs:
            return agent_call("c1", "spawn_agent", {"message": "take your time"})
        return Reply(message_turn(f"parent done {len(rec.body['input'])}"))


def test_a_late_notification_starts_no_turn_and_resume_last_is_the_parents(
    home: Path, workspace: Path
) -> None:
    with NoWaitScript() as fake:
        write_config(home, fake.base_url, model=MODEL, extra=NO_CODE_MODE)
        res = run_cli("exec", "--json", "hi", cwd=workspace, timeout=120)
        assert res.code == 0, res.stderr
        events = [json.loads(line) for line in res.stdout.splitlines()]
        assert [e["type"] for e in events if e["type"].startswith("turn.")] == [
            "turn.started",
            "turn.completed",
        ]
        parent_id = next(e["thread_id"] for e in events if e["type"] == "thread.started")
        # The child's session is on disk too, newer than the parent's; --last still means the parent.
        again = run_cli("exec", "--json", "resume", "--last", "next", cwd=workspace, timeout=120)
        assert again.code == 0, again.stderr
        assert next(json.loads(line) for line in again.stdout.splitlines())["thread_id"] == parent_id


class StatusScript(FakeResponsesServer):
    """The scripts of ``fixtures/codex-0.169/collab-statuses.json``: ``errored`` (every child request
    refused with a 400) and ``slow`` (the child's request held; wait times out, close, wait again)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def _next(self) -> Reply | None:
        rec = self.requests[-1]
        if from_child(rec):
            if self.kind == "errored":
                body = {"error": {"message": "child request refused", "type": "invalid_request_error",
                                  "code": "bad_thing"}}  # fmt: skip
                return Reply(status=400, body=json.dumps(body).encode())
            time.sleep(20)
            return Reply(message_turn("late child"))
        outputs = [i for i in rec.body.get("input", []) if i.get("type") == "function_call_output"]
        if not outputs:
            return agent_call("c1", "spawn_agent", {"message": "child task"})
        agent = json.loads(outputs[0]["output"])["agent_id"]
        wait_ms = 10000 if self.kind == "errored" else 1000
        script = [
            agent_call("c2", "wait_agent", {"targets": [agent], "timeout_ms": wait_ms}),
            agent_call("c3", "close_agent", {"target": agent}),
        ]
        if self.kind == "slow":
            unknown = "00000000-0000-0000-0000-000000000000"
            script.append(agent_call("c4", "wait_agent", {"targets": [agent, unknown], "timeout_ms": 1000}))
        return script[len(outputs) - 1] if len(outputs) <= len(script) else Reply(message_turn("parent done"))


def _collab_view(events: list[dict[str, Any]], ids: dict[str, str]) -> list[Any]:
    return [
        _shape({k: e["item"][k] for k in ("tool", "receiver_thread_ids", "agents_states", "status")}, ids)
        for e in events
        if e["type"] == "item.completed" and e["item"]["type"] == "collab_tool_call"
    ]


def _errored_text(value: Any) -> Any:
    """The errored text aside (codexbro words the error; 0.169 passes the raw body: documented)."""
    if isinstance(value, dict):
        return {
            k: ("TEXT" if k in ("errored", "message") and v else _errored_text(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_errored_text(v) for v in value]
    return value


def test_statuses_other_than_completed_as_upstream(home: Path, workspace: Path) -> None:
    captured = json.loads((FIXTURES / "collab-statuses.json").read_text())
    for kind in ("errored", "slow"):
        want = captured[kind]
        res, requests = run_agents(StatusScript(kind), home, workspace)
        events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
        parent = [r for r in requests if not from_child(r)]
        first = next(i for i in parent[-1].body["input"] if i.get("call_id") == "c1" and "output" in i)
        ours_id = json.loads(first["output"])["agent_id"]
        theirs_id = json.loads(want["requests"][-1]["outputs"][0]["output"])["agent_id"]
        ids = {ours_id: "AGENT", theirs_id: "AGENT"}
        # the collab_tool_call items: which agents, their states, completed or failed
        assert _errored_text(_collab_view(events, ids)) == _errored_text(
            _collab_view(want["exec_json"], ids)
        ), kind
        # the tool outputs the model reads, and the notification
        outputs = {i["call_id"]: json.loads(i["output"]) for i in parent[-1].body["input"]
                   if i.get("type") == "function_call_output"}  # fmt: skip
        theirs = {o["call_id"]: json.loads(o["output"]) for o in want["requests"][-1]["outputs"]}
        for spawned in (outputs["c1"], theirs["c1"]):
            assert isinstance(spawned.pop("nickname"), str)  # 0.169 picks a random name
        assert _errored_text(_shape(outputs, ids)) == _errored_text(_shape(theirs, ids)), kind
        note = next(
            c["text"] for i in parent[-1].body["input"] if i.get("role") == "user"
            for c in i["content"] if "subagent_notification" in c.get("text", "")
        )  # fmt: skip
        body = json.loads(note.split("\n")[1])
        upstream = json.loads(want["requests"][-1]["last_user_text"].split("\n")[1])
        assert _errored_text(_shape(body, ids)) == _errored_text(_shape(upstream, ids)), kind

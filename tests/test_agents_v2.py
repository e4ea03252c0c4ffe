"""0.169's multi_agent_v2 (the ``collaboration`` namespace of code-mode models) end to end:
``codexbro exec`` against a loopback fake answering each request by what it holds, the same model
replies as in the capture of the real 0.169 (``fixtures/codex-0.169/multi-agent-v2.json``), and the
answers, the children's inputs and the messages to the parent compared with it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, write_config
from tests.fakes.events import ev_completed, ev_created, ev_function_call, ev_message, sse_frame
from tests.fakes.responses_server import FakeResponsesServer, Recorded

pytest.importorskip("py_mini_racer", reason="code mode needs mini-racer (a dependency of codexbro)")

CAPTURE = json.loads((Path(__file__).parent / "fixtures" / "codex-0.169" / "multi-agent-v2.json").read_text())
STEPS: list[tuple[str, dict[str, Any]]] = [
    ("spawn_agent", {"task_name": "worker", "message": "Say hi.", "fork_turns": "none"}),
    ("list_agents", {}),
    ("wait_agent", {"timeout_ms": 10000}),
    ("send_message", {"target": "worker", "message": "A note for you."}),
    ("followup_task", {"target": "worker", "message": "Say hi again."}),
    ("wait_agent", {"timeout_ms": 10000}),
    ("interrupt_agent", {"target": "worker"}),
    ("list_agents", {"path_prefix": "/root"}),
    ("spawn_agent", {"task_name": "Bad Name!", "message": "x"}),
    ("send_message", {"target": "nobody", "message": "x"}),
    ("spawn_agent", {"task_name": "forked", "message": "Continue."}),
    ("wait_agent", {"timeout_ms": 10000}),
]


def upstream_outputs() -> dict[str, str]:
    outputs: dict[str, str] = {}
    for req in CAPTURE["requests"]:
        if req["subagent"] is None:
            for item in req["input_tail"]:
                if item["type"] == "function_call_output":
                    outputs[item["call_id"]] = item["output"]
    return outputs


class Team:
    """The fake's answers: root requests by how many outputs they carry, children by number."""

    def __init__(self) -> None:
        self.requests: list[tuple[str | None, dict[str, Any]]] = []
        self.children = 0

    def __call__(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        headers = {k.lower(): v for k, v in rec.headers.items()}
        sub = headers.get("x-openai-subagent")
        self.requests.append((sub, rec.body))
        if sub:
            self.children += 1
            events = [ev_created(f"c{self.children}"), ev_message(f"child answer {self.children}"),
                      ev_completed(f"c{self.children}")]  # fmt: skip
        else:
            k = sum(1 for i in rec.body["input"] if i.get("type") == "function_call_output")
            if k < len(STEPS):
                name, args = STEPS[k]
                call = ev_function_call(f"call{k}", name, args)
                call["item"]["namespace"] = "collaboration"
                events = [ev_created(f"r{k}"), call, ev_completed(f"r{k}")]
            else:
                events = [ev_created("rend"), ev_message("root done"), ev_completed("rend")]
            time.sleep(0.3)  # as the capture's fake did: a child's answer is in by the next step
        return 200, {"content-type": "text/event-stream"}, b"".join(sse_frame(e) for e in events)


def test_collaboration_as_0_169(home: Path, workspace: Path) -> None:
    team = Team()
    with FakeResponsesServer() as fake:
        fake.route("POST", "/" + fake.base_url.split("/", 3)[3] + "/responses", team)
        write_config(home, fake.base_url, model="gpt-6-sol")
        res = run_cli("exec", "--json", "--skip-git-repo-check", "-s", "danger-full-access", "hi", cwd=workspace,
                      timeout=180)  # fmt: skip
    assert res.code == 0, res.stderr[-3000:]
    roots = [body for sub, body in team.requests if sub is None]
    children = [body for sub, body in team.requests if sub]
    assert all(sub == "collab_spawn" for sub, _ in team.requests if sub)
    # The menu and the root's developer messages.
    first = roots[0]["input"]
    names = [ns["name"] for ns in first[0]["tools"]]
    assert names == ["functions", "clock", "collaboration"]  # as 0.169 (clock-sleep.json)
    theirs = json.loads(
        (Path(__file__).parent / "fixtures" / "codex-0.169" / "code-mode-requests.json").read_text()
    )
    want = theirs["gpt-6-sol"]["input"][0]["tools"][2]
    mine = first[0]["tools"][2]
    assert [t["name"] for t in mine["tools"]] == [t["name"] for t in want["tools"]]
    for a, b in zip(mine["tools"], want["tools"], strict=True):
        assert a["parameters"] == b["parameters"]
        if a["name"] != "spawn_agent":  # its model list is codexbro's catalog
            assert a == b
    texts = [
        i["content"][0]["text"] for i in first if i.get("type") == "message" and i["role"] == "developer"
    ]
    assert any(t.startswith("<multi_agent_role>You are `/root`") for t in texts)
    assert any(t.startswith("<multi_agent_mode>") for t in texts)
    # Every answer as 0.169 gave it.
    mine_out = {i["call_id"]: i["output"] for i in roots[-1]["input"] if i["type"] == "function_call_output"}
    assert mine_out == upstream_outputs()
    # The children: the task as an agent_message; a full-history fork with the parent's turns.
    task = children[0]["input"][-1]
    assert task == {k: v for k, v in CAPTURE["requests"][2]["input"][-1].items() if k != "id"}
    assert not any(i.get("role") == "user" and i["content"][0]["text"] == "hi" for i in children[0]["input"]
                   if i.get("type") == "message")  # fmt: skip
    forked = children[-1]["input"]
    assert forked[-1]["content"][0]["text"].startswith("Message Type: NEW_TASK\nTask name: /root/forked")
    assert any(i.get("type") == "function_call_output" and i["output"] == "aborted" for i in forked)
    assert any(i.get("type") == "message" and i["content"][0]["text"].startswith("You are now a newly spawned")
               for i in forked)  # fmt: skip
    # The children's answers reach the root as agent_message items.
    finals = [i for i in roots[-1]["input"] if i.get("type") == "agent_message"]
    assert [f["author"] for f in finals] == ["/root/worker", "/root/worker", "/root/forked"]
    assert finals[0]["content"] == [
        {"type": "input_text", "text": "Message Type: FINAL_ANSWER\nTask name: /root\nSender: /root/worker\n"
                                       "Payload:\nchild answer 1"}
    ]  # fmt: skip
    waits = [json.loads(line)["item"] for line in res.stdout.splitlines()
             if json.loads(line).get("type") == "item.completed" and json.loads(line)["item"]["type"] == "collab_tool_call"]  # fmt: skip
    assert [w["tool"] for w in waits] == ["wait", "wait", "wait"]


def test_no_collaboration_namespace_when_turned_off(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    from tests.fakes.events import message_turn
    from tests.fakes.responses_server import Reply

    write_config(home, fake.base_url, model="gpt-6-sol", extra="[features]\nmulti_agent = false")
    fake.add(Reply(message_turn("hi")))
    assert run_cli("exec", "--skip-git-repo-check", "hi", cwd=workspace).code == 0
    first = fake.bodies()[0]["input"]
    assert [ns["name"] for ns in first[0]["tools"]] == ["functions", "clock"]
    assert "<multi_agent_role>" not in json.dumps(first)

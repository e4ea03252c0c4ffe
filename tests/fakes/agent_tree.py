"""A real root ``Session`` (``start_session``, gpt-6-sol: code mode, multi_agent_v2) against the
loopback fake, which answers each agent of the tree (by its path) from a script: ``script(name, k,
body)`` returns the calls of the agent's next response (``k``: outputs its request carries), or None
for a final answer ``"<path> done"``. Used by the tests of the agent tree's races."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import write_config
from tests.fakes.events import ev_completed, ev_created, ev_function_call, ev_message, sse_frame
from tests.fakes.responses_server import FakeResponsesServer, Recorded


def agent_of(body: dict[str, Any], subagent: str | None) -> str:
    """The agent a request is for: the root, or the recipient of the child's first task."""
    if not subagent:
        return "/root"
    for item in body["input"]:
        if item.get("type") == "agent_message" and "NEW_TASK" in item["content"][0]["text"]:
            return str(item["recipient"])
    return "?"


def outputs_of(body: dict[str, Any]) -> dict[str, str]:
    return {i["call_id"]: i["output"] for i in body["input"] if i.get("type") == "function_call_output"}


class Fake:
    """steps[name] -> callable(k, body) returning list of (fname, args) calls, or None to answer text."""

    def __init__(self, script: Callable[[str, int, dict], Any], delay: float = 0.05) -> None:
        self.script = script
        self.delay = delay
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.lock = threading.Lock()

    def __call__(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        headers = {k.lower(): v for k, v in rec.headers.items()}
        name = agent_of(rec.body, headers.get("x-openai-subagent"))
        with self.lock:
            self.requests.append((name, rec.body, headers))
        k = sum(1 for i in rec.body["input"] if i.get("type") == "function_call_output")
        calls = self.script(name, k, rec.body)
        if calls:
            events = [ev_created(f"r{k}")]
            for j, (fname, args) in enumerate(calls):
                ev = ev_function_call(f"{name.replace('/', '_')}_c{k}_{j}", fname, args)
                ev["item"]["namespace"] = "collaboration"
                events.append(ev)
            events.append(ev_completed(f"r{k}"))
        else:
            events = [ev_created("rend"), ev_message(f"{name} done"), ev_completed("rend")]
        time.sleep(self.delay)
        return 200, {"content-type": "text/event-stream"}, b"".join(sse_frame(e) for e in events)

    def of(self, name: str) -> list[dict[str, Any]]:
        return [b for n, b, _ in self.requests if n == name]


class Run:
    def __init__(self, home: Path, workspace: Path, fake_handler: Fake, extra: str = "") -> None:
        self.home, self.workspace, self.handler, self.extra = home, workspace, fake_handler, extra

    async def __aenter__(self) -> Run:
        from codexbro.composition import SessionOptions, start_session
        from codexbro.config.loader import Overrides, load_config

        self.server = FakeResponsesServer().__enter__()
        self.server.route("POST", "/" + self.server.base_url.split("/", 3)[3] + "/responses", self.handler)
        write_config(self.home, self.server.base_url, model="gpt-6-sol", extra=self.extra)
        config = load_config(Overrides(cwd=self.workspace, flags={"sandbox_mode": "danger-full-access"}))
        self.session = start_session(config, SessionOptions())
        self.events: list[Any] = []
        return self

    async def turn(self, text: str, timeout: float = 60) -> Any:
        from codexbro import protocol as p

        sub = self.session.submit(p.UserTurn((p.UserInput("text", text),)))
        async with asyncio.timeout(timeout):
            while True:
                ev = await self.session.next_event()
                self.events.append(ev)
                if ev.id == sub and isinstance(ev.msg, (p.TaskComplete, p.TurnAborted)):
                    return ev

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.session.close()
        finally:
            self.server.__exit__(None, None, None)

    @property
    def tree(self) -> Any:
        return self.session.subagents.tree

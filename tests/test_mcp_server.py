"""``codexbro mcp-server`` end to end: the real CLI as a subprocess, driven by the ``mcp`` SDK's own
stdio client (and, where the SDK client cannot say what upstream's clients say, by raw JSON-RPC),
with the model served by the loopback fake."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import ClientSession
from mcp.client.extension import NotificationBinding
from mcp.client.stdio import StdioServerParameters, stdio_client
from pydantic import BaseModel, ConfigDict

from tests.conftest import live_processes_with, write_config
from tests.fakes.events import (
    check_invariants,
    ev_completed,
    ev_created,
    ev_custom_tool_call,
    ev_failed,
    ev_shell_command,
    message_turn,
)
from tests.fakes.responses_server import FakeResponsesServer, Reply
from tests.sandbox_support import WORKING

SERVER = [sys.executable, "-m", "codexbro", "mcp-server"]


class EventParams(BaseModel):
    """A ``codex/event`` notification's params, kept whole (``_meta``, ``id``, ``msg``)."""

    model_config = ConfigDict(extra="allow")


Elicit = Callable[[dict[str, Any]], Awaitable[types.ElicitResult | types.ErrorData]]


class Client:
    """An SDK client session plus what the server sent besides results."""

    def __init__(
        self, session: ClientSession, events: list[dict[str, Any]], asked: list[dict[str, Any]]
    ) -> None:
        self.session, self.events, self.asked = session, events, asked

    async def call(self, name: str, args: dict[str, Any], progress: Any = None) -> types.CallToolResult:
        async with asyncio.timeout(20):
            result = await self.session.call_tool(name, args, progress_callback=progress)
        assert isinstance(result, types.CallToolResult)
        return result

    def kinds(self, request_id: Any = None) -> list[str]:
        return [
            e["msg"]["type"]
            for e in self.events
            if request_id is None or e["_meta"]["requestId"] == request_id
        ]

    async def wait_for(self, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                for event in self.events:
                    if event["msg"]["type"] == kind:
                        return event
                await asyncio.sleep(0.02)


@asynccontextmanager
async def connect(tmp_path: Path, cwd: Path, *, elicit: Elicit | None = None, args: tuple[str, ...] = ()
                  ) -> AsyncIterator[Client]:  # fmt: skip
    events: list[dict[str, Any]] = []
    asked: list[dict[str, Any]] = []

    async def on_event(params: EventParams) -> None:
        events.append(params.model_dump(by_alias=True))

    async def on_elicit(
        context: Any, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        shown = params.model_dump(by_alias=True, exclude_none=True)
        asked.append(shown)
        if elicit is None:
            pytest.fail(f"the server asked for an approval: {shown}")
        return await elicit(shown)

    server = StdioServerParameters(
        command=SERVER[0], args=[*SERVER[1:], *args], env=dict(os.environ), cwd=cwd
    )
    with open(tmp_path / "server-stderr.txt", "a", encoding="utf-8") as errlog:
        async with stdio_client(server, errlog=errlog) as (read, write):
            # SDK 2.3's message_handler never sees a method outside the spec: a binding does.
            binding = NotificationBinding(method="codex/event", params_type=EventParams, handler=on_event)
            session = ClientSession(
                read, write, elicitation_callback=on_elicit, notification_bindings=[binding]
            )
            async with session:
                await session.initialize()
                yield Client(session, events, asked)


def text(result: types.CallToolResult) -> str:
    (block,) = result.content
    assert isinstance(block, types.TextContent)
    return block.text


def user_texts(body: dict[str, Any]) -> list[str]:
    return [
        part["text"]
        for item in body["input"]
        if item.get("type") == "message" and item.get("role") in ("user", "assistant")
        for part in item["content"]
        if not part["text"].startswith("<")
    ]


def call_outputs(body: dict[str, Any]) -> dict[str, str]:
    return {i["call_id"]: i["output"] for i in body["input"] if i["type"] == "function_call_output"}


# ---- tools/list -------------------------------------------------------------------------------


async def test_tools_list_shows_both_tools_with_upstreams_schemas(home: Path, tmp_path: Path,
                                                                  workspace: Path) -> None:  # fmt: skip
    async with connect(tmp_path, workspace) as client:
        init = client.session.initialize_result
        tools = {t.name: t for t in (await client.session.list_tools()).tools}
    assert init is not None and init.server_info.name == "codexbro-mcp-server"
    assert sorted(tools) == ["codex", "codex-reply"]
    codex, reply = tools["codex"], tools["codex-reply"]
    assert codex.title == "Codex" and reply.title == "Codex Reply"
    assert codex.input_schema["required"] == ["prompt"] and reply.input_schema["required"] == ["prompt"]
    assert sorted(codex.input_schema["properties"]) == [
        "approval-policy", "base-instructions", "compact-prompt", "config", "cwd", "developer-instructions",
        "include-plan-tool", "model", "profile", "prompt", "sandbox",
    ]  # fmt: skip
    props = codex.input_schema["properties"]
    assert props["approval-policy"]["enum"] == ["untrusted", "on-failure", "on-request", "never"]
    assert props["sandbox"]["enum"] == ["read-only", "workspace-write", "danger-full-access"]
    assert props["config"] == {
        "additionalProperties": True, "type": "object",
        "description": "Individual config settings that will override what is in CODEX_HOME/config.toml.",
    }  # fmt: skip
    assert props["prompt"]["description"] == "The *initial user prompt* to start the Codex conversation."
    assert sorted(reply.input_schema["properties"]) == ["conversationId", "prompt", "threadId"]
    output = {"type": "object", "properties": {"threadId": {"type": "string"}, "content": {"type": "string"}},
              "required": ["threadId", "content"]}  # fmt: skip
    assert codex.output_schema == output and reply.output_schema == output


# ---- codex, codex-reply -----------------------------------------------------------------------


async def test_codex_then_reply_continues_the_thread(home: Path, fake: FakeResponsesServer, tmp_path: Path,
                                                     workspace: Path) -> None:  # fmt: skip
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("first answer")), Reply(message_turn("second answer")),
             Reply(message_turn("third answer")))  # fmt: skip
    async with connect(tmp_path, workspace) as client:
        first = await client.call("codex", {"prompt": "hello there", "approval-policy": "never",
                                            "sandbox": "read-only", "include-plan-tool": True})  # fmt: skip
        assert not first.is_error and text(first) == "first answer"
        assert first.structured_content is not None
        thread_id = first.structured_content["threadId"]
        assert first.structured_content == {"threadId": thread_id, "content": "first answer"}
        assert str(uuid.UUID(thread_id)) == thread_id

        progress: list[tuple[float, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, message))

        second = await client.call("codex-reply", {"threadId": thread_id, "prompt": "and again"}, on_progress)
        # With a progress token, every event but deltas is progress too (upstream sent none).
        assert [m for _, m in progress][0] == "task_started" and progress[-1][1] == "task_complete"
        assert [v for v, _ in progress] == list(range(1, len(progress) + 1))
        assert text(second) == "second answer"
        assert second.structured_content == {"threadId": thread_id, "content": "second answer"}
        third = await client.call("codex-reply", {"conversationId": thread_id, "prompt": "once more"})
        assert text(third) == "third answer"

        # Every event of every call came as codex/event, tagged with its call and thread.
        first_call = client.events[0]["_meta"]["requestId"]
        kinds = client.kinds(first_call)
        assert kinds[0] == "session_configured" and kinds[-1] == "task_complete"
        assert {"task_started", "user_message", "agent_message", "token_count"} <= set(kinds)
        assert {e["_meta"]["threadId"] for e in client.events} == {thread_id}
        assert len({e["_meta"]["requestId"] for e in client.events}) == 3
        configured = client.events[0]["msg"]
        assert configured["session_id"] == thread_id and configured["approval_policy"] == "never"
        assert configured["cwd"] == str(workspace.resolve()) and configured["sandbox_policy"] == "read-only"

    bodies = fake.bodies()
    assert len(bodies) == 3
    for body in bodies:
        check_invariants(body)
    assert user_texts(bodies[1]) == ["hello there", "first answer", "and again"]
    assert user_texts(bodies[2]) == ["hello there", "first answer", "and again", "second answer", "once more"]
    assert {r.headers["originator"] for r in fake.responses_requests()} == {"codex_mcp_server"}
    assert {r.headers["thread-id"] for r in fake.responses_requests()} == {thread_id}
    meta = json.loads(
        next((home / "sessions").rglob(f"rollout-*{thread_id}.jsonl")).read_text().splitlines()[0]
    )
    assert meta["payload"]["source"] == "mcp" and meta["payload"]["originator"] == "codex_mcp_server"


async def test_call_arguments_reach_the_session(home: Path, fake: FakeResponsesServer, tmp_path: Path,
                                               workspace: Path) -> None:  # fmt: skip
    write_config(home, fake.base_url, extra='[profiles.fast]\nmodel_reasoning_effort = "low"')
    (workspace / "sub").mkdir()
    fake.add(Reply(message_turn("ok")))
    async with connect(tmp_path, workspace, args=("-c", 'model_verbosity="high"')) as client:
        result = await client.call("codex", {
            "prompt": "go", "model": "gpt-5.2", "profile": "fast", "cwd": "sub", "sandbox": "workspace-write",
            "approval-policy": "on-request", "base-instructions": "BASE TEXT",
            "developer-instructions": "DEV TEXT", "compact-prompt": "SUMMARIZE",
            "config": {"model_reasoning_summary": "detailed", "sandbox_workspace_write.network_access": True},
        })  # fmt: skip
        assert text(result) == "ok", text(result)
        configured = client.events[0]["msg"]
    assert configured["model"] == "gpt-5.2" and configured["cwd"] == str((workspace / "sub").resolve())
    assert configured["approval_policy"] == "on-request" and configured["sandbox_policy"] == "workspace-write"
    assert configured["reasoning_effort"] == "low"  # from the call's profile
    (body,) = fake.bodies()
    assert body["model"] == "gpt-5.2" and body["instructions"] == "BASE TEXT"
    assert body["reasoning"] == {"effort": "low", "summary": "detailed"}  # the call's config object
    assert body["text"]["verbosity"] == "high"  # the server's own -c
    developer = [i for i in body["input"] if i.get("role") == "developer"]
    assert any("DEV TEXT" in part["text"] for item in developer for part in item["content"])


async def test_reply_after_a_restart_resumes_the_rollout(home: Path, fake: FakeResponsesServer, tmp_path: Path,
                                                         workspace: Path) -> None:  # fmt: skip
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("remembered")), Reply(message_turn("still here")))
    async with connect(tmp_path, workspace) as client:
        first = await client.call("codex", {"prompt": "remember 42", "approval-policy": "never"})
    assert first.structured_content is not None
    thread_id = first.structured_content["threadId"]
    async with connect(tmp_path, tmp_path) as client:  # another server, started elsewhere
        second = await client.call("codex-reply", {"threadId": thread_id, "prompt": "what was it?"})
        configured = client.events[0]["msg"]
    assert text(second) == "still here" and second.structured_content == {"threadId": thread_id,
                                                                          "content": "still here"}  # fmt: skip
    assert configured["resumed"] is True and configured["cwd"] == str(workspace.resolve())
    assert configured["approval_policy"] == "never"
    assert user_texts(fake.bodies()[1]) == ["remember 42", "remembered", "what was it?"]


async def test_concurrent_calls_run_their_own_sessions(home: Path, fake: FakeResponsesServer, tmp_path: Path,
                                                       workspace: Path) -> None:  # fmt: skip
    write_config(home, fake.base_url)
    fake.add(*(Reply(message_turn("same answer"), event_delay_s=0.2) for _ in range(2)))
    async with connect(tmp_path, workspace) as client:
        results: list[types.CallToolResult] = []

        async def one(prompt: str) -> None:
            results.append(await client.call("codex", {"prompt": prompt, "approval-policy": "never"}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "first")
            tg.start_soon(one, "second")
    assert [text(r) for r in results] == ["same answer"] * 2
    ids = {r.structured_content["threadId"] for r in results if r.structured_content}
    assert len(ids) == 2


# ---- errors -----------------------------------------------------------------------------------


async def test_bad_arguments_are_error_results(home: Path, fake: FakeResponsesServer, tmp_path: Path,
                                               workspace: Path) -> None:  # fmt: skip
    write_config(home, fake.base_url)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("codex", {}, "Missing arguments for codex tool-call; the `prompt` field is required."),
        ("codex", {"model": "x"}, "Failed to parse configuration for Codex tool: missing field `prompt`"),
        ("codex", {"prompt": 3}, "`prompt` must be a string"),
        ("codex", {"prompt": "go", "sandbox": "wide-open"},
         "unknown variant `wide-open` for `sandbox`, expected one of read-only, workspace-write, danger-full-access"),
        ("codex", {"prompt": "go", "approval-policy": "sometimes"}, "unknown variant `sometimes`"),
        ("codex", {"prompt": "go", "approval_policy": "never"}, "unknown field `approval_policy`"),
        ("codex", {"prompt": "go", "config": ["model"]}, "`config` must be an object"),
        ("codex", {"prompt": "go", "config": {"model": None}}, "config `model`: null is not a config value"),
        ("codex", {"prompt": "go", "cwd": "no/such/dir"}, "is not a directory"),
        ("codex", {"prompt": "go", "profile": "missing"},
         "Failed to load Codex configuration from overrides: profile `missing` not found"),
        ("codex-reply", {"prompt": "go"},
         "Failed to parse thread_id: either threadId or conversationId must be provided"),
        ("codex-reply", {"threadId": "not-a-uuid", "prompt": "go"}, "Failed to parse thread_id: `not-a-uuid`"),
        ("nope", {}, "Unknown tool 'nope'"),
    ]  # fmt: skip
    unknown = str(uuid.uuid4())
    async with connect(tmp_path, workspace) as client:
        for name, args, expected in cases:
            result = await client.call(name, args)
            assert result.is_error and expected in text(result), (name, args, text(result))
            assert result.structured_content is None
        missing = await client.call("codex-reply", {"threadId": unknown, "prompt": "go"})
        assert missing.is_error and text(missing) == f"Session not found for thread_id: {unknown}"
        assert missing.structured_content == {"threadId": unknown, "content": text(missing)}
        # The server is still there.
        assert len((await client.session.list_tools()).tools) == 2
    assert fake.requests == []


async def test_model_failure_is_an_error_result(home: Path, fake: FakeResponsesServer, tmp_path: Path,
                                                workspace: Path) -> None:  # fmt: skip
    write_config(home, fake.base_url)
    fake.add(Reply([ev_created(), ev_failed("invalid_prompt", "the prompt was refused")]),
             Reply(message_turn("fine now")))  # fmt: skip
    async with connect(tmp_path, workspace) as client:
        failed = await client.call("codex", {"prompt": "go", "approval-policy": "never"})
        assert failed.is_error and "the prompt was refused" in text(failed)
        assert failed.structured_content is not None
        thread_id = failed.structured_content["threadId"]
        assert "error" in client.kinds()
        # The thread stays usable.
        again = await client.call("codex-reply", {"threadId": thread_id, "prompt": "retry"})
        assert not again.is_error and text(again) == "fine now"


# ---- approvals --------------------------------------------------------------------------------


async def test_approvals_become_elicitations(home: Path, fake: FakeResponsesServer, tmp_path: Path,
                                             workspace: Path) -> None:  # fmt: skip
    write_config(home, fake.base_url)
    fake.add(
        Reply([ev_created(), ev_shell_command("c1", "touch approved.txt", login=False), ev_completed()]),
        Reply(message_turn("made it")),
        Reply([ev_created(), ev_shell_command("c2", "touch denied.txt", login=False), ev_completed()]),
        Reply(message_turn("was refused")),
    )
    answers = iter([types.ElicitResult(action="accept", content={}), types.ElicitResult(action="decline")])

    async def elicit(params: dict[str, Any]) -> types.ElicitResult:
        return next(answers)

    async with connect(tmp_path, workspace, elicit=elicit) as client:
        first = await client.call("codex", {"prompt": "make a file", "approval-policy": "untrusted",
                                            "sandbox": "danger-full-access"})  # fmt: skip
        assert text(first) == "made it" and (workspace / "approved.txt").exists()
        assert first.structured_content is not None
        thread_id = first.structured_content["threadId"]
        second = await client.call("codex-reply", {"threadId": thread_id, "prompt": "another"})
        assert text(second) == "was refused" and not (workspace / "denied.txt").exists()
        assert client.asked == [
            {"mode": "form", "message": f"Allow Codex to run `/bin/bash -c 'touch {name}'` in `{workspace.resolve()}`?",
             "requestedSchema": {"type": "object", "properties": {}}}
            for name in ("approved.txt", "denied.txt")
        ]  # fmt: skip
        assert "exec_approval_request" in client.kinds()
    outputs = call_outputs(fake.bodies()[3])
    assert outputs["c1"].startswith("Exit code: 0") and outputs["c2"] == "exec command rejected by user"


async def test_never_asks_nothing(
    home: Path, fake: FakeResponsesServer, tmp_path: Path, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply([ev_created(), ev_shell_command("c1", "touch quiet.txt", login=False), ev_completed()]),
             Reply(message_turn("done")))  # fmt: skip
    async with connect(tmp_path, workspace) as client:  # any elicitation fails the test
        result = await client.call("codex", {"prompt": "go", "approval-policy": "never",
                                             "sandbox": "danger-full-access"})  # fmt: skip
        assert client.asked == [] and "exec_approval_request" not in client.kinds()
    assert text(result) == "done" and (workspace / "quiet.txt").exists()


# ---- cancellation and shutdown ----------------------------------------------------------------


async def test_cancelled_call_interrupts_its_turn(home: Path, fake: FakeResponsesServer, tmp_path: Path,
                                                  workspace: Path) -> None:  # fmt: skip
    write_config(home, fake.base_url)
    marker = f"mcp-cancel-{uuid.uuid4().hex[:8]}"
    fake.add(Reply([ev_created(), ev_shell_command("c1", f"sleep 30; : {marker}", login=False), ev_completed()]),
             Reply(message_turn("after the interrupt")))  # fmt: skip
    async with connect(tmp_path, workspace) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call, "codex", {"prompt": "go", "approval-policy": "never",
                                                 "sandbox": "danger-full-access"})  # fmt: skip
            begin = await client.wait_for("exec_command_begin")
            await _until(lambda: bool(live_processes_with(marker)))  # begin is said just before the spawn
            tg.cancel_scope.cancel()  # the SDK sends notifications/cancelled for the call
        thread_id = begin["_meta"]["threadId"]
        await _until(lambda: not live_processes_with(marker))
        # The thread is free again, and its history says the call was aborted.
        result = await client.call("codex-reply", {"threadId": thread_id, "prompt": "next"})
        assert text(result) == "after the interrupt"
    assert "aborted" in call_outputs(fake.bodies()[1])["c1"]


async def _until(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


# ---- raw JSON-RPC: what upstream's clients send and see ----------------------------------------


class RawServer:
    """``codexbro mcp-server`` spoken to line by line, as upstream's own tests do."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")
        await self.proc.stdin.drain()

    async def receive(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(15):
            while True:
                line = await self.proc.stdout.readline()
                assert line, "the server closed stdout"
                message = json.loads(line)
                self.seen.append(message)
                if match(message):
                    return message


@asynccontextmanager
async def raw_server(tmp_path: Path, cwd: Path) -> AsyncIterator[RawServer]:
    with open(tmp_path / "server-stderr.txt", "a", encoding="utf-8") as errlog:
        proc = await asyncio.create_subprocess_exec(*SERVER, cwd=cwd, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, stderr=errlog)  # fmt: skip
    server = RawServer(proc)
    try:
        await server.send({"id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
            "clientInfo": {"name": "raw-test", "version": "1"}}})  # fmt: skip
        init = await server.receive(lambda m: m.get("id") == 1)
        assert init["result"]["serverInfo"]["name"] == "codexbro-mcp-server"
        await server.send({"method": "notifications/initialized"})
        yield server
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def test_upstream_style_decision_reply_and_elicitation_params(
    home: Path, fake: FakeResponsesServer, tmp_path: Path, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply([ev_created(), ev_shell_command("c1", "touch ok.txt", login=False), ev_completed()]),
             Reply(message_turn("done")))  # fmt: skip
    async with raw_server(tmp_path, workspace) as server:
        await server.send({"id": "call-7", "method": "tools/call", "params": {"name": "codex", "arguments": {
            "prompt": "go", "approval-policy": "untrusted", "sandbox": "danger-full-access"}}})  # fmt: skip
        ask = await server.receive(lambda m: m.get("method") == "elicitation/create")
        request = next(m for m in server.seen if m.get("params", {}).get("msg", {}).get("type") ==
                       "exec_approval_request")  # fmt: skip
        thread_id = request["params"]["_meta"]["threadId"]
        assert request["method"] == "codex/event" and request["params"]["_meta"]["requestId"] == "call-7"
        assert ask["params"] == {
            "message": f"Allow Codex to run `/bin/bash -c 'touch ok.txt'` in `{workspace.resolve()}`?",
            "requestedSchema": {"type": "object", "properties": {}},
            "threadId": thread_id,
            "codex_elicitation": "exec-approval",
            "codex_mcp_tool_call_id": "call-7",
            "codex_event_id": request["params"]["id"],
            "codex_call_id": "c1",
            "codex_command": ["/bin/bash", "-c", "touch ok.txt"],
            "codex_cwd": str(workspace.resolve()),
            "codex_parsed_cmd": [{"type": "unknown", "cmd": "touch ok.txt"}],
            "codex_reason": "untrusted policy: only known-safe commands run without approval",
        }
        # A method the server does not serve is refused at once (upstream never answered them).
        await server.send({"id": "res", "method": "resources/list", "params": {}})
        refused = await server.receive(lambda m: m.get("id") == "res")
        assert refused["error"]["code"] == -32601
        await server.send({"id": ask["id"], "result": {"decision": "approved"}})
        done = await server.receive(lambda m: m.get("id") == "call-7")
    assert done["result"] == {
        "content": [{"type": "text", "text": "done"}],
        "isError": False,  # the SDK writes it out; upstream left it out
        "structuredContent": {"threadId": thread_id, "content": "done"},
    }
    assert (workspace / "ok.txt").exists()


@pytest.mark.skipif(not WORKING, reason="no Linux sandbox backend works on this machine")
async def test_patch_approval_under_on_request(home: Path, fake: FakeResponsesServer, tmp_path: Path,
                                               workspace: Path) -> None:  # fmt: skip
    write_config(home, fake.base_url)
    outside = Path(os.environ["HOME"]) / "outside"
    outside.mkdir()
    patch = f"*** Begin Patch\n*** Add File: {outside}/notes.md\n+hello\n*** End Patch"
    fake.add(Reply([ev_created(), ev_custom_tool_call("p1", "apply_patch", patch), ev_completed()]),
             Reply(message_turn("patched")))  # fmt: skip
    async with raw_server(tmp_path, workspace) as server:
        await server.send({"id": 4, "method": "tools/call", "params": {"name": "codex", "arguments": {
            "prompt": "go", "approval-policy": "on-request", "sandbox": "workspace-write",
            # the workspace is under /tmp, which workspace-write would otherwise let the agent write
            "config": {"sandbox_workspace_write": {"exclude_slash_tmp": True, "exclude_tmpdir_env_var": True}},
        }}})  # fmt: skip
        ask = await server.receive(lambda m: m.get("method") == "elicitation/create")
        params = ask["params"]
        reason = params.pop("codex_reason")
        assert params.pop("threadId") and params.pop("codex_event_id")
        assert params == {
            "message": f"{reason}\nAllow Codex to apply proposed code changes?",
            "requestedSchema": {"type": "object", "properties": {}},
            "codex_elicitation": "patch-approval",
            "codex_mcp_tool_call_id": "4",
            "codex_call_id": "p1",
            "codex_changes": {f"{outside}/notes.md": {"type": "add", "content": "hello\n"}},
        }
        # A spec-shaped reply whose content names upstream's decision.
        await server.send(
            {"id": ask["id"], "result": {"action": "accept", "content": {"decision": "approved"}}}
        )
        done = await server.receive(lambda m: m.get("id") == 4)
    assert done["result"]["content"][0]["text"] == "patched"
    assert (outside / "notes.md").read_text() == "hello\n"


async def test_an_error_reply_to_an_elicitation_denies(home: Path, fake: FakeResponsesServer, tmp_path: Path,
                                                       workspace: Path) -> None:  # fmt: skip
    write_config(home, fake.base_url)
    fake.add(Reply([ev_created(), ev_shell_command("c1", "touch no.txt", login=False), ev_completed()]),
             Reply(message_turn("fine")))  # fmt: skip
    async with raw_server(tmp_path, workspace) as server:
        await server.send({"id": 2, "method": "tools/call", "params": {"name": "codex", "arguments": {
            "prompt": "go", "approval-policy": "untrusted", "sandbox": "danger-full-access"}}})  # fmt: skip
        ask = await server.receive(lambda m: m.get("method") == "elicitation/create")
        await server.send({"id": ask["id"], "error": {"code": -32601, "message": "no elicitation here"}})
        done = await server.receive(lambda m: m.get("id") == 2)
    assert done["result"]["content"][0]["text"] == "fine" and not (workspace / "no.txt").exists()


@pytest.mark.parametrize("how", ["stdin EOF", "SIGTERM"])
async def test_leaving_closes_sessions_and_their_processes(home: Path, fake: FakeResponsesServer, tmp_path: Path,
                                                           workspace: Path, how: str) -> None:  # fmt: skip
    write_config(home, fake.base_url)
    marker = f"mcp-leave-{uuid.uuid4().hex[:8]}"
    fake.add(
        Reply([ev_created(), ev_shell_command("c1", f"sleep 30; : {marker}", login=False), ev_completed()])
    )
    async with raw_server(tmp_path, workspace) as server:
        await server.send({"id": 3, "method": "tools/call", "params": {"name": "codex", "arguments": {
            "prompt": "go", "approval-policy": "never", "sandbox": "danger-full-access"}}})  # fmt: skip
        await server.receive(lambda m: m.get("params", {}).get("msg", {}).get("type") == "exec_command_begin")
        assert live_processes_with(marker)
        if how == "SIGTERM":
            server.proc.terminate()
        else:
            assert server.proc.stdin is not None
            server.proc.stdin.close()
        async with asyncio.timeout(5):
            code = await server.proc.wait()
    assert code == (0 if how == "stdin EOF" else -signal.SIGTERM)
    assert not live_processes_with(marker)
    rollout = next((home / "sessions").rglob("rollout-*.jsonl")).read_text()
    assert '"turn_aborted"' in rollout  # the session was closed, not dropped


def test_broken_config_is_said_at_start(home: Path, tmp_path: Path) -> None:
    (home / "config.toml").write_text("model = [unclosed\n")
    from tests.conftest import run_cli

    res = run_cli("mcp-server", cwd=tmp_path, timeout=20)
    assert res.code == 1 and res.stderr.startswith("Error: ") and "config.toml" in res.stderr

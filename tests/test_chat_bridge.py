"""The chat-completions bridge: `codexbro exec` against a loopback ``/chat/completions`` fake that
streams real chunked SSE — tool calls whose arguments arrive in fragments, text deltas, usage,
errors, a dropped stream — and the request translation on its own."""

from __future__ import annotations

import json
from pathlib import Path

from codexbro.api import events as ev
from codexbro.api.chat_bridge import ChatStream, to_chat_request
from tests.conftest import FAKE_KEY, run_cli, write_config
from tests.fakes.chat_server import ChatReply, FakeChatServer, chunk, text_reply, tool_reply

BRIDGE = 'wire_api = "chat"\nchat_completions_bridge = true'


def test_exec_round_trip_through_the_bridge(home: Path, workspace: Path) -> None:
    with FakeChatServer() as chat:
        write_config(home, chat.base_url, provider_extra=BRIDGE)
        chat.add(tool_reply("call_1", "shell_command", json.dumps({"command": "echo bridged"})),
                 text_reply("all ", "done"))  # fmt: skip
        res = run_cli("exec", "--json", "go", cwd=workspace)
        assert res.code == 0, res.stderr
        events = res.events()
        done = [e["item"] for e in events if e["type"] == "item.completed"]
        assert done[0]["type"] == "command_execution" and done[0]["aggregated_output"] == "bridged\n"
        assert done[-1] == {"id": done[-1]["id"], "type": "agent_message", "text": "all done"}
        usage = next(e for e in events if e["type"] == "turn.completed")["usage"]
        assert usage["input_tokens"] == 130 and usage["cached_input_tokens"] == 64
        first, second = chat.requests
        assert chat.paths == ["/v1/chat/completions", "/v1/chat/completions"]
        assert chat.headers[0]["authorization"] == f"Bearer {FAKE_KEY}"
        assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
        assert first["model"] == "gpt-5.1-codex" and first["tool_choice"] == "auto"
        assert first["messages"][0]["role"] == "system" and "coding agent" in first["messages"][0]["content"]
        assert first["messages"][-1] == {"role": "user", "content": "go"}
        names = [t["function"]["name"] for t in first["tools"]]
        assert "shell_command" in names and all(t["type"] == "function" for t in first["tools"])
        # The second request carries the call and its output in chat's own shapes.
        call_msg = next(m for m in second["messages"] if m.get("tool_calls"))
        assert call_msg["tool_calls"] == [{"id": "call_1", "type": "function", "function": {
            "name": "shell_command", "arguments": json.dumps({"command": "echo bridged"})}}]  # fmt: skip
        tool_msg = next(m for m in second["messages"] if m["role"] == "tool")
        assert tool_msg["tool_call_id"] == "call_1" and "bridged" in tool_msg["content"]


def test_errors_retries_and_a_dropped_stream(home: Path, workspace: Path) -> None:
    with FakeChatServer() as chat:
        write_config(home, chat.base_url, provider_extra=BRIDGE)
        bad = b'{"error": {"message": "model not loaded", "type": "invalid_request_error"}}'
        chat.add(ChatReply(status=400, body=bad))
        res = run_cli("exec", "--json", "go", cwd=workspace)
        assert res.code == 1
        failed = next(e for e in res.events() if e["type"] == "turn.failed")
        assert "model not loaded" in failed["error"]["message"]
        assert len(chat.requests) == 1  # a 400 is not retried
        # A 500 is retried; a stream cut before it finishes is reconnected, as a Responses stream.
        chat.add(ChatReply(status=500, body=b'{"error": {"message": "busy"}}'),
                 ChatReply([chunk({"content": "partial"})], done=False, cut=True),
                 text_reply("whole"))  # fmt: skip
        res = run_cli("exec", "--json", "go", cwd=workspace)
        assert res.code == 0, res.stderr
        messages = [e["item"]["text"] for e in res.events() if e["type"] == "item.completed"]
        assert messages == ["whole"]
        assert any(e["type"] == "error" and "Reconnecting" in e["message"] for e in res.events())


def test_chat_alone_is_refused_with_the_hint(home: Path, workspace: Path) -> None:
    write_config(home, "http://127.0.0.1:9/v1", provider_extra='wire_api = "chat"')
    res = run_cli("exec", "go", cwd=workspace)
    assert res.code == 1
    assert '`wire_api = "chat"` is no longer supported.' in res.stderr  # upstream's words
    assert "chat_completions_bridge = true" in res.stderr  # and how codexbro can do it
    write_config(home, "http://127.0.0.1:9/v1", provider_extra="chat_completions_bridge = true")
    res = run_cli("exec", "go", cwd=workspace)
    assert res.code == 1 and 'needs `wire_api = "chat"`' in res.stderr


def test_request_translation() -> None:
    body = {
        "model": "m", "instructions": "be brief", "parallel_tool_calls": True,
        "reasoning": {"effort": "high"},
        "text": {"format": {"type": "json_schema", "name": "out", "strict": True, "schema": {"type": "object"}}},
        "tools": [
            {"type": "function", "name": "shell_command", "description": "run", "parameters": {"type": "object"}},
            {"type": "custom", "name": "apply_patch", "description": "patch", "format": {"type": "grammar"}},
            {"type": "web_search"},
        ],
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "perms"}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": "data:image/png;base64,AA"}]},
            {"type": "reasoning", "summary": []},
            {"type": "function_call", "call_id": "a", "name": "shell_command", "arguments": '{"command":"ls"}'},
            {"type": "custom_tool_call", "call_id": "b", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "function_call_output", "call_id": "a", "output": "x"},
            {"type": "custom_tool_call_output", "call_id": "b", "output": "Done"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
        ],
    }  # fmt: skip
    req = to_chat_request(body)
    assert [m["role"] for m in req["messages"]] == [
        "system",
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    assert req["messages"][2]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AA"},
    }
    calls = req["messages"][3]["tool_calls"]
    assert [c["id"] for c in calls] == ["a", "b"]
    assert json.loads(calls[1]["function"]["arguments"]) == {"input": "*** Begin Patch"}
    assert [t["function"]["name"] for t in req["tools"]] == [
        "shell_command",
        "apply_patch",
    ]  # web_search left out
    assert req["response_format"]["json_schema"] == {
        "name": "out",
        "schema": {"type": "object"},
        "strict": True,
    }
    assert req["reasoning_effort"] == "high" and req["parallel_tool_calls"] is True


def test_stream_translation() -> None:
    state = ChatStream(custom_tools=frozenset({"apply_patch"}))
    events: list[ev.ResponseEvent] = []
    for c in [
        chunk({"role": "assistant", "reasoning_content": "think"}),
        chunk({"content": "Hi"}),
        chunk({"tool_calls": [{"index": 1, "id": "p", "function": {"name": "apply_patch", "arguments": '{"input": '}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": '"*** Begin Patch"}'}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "s", "function": {"name": "shell_command", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
    ]:  # fmt: skip
        events += state.feed(c)
    events += state.finish()
    assert isinstance(events[0], ev.Created) and events[0].response_id == "chatcmpl-1"
    done = [e.item for e in events if isinstance(e, ev.OutputItemDone)]
    assert [d["type"] for d in done] == ["reasoning", "message", "function_call", "custom_tool_call"]
    assert done[1]["content"][0]["text"] == "Hi"
    assert done[2]["call_id"] == "s" and done[3] == {**done[3], "call_id": "p", "input": "*** Begin Patch"}
    assert isinstance(events[-1], ev.Completed)


def test_hostile_chunks_never_escape_as_python_errors() -> None:
    """Each shape the red-team sent (wrong types everywhere, absurd indices) is ignored or refused
    with the package's own error — never a TypeError/AttributeError/ValueError/RecursionError."""
    from codexbro.api.chat_bridge import MAX_CALLS
    from codexbro.errors import FatalApiError

    hostile: list[dict[str, object]] = [
        {"choices": 7}, {"choices": True}, {"choices": [{"delta": [1]}]}, {"choices": [{"delta": "x"}]},
        {"choices": [{"delta": {"tool_calls": 5}}]}, {"choices": [{"delta": {"tool_calls": [{"function": "f"}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": "a", "id": {"a": 1}, "function": {"name": 3}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": [1]}, {"index": float("nan")}, {"index": 10**30}]}}]},
        {"id": {"x": 1}, "choices": [{"delta": {"content": {"no": "text"}, "reasoning_content": 5}}]},
    ]  # fmt: skip
    state = ChatStream(custom_tools=frozenset({"apply_patch"}))
    for c in hostile:
        state.feed(c)
    state.feed(
        chunk({"tool_calls": [{"index": 0, "function": {"name": "apply_patch", "arguments": "[" * 100_000}}]})
    )
    done = [e.item for e in state.finish() if isinstance(e, ev.OutputItemDone)]
    assert [d["type"] for d in done] == ["custom_tool_call"] and done[0]["input"].startswith("[[[")
    assert state.response_id and state.response_id.startswith("chatcmpl_")  # an id that was not a string
    # Calls without an index are told apart by id, not merged.
    two = ChatStream()
    two.feed(chunk({"tool_calls": [{"id": "c1", "function": {"name": "a", "arguments": '{"x":1}'}}]}))
    two.feed(chunk({"tool_calls": [{"id": "c2", "function": {"name": "b", "arguments": '{"y":2}'}}]}))
    calls = [e.item for e in two.finish() if isinstance(e, ev.OutputItemDone)]
    assert [(c["call_id"], c["arguments"]) for c in calls] == [("c1", '{"x":1}'), ("c2", '{"y":2}')]
    # Too many calls is refused, in the package's terms.
    many = ChatStream()
    try:
        for i in range(MAX_CALLS + 1):
            many.feed(chunk({"tool_calls": [{"index": i, "function": {"name": "a"}}]}))
    except FatalApiError as exc:
        assert "tool calls" in exc.message
    else:
        raise AssertionError("no limit on tool calls")


def test_text_is_gathered_in_linear_time() -> None:
    import time

    state = ChatStream()
    started = time.perf_counter()
    for _ in range(200_000):
        state.feed(chunk({"content": "abcdefgh"}))
    done = [e.item for e in state.finish() if isinstance(e, ev.OutputItemDone)]
    assert len(done[0]["content"][0]["text"]) == 1_600_000
    assert time.perf_counter() - started < 20  # quadratic appends took 70 s here


def test_an_empty_stream_or_an_error_string_is_not_a_success(home: Path, workspace: Path) -> None:
    with FakeChatServer() as chat:
        write_config(home, chat.base_url, provider_extra=BRIDGE)
        chat.add(ChatReply([]), ChatReply([{"error": "overloaded"}]))
        res = run_cli("exec", "--json", "go", cwd=workspace)
        assert res.code == 1
        failed = next(e for e in res.events() if e["type"] == "turn.failed")
        assert "overloaded" in failed["error"]["message"]
        assert len(chat.requests) == 2  # the empty stream retried as a disconnect, then the error


def test_debug_request_shows_the_chat_body_really_sent(home: Path, workspace: Path) -> None:
    write_config(home, "http://127.0.0.1:9/v1", provider_extra=BRIDGE)
    res = run_cli("debug", "request", "--json", "-C", str(workspace), "explain main.py")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    text = json.dumps(doc)
    assert "/v1/chat/completions" in text and '"messages"' in text and '"stream_options"' in text


def test_a_code_mode_model_keeps_its_menu_through_the_bridge(home: Path, workspace: Path) -> None:
    """gpt-6-sol's menu travels in an additional_tools item: over chat it becomes functions
    (exec, wait, clock__sleep, collaboration__…), and calls to them come back to the right tools."""
    import pytest

    pytest.importorskip("py_mini_racer", reason="code mode needs mini-racer (a dependency of codexbro)")
    with FakeChatServer() as chat:
        write_config(home, chat.base_url, provider_extra=BRIDGE, model="gpt-6-sol")
        chat.add(tool_reply("call_1", "exec", json.dumps({"input": 'text("hi from " + "js")'})),
                 tool_reply("call_2", "clock__sleep", json.dumps({"duration_ms": 5})),
                 text_reply("done"))  # fmt: skip
        res = run_cli(
            "exec", "--skip-git-repo-check", "-s", "danger-full-access", "go", cwd=workspace, timeout=120
        )
        assert res.code == 0, res.stderr[-2000:]
        first, second, third = chat.requests
    names = [t["function"]["name"] for t in first["tools"]]
    assert names[:2] == ["exec", "wait"] and "clock__sleep" in names and "collaboration__spawn_agent" in names
    assert first["parallel_tool_calls"] is False
    exec_out = next(m for m in second["messages"] if m["role"] == "tool")
    assert "hi from js" in exec_out["content"]
    call = next(m for m in third["messages"] if m.get("tool_calls") and m["tool_calls"][0]["id"] == "call_2")
    assert call["tool_calls"][0]["function"]["name"] == "clock__sleep"
    sleep_out = [m for m in third["messages"] if m["role"] == "tool"][-1]
    assert sleep_out["content"].endswith("Sleep completed.")


def test_agent_messages_and_namespaced_calls_translate() -> None:
    body = {"input": [
        {"type": "agent_message", "author": "/root", "recipient": "/root/w", "content": [
            {"type": "input_text", "text": "Message Type: NEW_TASK\nTask name: /root/w\nSender: /root\nPayload:\n"},
            {"type": "encrypted_content", "encrypted_content": "Count the files."}]},
        {"type": "function_call", "call_id": "c1", "name": "spawn_agent", "namespace": "collaboration",
         "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    ]}  # fmt: skip
    messages = to_chat_request(body)["messages"]
    assert messages[0] == {"role": "user", "content": "Message Type: NEW_TASK\nTask name: /root/w\nSender: "
                                                      "/root\nPayload:\nCount the files."}  # fmt: skip
    assert messages[1]["tool_calls"][0]["function"]["name"] == "collaboration__spawn_agent"
    stream = ChatStream(frozenset(), {"collaboration__spawn_agent": ("collaboration", "spawn_agent")})
    for raw in ({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c2", "function": {
                    "name": "collaboration__spawn_agent", "arguments": "{}"}}]}}]},
                {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}):  # fmt: skip
        stream.feed(raw)
    done = [e.item for e in stream.finish() if isinstance(e, ev.OutputItemDone)]
    assert done[0]["name"] == "spawn_agent" and done[0]["namespace"] == "collaboration"


def test_a_tool_whose_flat_name_is_taken_is_left_out() -> None:
    from codexbro.api.chat_bridge import menu_of

    fn = {"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {}}}
    body = {"tools": [{"type": "namespace", "name": "collaboration", "tools": [fn]},
                      {**fn, "name": "collaboration__spawn_agent", "description": "an impostor"}]}  # fmt: skip
    menu = menu_of(body)
    assert [t["function"]["name"] for t in menu.tools] == ["collaboration__spawn_agent"]
    assert menu.namespaced == {"collaboration__spawn_agent": ("collaboration", "spawn_agent")}

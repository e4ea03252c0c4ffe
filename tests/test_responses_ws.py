"""Responses over WebSocket against a loopback fake that records every frame: one socket per session
across turns, the prewarm, ``previous_response_id`` with only the new items, the turn-state
header, drops (retried on a new socket, whole request), error frames, and the fallback to HTTP/SSE
when the endpoint has no WebSocket — each handshake a trace record."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from codexbro import protocol as p
from codexbro.composition import start_session
from codexbro.config.loader import Overrides, load_config
from tests.conftest import run_cli, write_config
from tests.fakes.events import ev_completed, ev_created, ev_message, ev_shell_command, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply
from tests.fakes.ws_server import FakeWsServer, WsReply
from tests.test_ops import events_until, turn

WS = "supports_websockets = true"


def reply(resp_id: str, *items: dict[str, object]) -> WsReply:
    return WsReply([ev_created(resp_id), *items, ev_completed(resp_id)])


async def test_one_socket_prewarm_and_incremental_requests(home: Path, workspace: Path) -> None:
    with FakeWsServer(turn_state="ts-1") as ws:
        # A developer message opens the input: what upstream's prewarm sends.
        write_config(home, ws.base_url, provider_extra=WS, extra='developer_instructions = "Be brief."')
        ws.add(reply("resp_1", ev_shell_command("c1", "echo hi")), reply("resp_2", ev_message("done")),
               reply("resp_3", ev_message("second turn")))  # fmt: skip
        session = start_session(load_config(Overrides(cwd=workspace, flags={"approval_policy": "never"})))
        records: list[p.ModelRequest] = []
        session.submit(turn("first"))
        seen = await events_until(session)
        session.submit(turn("again"))
        seen += await events_until(session)
        await session.close()
        records = [m for m in seen if isinstance(m, p.ModelRequest)]
        assert [m.message for m in seen if isinstance(m, p.AgentMessage)] == ["done", "second turn"]
    assert len(ws.handshakes) == 1  # one socket for the whole session, across both turns
    hs = ws.handshakes[0]
    assert hs["path"] == "/v1/responses" and hs["openai-beta"] == "responses_websockets=2026-02-06"
    assert hs["authorization"].startswith("Bearer ") and hs["session-id"] == session.thread_id
    kinds = [(f.get("generate"), f.get("previous_response_id")) for f in ws.frames]
    # turn 1: prewarm, then the request on top of it, then only the tool output on top of resp_1;
    # turn 2: its own prewarm (a turn's baseline is its own), then the request on top of it.
    assert kinds == [
        (False, None),
        (None, "resp_warm1"),
        (None, "resp_1"),
        (False, None),
        (None, "resp_warm2"),
    ]
    warm, first, follow = ws.frames[0], ws.frames[1], ws.frames[2]
    assert warm["type"] == "response.create" and [i["role"] for i in warm["input"]] == ["developer"]
    assert first["input"][0]["role"] != "developer"  # the prewarmed message is not sent again
    assert [i["type"] for i in follow["input"]] == ["function_call_output"]
    assert follow["input"][0]["call_id"] == "c1" and "hi" in follow["input"][0]["output"]
    assert first["tools"] == follow["tools"] and first["model"] == "gpt-5.1-codex"
    assert [r.route for r in records if r.route == "responses.websocket"] == ["responses.websocket"]
    assert all(r.route != "responses.create" for r in records)  # no HTTP request at all


async def test_a_drop_is_retried_on_a_new_socket_with_the_whole_request(home: Path, workspace: Path) -> None:
    with FakeWsServer() as ws:
        write_config(home, ws.base_url, provider_extra=WS)
        ws.add(
            WsReply([ev_created("resp_1"), ev_message("partial")], drop_after=1),
            reply("resp_2", ev_message("whole")),
        )
        session = start_session(load_config(Overrides(cwd=workspace)))
        session.submit(turn("go"))
        seen = await events_until(session)
        await session.close()
    assert [m.message for m in seen if isinstance(m, p.AgentMessage)] == ["whole"]
    assert any(isinstance(m, p.StreamError) and "Reconnecting" in m.message for m in seen)
    assert len(ws.handshakes) == 2
    retry = ws.frames[-1]
    assert "previous_response_id" not in retry or retry["previous_response_id"] == "resp_warm2"
    assert any(
        i.get("role") == "user" for i in retry["input"]
    )  # the request again, not a suffix of a lost one


def test_error_frame_is_an_http_error(home: Path, workspace: Path) -> None:
    with FakeWsServer() as ws:
        write_config(home, ws.base_url, provider_extra=WS)
        ws.add(WsReply(error={"type": "error", "status_code": 400, "error": {
            "type": "invalid_request_error", "message": "unknown parameter: bogus"}}))  # fmt: skip
        res = run_cli("exec", "--json", "go", cwd=workspace)
    assert res.code == 1
    failed = next(e for e in res.events() if e["type"] == "turn.failed")
    assert "unknown parameter: bogus" in failed["error"]["message"]


def test_no_websocket_endpoint_falls_back_to_sse(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url, provider_extra=WS)  # the SSE fake answers the upgrade with 404
    fake.add(Reply(message_turn("over sse")))
    res = run_cli("exec", "--json", "go", cwd=workspace)
    assert res.code == 0, res.stderr
    assert any(e["type"] == "item.completed" and e["item"].get("text") == "over sse" for e in res.events())
    notes = [
        e["item"]["message"]
        for e in res.events()
        if e["type"] == "item.completed" and e["item"]["type"] == "error"
    ]
    assert any("WebSocket is off for this session" in n and "HTTP 404" in n for n in notes), notes
    assert [r.method for r in fake.requests] == ["GET", "POST"]  # one handshake, then SSE only


async def test_refused_with_426_then_http_for_the_rest_of_the_session(home: Path, fake: FakeResponsesServer,
                                                                      workspace: Path) -> None:  # fmt: skip
    with FakeWsServer(refuse_status=426) as ws:
        write_config(home, ws.base_url, provider_extra=WS)
        from codexbro.api.responses_ws import WsTransport

        transport = WsTransport(
            ws.base_url.replace("http", "ws") + "/responses", connect_timeout_s=5, max_failures=5
        )
        try:
            await transport.connect({"authorization": "Bearer x"})
        except Exception as exc:
            assert type(exc).__name__ == "WsUnavailable"
        assert transport.disabled == "the WebSocket handshake was answered HTTP 426"
        assert len(ws.handshakes) == 1  # sticky: nothing retried
    assert json.dumps(ws.handshakes[0]["path"]) == '"/v1/responses"'
    await asyncio.sleep(0)


async def test_frames_after_a_completed_response_are_never_the_next_answer(
    home: Path, workspace: Path
) -> None:
    """Red-team finding: a server that keeps sending after ``response.completed`` must not have its
    frames read as the next request's answer — the socket is replaced instead."""
    with FakeWsServer() as ws:
        write_config(home, ws.base_url, provider_extra=WS)
        ws.add(WsReply([ev_created("r1"), ev_message("answer one"), ev_completed("r1"),
                        ev_created("r_evil"), ev_message("STALE injected"), ev_completed("r_evil")]),
               reply("r2", ev_message("answer two")))  # fmt: skip
        session = start_session(load_config(Overrides(cwd=workspace)))
        session.submit(turn("one"))
        seen = await events_until(session)
        await asyncio.sleep(0.2)  # the stale frames arrive
        session.submit(turn("two"))
        seen += await events_until(session)
        await session.close()
    assert [m.message for m in seen if isinstance(m, p.AgentMessage)] == ["answer one", "answer two"]
    assert len(ws.handshakes) == 2  # the socket holding stale frames was not reused


def test_a_redirect_is_never_followed(home: Path, workspace: Path, fake: FakeResponsesServer) -> None:
    """Red-team finding: the library followed a 3xx with the provider's extra headers; now a
    redirect is a failed handshake, and nothing reaches the other host."""
    with FakeWsServer() as target, FakeWsServer(refuse_status=302) as ws:
        ws.redirect_to = (
            target.base_url.replace("http", "ws") + "/collect"
        )  # a live server: nothing may reach it
        write_config(
            home, ws.base_url, provider_extra=WS + '\nhttp_headers = { "x-api-key" = "secret-header" }'
        )
        from codexbro.api.responses_ws import WsTransport

        async def attempt() -> str:
            transport = WsTransport(
                ws.base_url.replace("http", "ws") + "/responses", connect_timeout_s=5, max_failures=0
            )
            try:
                await transport.connect({"x-api-key": "secret-header"})
            except Exception as exc:
                return str(exc)
            return "connected"

        message = asyncio.run(attempt())
    assert "HTTP 302" in message and target.handshakes == []


def test_odd_shapes_in_stream_events_are_ignored_not_internal_errors() -> None:
    """Red-team finding (shared with SSE): a non-object ``response`` or usage detail ended the turn
    with an internal AttributeError; deep nesting with a RecursionError."""
    import pytest

    from codexbro import textsafe
    from codexbro.api import events as ev
    from codexbro.api.responses import stream_event

    done = stream_event({"type": "response.completed", "response": [1, 2]}, "responses.create")
    assert isinstance(done, ev.Completed) and done.response_id is None
    usage = ev.TokenUsage.from_wire(
        {"input_tokens": 5, "input_tokens_details": [1], "output_tokens_details": "x"}
    )
    assert usage.input_tokens == 5 and usage.cached_input_tokens == 0
    created = stream_event(
        {"type": "response.created", "response": {"id": {"nested": 1}}}, "responses.create"
    )
    assert isinstance(created, ev.Created) and created.response_id is None
    with pytest.raises(ValueError):
        textsafe.loads("[" * 200_000 + "]" * 200_000)


def test_a_401_handshake_refreshes_the_login_and_opens_again(home: Path, workspace: Path,
                                                             fake: FakeResponsesServer) -> None:  # fmt: skip
    """A stale ChatGPT token on the WebSocket handshake: the login is refreshed and the socket opened
    again with the new token (not retried with the old one, not counted towards the SSE fallback)."""
    import time

    from tests.test_auth import _token_endpoint, jwt, write_chatgpt_auth

    old = jwt({"exp": int(time.time()) + 3600, "n": 1})
    new = jwt({"exp": int(time.time()) + 7200, "n": 2})
    with FakeWsServer(bearer=new) as ws:
        (home / "config.toml").write_text(
            'model = "gpt-5.1-codex"\nmodel_provider = "oa"\n[model_providers.oa]\nname = "OpenAI"\n'
            f'base_url = "{ws.base_url}"\nrequires_openai_auth = true\nsupports_websockets = true\n'
            "request_max_retries = 0\nstream_max_retries = 0\n"
        )
        write_chatgpt_auth(home, old)
        calls: list[object] = []
        url = _token_endpoint(fake, calls, (200, {"access_token": new, "refresh_token": "rt_2"}))  # type: ignore[arg-type]
        ws.add(reply("resp_1", ev_message("after refresh")))
        res = run_cli("exec", "--json", "hi", cwd=workspace, env={"CODEXBRO_REFRESH_TOKEN_URL_OVERRIDE": url})
    assert res.code == 0, res.stderr
    assert "after refresh" in res.stdout
    sockets = [h["authorization"] for h in ws.handshakes if h["path"] == "/v1/responses"]
    # upstream's recovery: the first 401 re-reads auth.json and tries again, the second refreshes
    assert sockets == [f"Bearer {old}", f"Bearer {old}", f"Bearer {new}"]
    assert len(calls) == 1 and json.loads((home / "auth.json").read_text())["tokens"]["access_token"] == new
    assert "falling back" not in res.stderr.lower() and not fake.responses_requests()  # stayed on the socket

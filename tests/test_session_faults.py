"""The session/turn core in-process against the fake server: the fault matrix, parallel tool calls,
interrupts through the Op protocol, and the route table seeing every request."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from codexbro import protocol as p
from codexbro.api.routes import ROUTES, bucket_for_url
from codexbro.composition import SessionOptions, start_session
from codexbro.config.loader import Overrides, load_config
from codexbro.core.session import Session
from tests.conftest import live_processes_with, write_config
from tests.fakes.events import (
    check_invariants,
    ev_completed,
    ev_created,
    ev_failed,
    ev_function_call,
    ev_local_shell_call,
    ev_message,
    ev_shell_command,
    message_turn,
)
from tests.fakes.responses_server import FakeResponsesServer, Reply


def make_session(home: Path, fake: FakeResponsesServer, cwd: Path, *, provider_extra: str = "",
                 model: str = "gpt-5.1-codex", sandbox: str = "workspace-write") -> Session:  # fmt: skip
    write_config(home, fake.base_url, provider_extra=provider_extra, model=model)
    config = load_config(Overrides(cwd=cwd, flags={"approval_policy": "never", "sandbox_mode": sandbox}))
    return start_session(config, SessionOptions(ephemeral=True))


async def run_turn(session: Session, prompt: str, *, timeout: float = 30) -> list[p.EventMsg]:
    session.submit(p.UserTurn((p.UserInput("text", text=prompt),)))
    seen: list[p.EventMsg] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = (await session.next_event()).msg
            seen.append(msg)
            if isinstance(msg, p.TaskComplete | p.TurnAborted):
                return seen


def of(kind: type[p.EventMsg], events: list[p.EventMsg]) -> list[p.EventMsg]:
    return [e for e in events if isinstance(e, kind)]


async def test_429_with_retry_after_is_honoured(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(
        Reply(status=429, headers={"retry-after": "1"}, body=b'{"error":{"message":"slow down please"}}'),
        Reply(message_turn("after the wait")),
    )
    session = make_session(home, fake, workspace)
    started = time.monotonic()
    events = await run_turn(session, "hi")
    elapsed = time.monotonic() - started
    await session.close()
    assert of(p.TaskComplete, events)[0].last_agent_message == "after the wait"  # type: ignore[attr-defined]
    (stream_error,) = of(p.StreamError, events)
    assert stream_error.message == "Reconnecting... 1/1"  # type: ignore[attr-defined]
    assert stream_error.codex_error_info == "rate_limited"  # type: ignore[attr-defined]
    assert elapsed >= 0.95  # waited the server's Retry-After, not the 200 ms backoff
    assert len(fake.requests) == 2


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_retried_at_request_layer(
    status: int, home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(Reply(status=status, body=b'{"error":{"message":"boom"}}'), Reply(message_turn("recovered")))
    session = make_session(home, fake, workspace)
    events = await run_turn(session, "hi")
    await session.close()
    assert of(p.TaskComplete, events)[0].last_agent_message == "recovered"  # type: ignore[attr-defined]
    assert of(p.StreamError, events) == []  # layer 1 absorbed it silently
    assert len(fake.requests) == 2


async def test_persistent_500_fails_after_both_layers(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(*[Reply(status=500, body=b'{"error":{"message":"down"}}') for _ in range(4)])
    session = make_session(home, fake, workspace)
    events = await run_turn(session, "hi")
    await session.close()
    (err,) = of(p.ErrorEvent, events)
    assert "server error 500" in err.message and "gave up after 2 attempt(s)" in err.message  # type: ignore[attr-defined]
    assert len(fake.requests) == 4  # (1 + request_max_retries) × (1 + stream_max_retries)


async def test_connection_reset_mid_stream_retries(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(
        Reply([ev_created(), ev_message("partial"), ev_completed()], reset_after=1),
        Reply(message_turn("whole")),
    )
    session = make_session(home, fake, workspace)
    events = await run_turn(session, "hi")
    await session.close()
    (se,) = of(p.StreamError, events)
    assert "stream disconnected" in (se.additional_details or "") or "closed" in (se.additional_details or "")  # type: ignore[attr-defined]
    assert of(p.TaskComplete, events)[0].last_agent_message == "whole"  # type: ignore[attr-defined]


async def test_clean_close_before_completed_retries(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(Reply([ev_created(), ev_completed()], close_after=1), Reply(message_turn("second try")))
    session = make_session(home, fake, workspace)
    events = await run_turn(session, "hi")
    await session.close()
    (se,) = of(p.StreamError, events)
    assert (
        se.additional_details
        == "stream disconnected before completion: stream closed before response.completed"
    )  # type: ignore[attr-defined]
    assert of(p.TaskComplete, events)[0].last_agent_message == "second try"  # type: ignore[attr-defined]


async def test_idle_stall_times_out_and_retries(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(Reply([ev_created(), ev_completed()], stall_after=1, stall_s=3), Reply(message_turn("unstuck")))
    session = make_session(home, fake, workspace, provider_extra="stream_idle_timeout_ms = 400")
    started = time.monotonic()
    events = await run_turn(session, "hi")
    await session.close()
    assert time.monotonic() - started < 2.5
    (se,) = of(p.StreamError, events)
    assert se.additional_details == "stream disconnected before completion: idle timeout waiting for SSE"  # type: ignore[attr-defined]
    assert of(p.TaskComplete, events)[0].last_agent_message == "unstuck"  # type: ignore[attr-defined]


async def test_malformed_sse_line_is_skipped(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    fake.add(Reply([ev_created(), ev_message("survived"), ev_completed()],
                   raw=b"data: {not json\n\n: a comment line\n\nevent: weird\ndata: [1,2]\n\n"))  # fmt: skip
    session = make_session(home, fake, workspace)
    events = await run_turn(session, "hi")
    await session.close()
    assert of(p.ErrorEvent, events) == [] and of(p.StreamError, events) == []
    assert of(p.TaskComplete, events)[0].last_agent_message == "survived"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("code", "fragment", "kind"),
    [
        ("insufficient_quota", "Quota exceeded", "usage_limit_exceeded"),
        ("server_is_overloaded", "at capacity", "server_overloaded"),
    ],
)
async def test_fatal_response_failed_not_retried(code: str, fragment: str, kind: str, home: Path,
                                                 fake: FakeResponsesServer, workspace: Path) -> None:  # fmt: skip
    fake.add(Reply([ev_created(), ev_failed(code, "details")]))
    session = make_session(home, fake, workspace)
    events = await run_turn(session, "hi")
    await session.close()
    (err,) = of(p.ErrorEvent, events)
    assert fragment in err.message and err.codex_error_info == kind  # type: ignore[attr-defined]
    assert len(fake.requests) == 1


async def test_rate_limit_failed_waits_parsed_delay(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(Reply([ev_created(), ev_failed("rate_limit_exceeded", "Please try again in 700ms.")]),
             Reply(message_turn("ok")))  # fmt: skip
    session = make_session(home, fake, workspace)
    started = time.monotonic()
    events = await run_turn(session, "hi")
    await session.close()
    assert time.monotonic() - started >= 0.65
    assert of(p.TaskComplete, events)[0].last_agent_message == "ok"  # type: ignore[attr-defined]


async def test_parallel_tool_calls_run_concurrently(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(
        Reply([ev_created(), ev_shell_command("a", "sleep 1; echo A"), ev_shell_command("b", "sleep 1; echo B"),
               ev_completed()]),
        Reply(message_turn("both")),
    )  # fmt: skip
    session = make_session(home, fake, workspace)
    started = time.monotonic()
    events = await run_turn(session, "hi")
    elapsed = time.monotonic() - started
    await session.close()
    assert elapsed < 1.8, f"two 1 s commands took {elapsed:.2f} s: not concurrent"
    body = fake.bodies()[1]
    check_invariants(body)
    outs = [i for i in body["input"] if i["type"] == "function_call_output"]
    assert [o["call_id"] for o in outs] == ["a", "b"]  # recorded in call order
    assert outs[0]["output"].endswith("A\n") and outs[1]["output"].endswith("B\n")
    assert len(of(p.ExecCommandEnd, events)) == 2


async def test_bad_tool_calls_answer_the_model(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(
        Reply([ev_created(),
               ev_function_call("u", "no_such_tool", {}),
               ev_function_call("j", "shell_command", "{not json"),
               ev_function_call("m", "shell_command", {"workdir": "/tmp"}),
               ev_function_call("t", "shell_command", {"command": 5}),
               ev_function_call("x", "shell_command", {"command": "true", "bogus": 1}),
               ev_function_call("w", "shell_command", {"command": "true", "workdir": "/definitely/missing"}),
               ev_function_call("e", "shell_command", {"command": "true", "sandbox_permissions": "require_escalated"}),
               ev_completed()]),
        Reply(message_turn("handled")),
    )  # fmt: skip
    session = make_session(home, fake, workspace)
    events = await run_turn(session, "hi")
    await session.close()
    assert of(p.TaskComplete, events)[0].last_agent_message == "handled"  # type: ignore[attr-defined]
    outputs = {
        i["call_id"]: i["output"] for i in fake.bodies()[1]["input"] if i["type"] == "function_call_output"
    }
    assert outputs["u"] == "unsupported call: no_such_tool"
    assert outputs["j"].startswith("failed to parse function arguments:")
    assert outputs["m"] == "failed to parse function arguments: missing field `command`"
    assert outputs["t"].startswith("failed to parse function arguments: `command` must be a string")
    assert "unknown field `bogus`" in outputs["x"]
    assert "/definitely/missing does not exist" in outputs["w"]
    assert outputs["e"].startswith("approval policy is Never; reject command")


async def test_local_shell_call_for_shell_type_local(home: Path, fake: FakeResponsesServer, workspace: Path,
                                                     tmp_path: Path) -> None:  # fmt: skip
    catalog = tmp_path / "models.json"
    catalog.write_text(
        '{"models":[{"slug":"mini-local","shell_type":"local","supports_parallel_tool_calls":false}]}'
    )
    fake.add(
        Reply([ev_created(), ev_local_shell_call("l1", ["echo", "hi"]), ev_completed()]),
        Reply(message_turn("k")),
    )
    write_config(home, fake.base_url, model="mini-local", extra=f'model_catalog_json = "{catalog}"')
    session = start_session(load_config(Overrides(cwd=workspace)), SessionOptions(ephemeral=True))
    await run_turn(session, "hi")
    await session.close()
    first, second = fake.bodies()
    assert first["tools"][0] == {"type": "local_shell"} and first["parallel_tool_calls"] is False
    out = next(i for i in second["input"] if i["type"] == "function_call_output")
    assert out["output"].startswith('{"output": "hi\\n", "metadata": {"exit_code": 0, "duration_seconds":')


async def test_interrupt_op_aborts_and_session_stays_usable(home: Path, fake: FakeResponsesServer,
                                                            workspace: Path) -> None:  # fmt: skip
    pidfile = workspace / "pid"
    fake.add(
        Reply(
            [ev_created(), ev_shell_command("c1", f"echo $$ > {pidfile}; exec sleep 30.3571"), ev_completed()]
        )
    )
    session = make_session(home, fake, workspace)
    session.submit(p.UserTurn((p.UserInput("text", text="start"),)))
    async with asyncio.timeout(20):
        while not (pidfile.exists() and pidfile.read_text().strip()):
            await asyncio.sleep(0.05)
    assert live_processes_with("sleep 30.3571")
    session.submit(p.Interrupt())
    async with asyncio.timeout(10):
        while not isinstance((await session.next_event()).msg, p.TurnAborted):
            pass
    await asyncio.sleep(0.1)
    assert live_processes_with("sleep 30.3571") == []
    fake.add(Reply(message_turn("fresh turn")))
    events = await run_turn(session, "next")
    await session.close()
    assert of(p.TaskComplete, events)[0].last_agent_message == "fresh turn"  # type: ignore[attr-defined]
    body = fake.bodies()[-1]
    check_invariants(body)
    assert any(i.get("output") == "aborted" for i in body["input"])
    assert any("<turn_aborted>" in c.get("text", "") for i in body["input"] if i["type"] == "message"
               for c in i["content"])  # fmt: skip


async def test_every_request_goes_through_the_route_table(home: Path, fake: FakeResponsesServer,
                                                          workspace: Path) -> None:  # fmt: skip
    fake.add(Reply([ev_created(), ev_shell_command("c", "true"), ev_completed()]), Reply(message_turn("x")))
    session = make_session(home, fake, workspace)
    records = []
    session.client.http.observers.append(records.append)  # type: ignore[attr-defined]
    await run_turn(session, "hi")
    await session.close()
    known = {r.name for r in ROUTES}
    assert [r.route for r in records] == ["responses.create", "responses.create"]
    assert all(r.route in known and r.bucket == "third_party" and r.status == 200 for r in records)
    assert len(records) == len(fake.requests)
    assert bucket_for_url("https://chatgpt.com/backend-api/codex/responses") == "codex_backend"
    assert bucket_for_url("https://chatgpt.com/backend-api/wham/usage") == "chatgpt_ecosystem"
    assert bucket_for_url("https://api.openai.com/v1/responses") == "public_api"

"""The Op protocol the front ends use (issue 15.5), driven in process through the scripted model
client (no sockets): steering and queueing input, rolling back turns, answering the model's
questions, forking a thread. Plus the composition root's purity (15.1)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from codexbro import protocol as p
from codexbro.api.scripted import Reply, ScriptedModelClient, calls, says
from codexbro.config.loader import Overrides, load_config
from codexbro.core.history import History
from codexbro.core.rollout import RolloutRecorder, load_rollout, new_thread_id
from codexbro.core.session import Session
from codexbro.models.catalog import ModelCatalog
from codexbro.protocol.items import message_text


def scripted_session(cwd: Path, replies: list[Reply], *, interactive: bool = False,
                     overrides: tuple[str, ...] = ()) -> tuple[Session, ScriptedModelClient]:  # fmt: skip
    config = load_config(
        Overrides(cwd=cwd, flags={"approval_policy": "never", "sandbox_mode": "read-only"},
                  cli_overrides=list(overrides))
    )  # fmt: skip
    model = ModelCatalog.bundled().resolve("gpt-5.1-codex").info
    client = ScriptedModelClient(replies)
    thread_id = new_thread_id()
    recorder = RolloutRecorder(config.codexbro_home, thread_id)
    recorder.write(
        "session_meta", {"id": thread_id, "cwd": str(cwd), "originator": "test", "cli_version": "0"}
    )
    session = Session(config=config, model=model, client=client, thread_id=thread_id, recorder=recorder,
                      history=History(), resumed=False, warnings=[], can_ask_user=interactive)  # fmt: skip
    return session, client


async def events_until(session: Session, done: int = 1, timeout: float = 30) -> list[p.EventMsg]:
    """Events until ``done`` turns have ended (task_complete / turn_aborted)."""
    seen: list[p.EventMsg] = []
    ended = 0
    async with asyncio.timeout(timeout):
        while ended < done:
            msg = (await session.next_event()).msg
            seen.append(msg)
            ended += isinstance(msg, p.TaskComplete | p.TurnAborted)
    return seen


def turn(text: str, when: str = "steer") -> p.UserTurn:
    return p.UserTurn((p.UserInput("text", text=text),), when=when)  # type: ignore[arg-type]


def user_texts(items: list[dict[str, Any]]) -> list[str]:
    return [message_text(i) for i in items if i.get("type") == "message" and i.get("role") == "user"]


async def test_a_turn_with_a_tool_call_runs_without_sockets(workspace: Path) -> None:
    session, client = scripted_session(
        workspace,
        [[calls("shell_command", {"command": "echo from-the-tool", "login": False})], [says("done")]],
    )
    session.submit(turn("run it"))
    seen = await events_until(session)
    await session.close()
    assert isinstance(seen[-1], p.TaskComplete) and seen[-1].last_agent_message == "done"
    outputs = [i for i in client.prompts[1].input if i["type"] == "function_call_output"]
    assert "from-the-tool" in outputs[0]["output"]


async def test_input_steered_into_a_running_turn_goes_with_its_next_request(workspace: Path) -> None:
    gate = asyncio.Event()
    session, client = scripted_session(
        workspace,
        [(gate, [calls("shell_command", {"command": "true", "login": False})]), [says("saw both")]],
    )
    session.submit(turn("first ask"))
    while not client.prompts:  # the first request is waiting on the gate
        await asyncio.sleep(0.01)
    session.submit(turn("and also this", when="steer"))
    gate.set()
    seen = await events_until(session)
    await session.close()
    assert sum(isinstance(e, p.TaskComplete) for e in seen) == 1
    assert "and also this" not in user_texts(client.prompts[0].input)
    assert user_texts(client.prompts[1].input)[-1] == "and also this"


async def test_a_queued_turn_runs_after_the_running_one(workspace: Path) -> None:
    gate = asyncio.Event()
    session, client = scripted_session(workspace, [(gate, [says("answer one")]), [says("answer two")]])
    session.submit(turn("question one"))
    while not client.prompts:
        await asyncio.sleep(0.01)
    session.submit(turn("question two", when="queue"))
    gate.set()
    seen = await events_until(session, done=2)
    await session.close()
    completes = [e for e in seen if isinstance(e, p.TaskComplete)]
    assert [c.last_agent_message for c in completes] == ["answer one", "answer two"]
    assert user_texts(client.prompts[0].input)[-1] == "question one"
    second = client.prompts[1].input
    assert user_texts(second)[-1] == "question two" and any(
        message_text(i) == "answer one" for i in second if i.get("role") == "assistant"
    )


async def test_rollback_drops_the_last_turns_and_a_resume_drops_them_too(workspace: Path) -> None:
    session, client = scripted_session(workspace, [[says("a1")], [says("a2")], [says("a3")]])
    for text in ("keep me", "drop me"):
        session.submit(turn(text))
        await events_until(session)
    session.submit(p.ThreadRollback(1))
    rolled = (await asyncio.wait_for(session.next_event(), 10)).msg
    assert isinstance(rolled, p.ThreadRolledBack) and rolled.num_turns == 1
    session.submit(turn("after the rollback"))
    await events_until(session)
    session.submit(p.ThreadRollback(9))
    refused = (await asyncio.wait_for(session.next_event(), 10)).msg
    assert isinstance(refused, p.ErrorEvent) and refused.codex_error_info == "thread_rollback_failed"
    await session.close()
    sent = user_texts(client.prompts[2].input)
    assert "keep me" in sent and "drop me" not in sent and sent[-1] == "after the rollback"
    assert "a2" not in json.dumps(client.prompts[2].input)
    resumed = user_texts(load_rollout(session.recorder.path).history)
    assert "keep me" in resumed and "after the rollback" in resumed and "drop me" not in resumed


QUESTION = {"questions": [{"id": "color", "header": "Color", "question": "Which color?", "options": [
    {"label": "Red (Recommended)", "description": "warm"}, {"label": "Blue", "description": "cool"}]}]}  # fmt: skip


@pytest.mark.parametrize("interactive", [True, False])
async def test_the_models_question_is_answered_through_the_protocol(
    interactive: bool, workspace: Path
) -> None:
    session, client = scripted_session(
        workspace, [[calls("request_user_input", QUESTION, call_id="q1")], [says("noted")]],
        interactive=interactive, overrides=("features.collaboration_modes=true",),
    )  # fmt: skip
    session.submit(turn("pick one"))
    seen: list[p.EventMsg] = []
    async with asyncio.timeout(30):
        while not isinstance(seen[-1:] and seen[-1], p.TaskComplete):
            msg = (await session.next_event()).msg
            seen.append(msg)
            if isinstance(msg, p.RequestUserInput):
                assert msg.call_id == "q1" and msg.questions[0]["id"] == "color"
                session.submit(p.UserInputAnswer("q1", {"color": "Blue"}))
    await session.close()
    output = next(i["output"] for i in client.prompts[1].input if i["type"] == "function_call_output")
    if interactive:
        assert json.loads(output) == {"answers": {"color": {"answers": ["Blue"]}}}
    else:
        assert not any(isinstance(e, p.RequestUserInput) for e in seen)
        assert output == "request_user_input is unavailable in Default mode"


async def test_an_answer_nobody_asked_for_is_a_warning(workspace: Path) -> None:
    session, _client = scripted_session(workspace, [])
    session.drain_events()
    session.submit(p.UserInputAnswer("nope", {"x": "y"}))
    warning = (await asyncio.wait_for(session.next_event(), 10)).msg
    await session.close()
    assert isinstance(warning, p.WarningEvent) and "no pending question with id `nope`" in warning.message


async def test_fork_copies_the_thread_into_a_new_session_file(workspace: Path) -> None:
    session, _client = scripted_session(workspace, [[says("a1")], [says("a2")]])
    for text in ("one", "two"):
        session.submit(turn(text))
        await events_until(session)
    session.submit(p.ForkThread())
    whole = (await asyncio.wait_for(session.next_event(), 10)).msg
    session.submit(p.ForkThread(drop_turns=1))
    shorter = (await asyncio.wait_for(session.next_event(), 10)).msg
    await session.close()
    assert isinstance(whole, p.ThreadForked) and isinstance(shorter, p.ThreadForked)
    assert whole.thread_id != session.thread_id and whole.rollout_path
    copy = load_rollout(Path(whole.rollout_path))
    assert copy.thread_id == whole.thread_id and copy.meta["forked_from_id"] == session.thread_id
    assert copy.history == session.history.items and copy.last_turn_context is not None
    assert shorter.rollout_path and user_texts(load_rollout(Path(shorter.rollout_path)).history)[-1] == "one"


async def test_ops_that_need_a_quiet_thread_wait_for_the_turn(workspace: Path) -> None:
    gate = asyncio.Event()
    session, client = scripted_session(workspace, [(gate, [says("done")])])
    session.submit(turn("busy"))
    while not client.prompts:
        await asyncio.sleep(0.01)
    session.drain_events()
    session.submit(p.ThreadRollback(1))
    warning = (await asyncio.wait_for(session.next_event(), 10)).msg
    gate.set()
    await events_until(session)
    await session.close()
    assert isinstance(warning, p.WarningEvent) and "thread_rollback after it completes" in warning.message


# ---- the composition root ---------------------------------------------------------------------------


def test_resolve_reads_only_through_its_readers_and_writes_nothing(home: Path, workspace: Path) -> None:
    from codexbro.auth.resolve import ProviderAuth
    from codexbro.composition import Readers, resolve

    asked: list[str] = []

    def auth(provider: Any, where: Path) -> ProviderAuth:
        asked.append("auth")
        return ProviderAuth("chatgpt", "tok", "a test login", account_id="acct")

    def catalog(where: Path, json_path: str | None) -> tuple[ModelCatalog, bool]:
        asked.append("catalog")
        return ModelCatalog.bundled(), True

    before = sorted(home.rglob("*"))
    config = load_config(Overrides(cwd=workspace))
    resolution = resolve(
        config, readers=Readers(auth=auth, catalog=catalog, embedded_runnable=lambda c: False)
    )
    assert asked == ["catalog", "auth"]
    assert sorted(home.rglob("*")) == before  # nothing written
    assert resolution.auth.source == "a test login" and resolution.refresh_catalog
    assert resolution.base_url.startswith("https://chatgpt.com/backend-api/codex")
    assert resolution.base_url_reason == "ChatGPT login → ChatGPT Codex backend"
    assert resolution.bucket == "codex_backend" and resolution.event().model == resolution.model.slug


# ---- found by review: the turn lifecycle's edges --------------------------------------------------------


async def test_shutdown_drops_queued_turns(workspace: Path) -> None:
    gate = asyncio.Event()
    session, client = scripted_session(workspace, [(gate, [says("one")]), [says("never")]])
    session.submit(turn("first"))
    while not client.prompts:
        await asyncio.sleep(0.01)
    session.submit(turn("queued second", when="queue"))
    session.submit(p.Shutdown())
    seen: list[p.EventMsg] = []
    async with asyncio.timeout(30):
        while not seen or not isinstance(seen[-1], p.ShutdownComplete):
            seen.append((await session.next_event()).msg)
    assert len(client.prompts) == 1
    assert not any(isinstance(e, p.UserMessage) and e.message == "queued second" for e in seen)


async def test_interrupt_drops_what_waited_behind_the_turn_and_the_session_goes_on(workspace: Path) -> None:
    gate = asyncio.Event()
    session, client = scripted_session(workspace, [(gate, [says("never")]), [says("fresh")]])
    session.submit(turn("first"))
    while not client.prompts:
        await asyncio.sleep(0.01)
    session.submit(turn("queued", when="queue"))
    session.submit(turn("steered"))
    session.submit(p.Interrupt())
    seen = await events_until(session)
    assert isinstance(seen[-1], p.TurnAborted)
    session.submit(turn("again"))
    seen = await events_until(session)
    await session.close()
    assert isinstance(seen[-1], p.TaskComplete) and seen[-1].last_agent_message == "fresh"
    assert len(client.prompts) == 2
    sent = user_texts(client.prompts[1].input)
    assert sent[-1] == "again" and "queued" not in sent and "steered" not in sent


async def test_an_interrupt_before_the_turn_ran_at_all_ends_it(workspace: Path) -> None:
    session, _client = scripted_session(workspace, [[says("after")]])
    session.submit(turn("started and stopped at once"))
    session.submit(p.Interrupt())  # the task has not run a single step yet
    seen = await events_until(session, timeout=10)
    assert isinstance(seen[-1], p.TurnAborted) and session.active is None
    session.submit(turn("next"))
    seen = await events_until(session, timeout=10)
    await session.close()
    assert isinstance(seen[-1], p.TaskComplete) and seen[-1].last_agent_message == "after"


async def test_input_steered_too_late_for_the_turn_gets_a_turn_of_its_own(workspace: Path) -> None:
    gate = asyncio.Event()
    session, client = scripted_session(workspace, [(gate, [says("answer one")]), [says("answer two")]])
    session.submit(turn("first"))
    while not client.prompts:
        await asyncio.sleep(0.01)
    session.submit(turn("one more thing"))  # the turn's last request is already under way
    gate.set()
    seen = await events_until(session, done=2)
    await session.close()
    assert [e.last_agent_message for e in seen if isinstance(e, p.TaskComplete)] == [
        "answer one",
        "answer two",
    ]
    assert user_texts(client.prompts[1].input)[-1] == "one more thing"


async def test_a_compaction_that_fails_unexpectedly_still_ends(workspace: Path) -> None:
    session, _client = scripted_session(workspace, [[says("a")]], overrides=("compaction_strategy=remote",))
    session.submit(turn("something to compact"))
    await events_until(session)
    session.submit(p.Compact())
    seen = await events_until(session, timeout=10)
    await session.close()
    errors = [e.message for e in seen if isinstance(e, p.ErrorEvent)]
    assert isinstance(seen[-1], p.TaskComplete) and any("compaction failed" in m for m in errors), seen


async def test_an_answer_of_the_wrong_kind_does_not_resolve_a_request(workspace: Path) -> None:
    session, client = scripted_session(
        workspace, [[calls("request_user_input", QUESTION, call_id="q1")], [says("ok")]],
        interactive=True, overrides=("features.collaboration_modes=true",),
    )  # fmt: skip
    session.submit(turn("ask me"))
    seen: list[p.EventMsg] = []
    async with asyncio.timeout(30):
        while not isinstance(seen[-1:] and seen[-1], p.TaskComplete):
            msg = (await session.next_event()).msg
            seen.append(msg)
            if isinstance(msg, p.RequestUserInput):
                session.submit(p.ExecApproval("q1", "approved"))  # the wrong kind: refused
                session.submit(p.UserInputAnswer("q1", {"color": "Red (Recommended)"}))
    await session.close()
    assert any(
        isinstance(e, p.WarningEvent) and "no pending approval request with id `q1`" in e.message
        for e in seen
    )
    output = next(i["output"] for i in client.prompts[1].input if i["type"] == "function_call_output")
    assert json.loads(output)["answers"]["color"]["answers"] == ["Red (Recommended)"]


async def test_an_ephemeral_session_cannot_be_forked(workspace: Path) -> None:
    session, _client = scripted_session(workspace, [])
    session.recorder.enabled = False
    session.drain_events()
    session.submit(p.ForkThread())
    msg = (await asyncio.wait_for(session.next_event(), 10)).msg
    await session.close()
    assert isinstance(msg, p.ErrorEvent) and "not recorded" in msg.message


def test_rollback_never_reaches_into_a_compaction() -> None:
    from codexbro.core.compact import SUMMARY_PREFIX
    from codexbro.core.history import drop_last_turns
    from codexbro.protocol.items import user_message

    compacted = [user_message("<environment_context>x</environment_context>"), user_message("u1"),
                 user_message("u2"), user_message(SUMMARY_PREFIX + "\n\nnotes"), user_message("u3"),
                 says("a3")]  # fmt: skip
    assert drop_last_turns(compacted, 1) == compacted[:4]
    assert drop_last_turns(compacted, 2) is None  # u1 and u2 live on in the summary


async def test_a_fork_of_a_resumed_session_keeps_its_meta(
    home: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codexbro.composition import SessionOptions, start_session

    session, _client = scripted_session(workspace, [[says("a1")]])
    session.submit(turn("one"))
    await events_until(session)
    await session.close()
    monkeypatch.setenv("CODEXBRO_API_KEY", "sk-test")
    config = load_config(Overrides(cwd=workspace))
    resumed = start_session(config, SessionOptions(resume=load_rollout(session.recorder.path)))
    resumed.drain_events()
    resumed.submit(p.ForkThread())
    forked = (await asyncio.wait_for(resumed.next_event(), 10)).msg
    await resumed.close()
    assert isinstance(forked, p.ThreadForked) and forked.rollout_path
    copy = load_rollout(Path(forked.rollout_path))
    assert copy.meta["cwd"] == str(workspace) and copy.meta["forked_from_id"] == session.thread_id
    assert copy.last_turn_context is not None and copy.last_turn_context["model"] == "gpt-5.1-codex"


async def test_a_body_that_does_not_decode_is_a_retryable_transport_error() -> None:
    from codexbro.api.http import RouteHttp
    from codexbro.api.responses import ResponsesClient
    from codexbro.errors import RetryableApiError

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"\x1f\x8b\x08\x00not gzip at all" * 3
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n"
                     b"content-length: %d\r\n\r\n" % len(body) + body)  # fmt: skip
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http = RouteHttp(tls=False)
    client = ResponsesClient(http, base_url=f"http://127.0.0.1:{port}/v1", request_max_retries=0)
    try:
        # the stream's own error (a body that stops making sense mid-way), retryable, with the cause
        with pytest.raises(RetryableApiError, match="stream disconnected before completion: DecodingError"):
            async for _event in client.stream({"model": "m"}, {}):
                pass
    finally:
        await http.aclose()
        server.close()


async def test_override_turn_context_checks_and_applies(workspace: Path) -> None:
    session, client = scripted_session(workspace, [[says("ok")]])
    session.drain_events()
    session.submit(p.OverrideTurnContext(approval_policy="sometimes"))
    bad = (await asyncio.wait_for(session.next_event(), 10)).msg
    session.submit(p.OverrideTurnContext(model="gpt-5.4"))
    fixed = (await asyncio.wait_for(session.next_event(), 10)).msg  # no lookup given: the model stays
    session.submit(
        p.OverrideTurnContext(approval_policy="untrusted", sandbox_mode="workspace-write", effort="low")
    )
    good = (await asyncio.wait_for(session.next_event(), 10)).msg
    session.submit(turn("go"))
    await events_until(session)
    await session.close()
    assert isinstance(bad, p.ErrorEvent) and "`sometimes` is not a valid approval_policy" in bad.message
    assert isinstance(fixed, p.ErrorEvent) and "cannot change" in fixed.message
    assert isinstance(good, p.SessionConfigured)
    assert (good.approval_policy, good.sandbox_policy, good.reasoning_effort) == (
        "untrusted",
        "workspace-write",
        "low",
    )
    assert "workspace-write" in json.dumps(client.prompts[0].input)

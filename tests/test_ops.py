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

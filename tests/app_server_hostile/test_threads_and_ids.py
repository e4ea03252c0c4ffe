"""Stored threads addressed by id (thread/read, thread/archive, thread/resume, thread/list) and
threads shared between WebSocket connections.

Every test here FAILS on the code it was written against; each says what should happen instead."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.app_server_client import WsClient, spawn, spawn_ws
from tests.conftest import write_config
from tests.fakes.events import ev_completed, ev_created, ev_shell_command, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply

FULL = {"approvalPolicy": "never", "sandbox": "danger-full-access"}


async def test_archive_with_an_empty_thread_id_moves_nothing(
    home: Path, workspace: Path, tmp_path: Path
) -> None:
    # What happens now: core.rollout.find_rollout matches `p.stem.endswith(thread_id)`; "" (which
    # pa.require accepts: it is a string) ends every name, so thread/archive {"threadId": ""} moves
    # the NEWEST session of any directory to archived_sessions/ - here one that is loaded and
    # recording, without closing it - and says thread/archived {"threadId": ""}. Any suffix works
    # the same ("3" picks some session whose id ends in 3), for read, resume and fork too.
    # Upstream parses the id as a UUID and answers "invalid thread id". What should happen: ids are
    # matched exactly (the 8-character prefix rule is a CLI convenience, not a protocol one), and
    # an empty or unknown id is an error that touches nothing.
    with FakeResponsesServer([Reply(message_turn("stored"))]) as fake:
        write_config(home, fake.base_url)
        client = await spawn(workspace, tmp_path)
        try:
            thread = (await client.call("thread/start", FULL))["result"]["thread"]
            await client.call(
                "turn/start", {"threadId": thread["id"], "input": [{"type": "text", "text": "keep"}]}
            )
            await client.notification("turn/completed")
            before = sorted(home.rglob("rollout-*.jsonl"))
            assert [p.parent.name for p in before] != ["archived_sessions"]
            reply = await client.call("thread/archive", {"threadId": ""})
            assert "error" in reply, reply
            assert sorted(home.rglob("rollout-*.jsonl")) == before
        finally:
            assert await client.close() == 0


@pytest.mark.parametrize("which", ["last-char", "suffix"])
async def test_read_does_not_resolve_a_partial_id(
    which: str, home: Path, workspace: Path, tmp_path: Path
) -> None:
    # Same root cause as above (find_rollout's suffix match): thread/read with the last character of
    # an id, or its last 12, answers with that thread. What should happen: "no rollout found".
    with FakeResponsesServer([Reply(message_turn("stored"))]) as fake:
        write_config(home, fake.base_url)
        client = await spawn(workspace, tmp_path)
        try:
            thread = (await client.call("thread/start", FULL))["result"]["thread"]
            await client.call(
                "turn/start", {"threadId": thread["id"], "input": [{"type": "text", "text": "keep"}]}
            )
            await client.notification("turn/completed")
            partial = thread["id"][-1:] if which == "last-char" else thread["id"][-12:]
            reply = await client.call("thread/read", {"threadId": partial})
            assert "error" in reply, reply
        finally:
            assert await client.close() == 0


async def test_a_thread_running_on_one_connection_cannot_get_a_second_live_session(
    home: Path, workspace: Path
) -> None:
    # What happens now: every WebSocket connection has its own AppServer; connection B's
    # thread/resume of a thread that A has loaded (a turn running) opens a second core Session on
    # the same rollout file (status idle, without A's running turn), and B's turn/start runs a
    # second turn concurrently: both sessions append to one file, whose history becomes B's message
    # and answer wedged between A's function_call and its output. Upstream keeps one live thread per
    # id in the server and connections share it. What should happen: B's resume attaches to the
    # live thread (or is refused while another connection has it), so a second turn on the thread
    # is refused while A's runs.
    pytest.importorskip("websockets")
    from websockets.asyncio.client import connect

    script = [Reply([ev_created(), ev_shell_command("c1", "sleep 3", login=False), ev_completed()]),
              Reply(message_turn("b's answer")), Reply(message_turn("a's answer"))]  # fmt: skip
    with FakeResponsesServer(script) as fake:
        write_config(home, fake.base_url)
        proc, url, token = await spawn_ws(workspace)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with (
                connect(url, additional_headers=headers) as wa,
                connect(url, additional_headers=headers) as wb,
            ):
                a, b = WsClient(wa), WsClient(wb)
                for c in (a, b):
                    await c.call("initialize", {"clientInfo": {"name": "x", "version": "1"}})
                thread = (await a.call("thread/start", FULL))["result"]["thread"]
                await a.call(
                    "turn/start", {"threadId": thread["id"], "input": [{"type": "text", "text": "A"}]}
                )
                await a.notification("item/started")
                await asyncio.sleep(0.5)
                await b.call("thread/resume", {"threadId": thread["id"]})
                second = await b.call("turn/start", {"threadId": thread["id"],
                                                     "input": [{"type": "text", "text": "B"}]})  # fmt: skip
                if "result" in second:
                    await b.notification("turn/completed")
                await a.notification("turn/completed")
                assert "error" in second, "a second turn ran on a thread whose turn was running"
        finally:
            proc.terminate()
            await proc.wait()


async def test_thread_list_with_a_bad_cursor_or_limit_is_invalid_params(home: Path, workspace: Path,
                                                                        tmp_path: Path) -> None:  # fmt: skip
    # What happens now: params.thread_list does int(cursor): a cursor that is not a number is a
    # -32603 "Internal error: ValueError" (a logged traceback); a negative limit is accepted and
    # answers a strange page (list_sessions(limit=0) still returns one session). Upstream: "invalid
    # cursor: xxx" and "expected u32". What should happen: -32602 naming `cursor` / `limit`.
    with FakeResponsesServer() as fake:
        write_config(home, fake.base_url)
        client = await spawn(workspace, tmp_path)
        try:
            bad_cursor = await client.call("thread/list", {"cursor": "xxx"})
            negative = await client.call("thread/list", {"limit": -1})
            assert bad_cursor.get("error", {}).get("code") == -32602, bad_cursor
            assert negative.get("error", {}).get("code") == -32602, negative
        finally:
            assert await client.close() == 0


async def test_thread_start_config_of_the_wrong_type_is_invalid_params(home: Path, workspace: Path,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    # What happens now: thread/start's `config` overrides go into the "flag" layer of load_config,
    # which - unlike config.toml and -c - is not validated: {"model": 5} is "-32603 Internal error:
    # TypeError", {"model_providers.fake.base_url": 5} "-32603 ... AttributeError", and
    # {"sandbox_mode": "bogus"} is accepted silently. What should happen: the overrides are validated
    # like -c values (config.keys / validate) and refused with -32602 naming the key.
    with FakeResponsesServer() as fake:
        write_config(home, fake.base_url)
        client = await spawn(workspace, tmp_path)
        try:
            answers = [await client.call("thread/start", {"config": config}) for config in (
                {"model": 5}, {"model_providers.fake.base_url": 5}, {"sandbox_mode": "bogus"})]  # fmt: skip
            codes = [a.get("error", {}).get("code") for a in answers]
            assert codes == [-32602, -32602, -32602], json.dumps(answers)[:800]
        finally:
            assert await client.close() == 0

"""Turns, their settings and the approvals they ask (src/codexbro/appserver/server.py, threads.py,
params.py) under odd input and racing requests.

Every test here FAILS on the code it was written against; each says what should happen instead."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.app_server_client import spawn
from tests.conftest import write_config
from tests.fakes.events import ev_completed, ev_created, ev_shell_command, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply

FULL = {"approvalPolicy": "never", "sandbox": "danger-full-access"}


async def test_a_lone_surrogate_in_the_input_does_not_wedge_the_thread(home: Path, workspace: Path,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    # What happens now: the input text "\ud800" (valid JSON) becomes the userMessage item; the
    # thread's pump (threads.LiveThread._pump) calls conn.notify, serve.write's encode("utf-8")
    # raises UnicodeEncodeError and the pump task dies. No notification of that thread is ever sent
    # again: turn/completed never comes, turn/start answers "turn ... is running" forever, and
    # turn/interrupt cannot help (turn_done is never set). What should happen: the text reaches the
    # client with U+FFFD (Connection.send making any line valid UTF-8), or the request is refused;
    # either way the turn completes and the thread stays usable.
    with FakeResponsesServer([Reply(message_turn("one")), Reply(message_turn("two"))]) as fake:
        write_config(home, fake.base_url)
        client = await spawn(workspace, tmp_path)
        try:
            thread = (await client.call("thread/start", FULL))["result"]["thread"]
            await client.raw(json.dumps({"id": 1, "method": "turn/start", "params": {
                "threadId": thread["id"], "input": [{"type": "text", "text": "hi \ud800 there"}]}}).encode() + b"\n")  # fmt: skip
            first = await client.wait(lambda m: m.get("id") == 1)
            if "result" in first:
                try:
                    await client.notification("turn/completed", timeout=8)
                except TimeoutError:
                    pytest.fail("no turn/completed: the thread's notification pump died")
            again = await client.call("turn/start", {"threadId": thread["id"],
                                                     "input": [{"type": "text", "text": "plain"}]})  # fmt: skip
            assert "result" in again, again
        finally:
            client.kill()
            await client.proc.wait()


async def test_fuzzy_file_search_answers_with_a_non_utf8_file_name(home: Path, workspace: Path,
                                                                   tmp_path: Path) -> None:  # fmt: skip
    # What happens now: outside a git repository mentions.workspace_files walks the directory with
    # os.walk, which gives undecodable names as lone surrogates (surrogateescape); the reply cannot
    # be encoded (UnicodeEncodeError in serve.write) and is never sent: the client waits forever.
    # What should happen: an answer (the name with U+FFFD, or the file left out).
    plain = tmp_path / "plain"
    plain.mkdir()
    with open(os.path.join(os.fsencode(plain), b"report-\xff.txt"), "w"):
        pass
    with FakeResponsesServer() as fake:
        write_config(home, fake.base_url)
        client = await spawn(workspace, tmp_path)
        try:
            try:
                reply = await client.call(
                    "fuzzyFileSearch", {"query": "report", "roots": [str(plain)]}, timeout=5
                )
            except TimeoutError:
                pytest.fail(f"fuzzyFileSearch never answered; stderr: {client.stderr[-300:]}")
            assert "result" in reply
        finally:
            client.kill()
            await client.proc.wait()


async def test_a_bad_effort_does_not_silently_drop_the_approval_policy(home: Path, workspace: Path,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    # What happens now: turn/start {approvalPolicy: "untrusted", effort: "bogus"} is accepted;
    # pa.turn_override builds one OverrideTurnContext, thread_ops.override rejects the whole op on the
    # bad effort (an ErrorEvent emitted before the turn starts, which TurnMapper drops because no turn
    # is running), so the approval policy the client asked for is never applied: the command runs
    # unasked under the thread's "never". The same happens to sandboxPolicy (e.g. readOnly) and to
    # a model the session cannot switch to. What should happen: turn/start answers -32602 naming
    # `effort` (checked before anything is submitted), or the valid settings are applied.
    script = [Reply([ev_created(), ev_shell_command("c1", "touch made.txt", login=False), ev_completed()]),
              Reply(message_turn("done"))]  # fmt: skip
    with FakeResponsesServer(script) as fake:
        write_config(home, fake.base_url)
        client = await spawn(workspace, tmp_path)
        asked: list[str] = []

        def answer(request: dict[str, Any]) -> Any:
            asked.append(request["method"])
            return {"decision": "decline"}

        client.answer = answer
        try:
            thread = (await client.call("thread/start", FULL))["result"]["thread"]
            reply = await client.call("turn/start", {"threadId": thread["id"], "approvalPolicy": "untrusted",
                                                     "effort": "bogus", "input": [{"type": "text", "text": "go"}]})  # fmt: skip
            if "result" in reply:
                await client.notification("turn/completed")
                assert asked, "the command ran without the approval the client asked for"
                assert not (workspace / "made.txt").exists()
            else:
                assert reply["error"]["code"] == -32602 and "effort" in reply["error"]["message"]
        finally:
            assert await client.close() == 0


async def test_two_pipelined_turn_starts_are_not_both_accepted_as_one_turn(home: Path, workspace: Path,
                                                                           tmp_path: Path) -> None:  # fmt: skip
    # What happens now: both requests arrive in one read; m_turn_start checks thread.running_turn,
    # which is only set when the pump sees TaskStarted, so the second passes the check, its input is
    # submitted as a steer (or, after the first turn's last request, a turn of its own) and BOTH
    # replies carry the first turn's id - the second input then runs as a turn whose id the client
    # was never given. docs/app-server.md: "a second turn/start while a turn runs is refused".
    # What should happen: the second is refused (-32600, use turn/steer), or it gets a turn id of
    # its own with its own turn/completed.
    script = [Reply(message_turn("one"), event_delay_s=0.3), Reply(message_turn("two"), event_delay_s=0.3)]
    with FakeResponsesServer(script) as fake:
        write_config(home, fake.base_url)
        client = await spawn(workspace, tmp_path)
        try:
            thread = (await client.call("thread/start", FULL))["result"]["thread"]
            requests = [{"id": n, "method": "turn/start", "params": {"threadId": thread["id"],
                         "input": [{"type": "text", "text": f"turn {n}"}]}} for n in (1, 2)]  # fmt: skip
            await client.raw("".join(json.dumps(r) + "\n" for r in requests).encode())
            first = await client.wait(lambda m: m.get("id") == 1)
            second = await client.wait(lambda m: m.get("id") == 2)
            assert "result" in first
            if "result" in second:
                assert second["result"]["turn"]["id"] != first["result"]["turn"]["id"], (first, second)
        finally:
            assert await client.close() == 0


async def test_an_interrupted_turns_late_approval_answer_leaves_the_thread_idle(
    home: Path, workspace: Path, tmp_path: Path
) -> None:
    # What happens now: the turn is interrupted while its command approval waits; the request stays
    # open (no serverRequest/resolved when the turn ends), and when the client answers it later
    # LiveThread._request sends serverRequest/resolved plus thread/status/changed {active} - for a
    # thread that is idle (thread/read says idle). A client's UI shows the thread busy for good.
    # What should happen: the approvals of a turn that ends are resolved with it (serverRequest/
    # resolved then), and no "active" status is sent for a thread with no running turn.
    script = [Reply([ev_created(), ev_shell_command("c1", "touch made.txt", login=False), ev_completed()]),
              Reply(message_turn("done"))]  # fmt: skip
    with FakeResponsesServer(script) as fake:
        write_config(home, fake.base_url)
        client = await spawn(workspace, tmp_path)
        client.answer = None
        try:
            thread = (await client.call("thread/start", {"approvalPolicy": "untrusted",
                                                         "sandbox": "danger-full-access"}))["result"]["thread"]  # fmt: skip
            turn = await client.call("turn/start", {"threadId": thread["id"],
                                                    "input": [{"type": "text", "text": "go"}]})  # fmt: skip
            request = await client.wait(lambda m: m.get("method") == "item/commandExecution/requestApproval")
            await client.call(
                "turn/interrupt", {"threadId": thread["id"], "turnId": turn["result"]["turn"]["id"]}
            )
            await client.notification("turn/completed")
            await client.send({"id": request["id"], "result": {"decision": "accept"}})
            await client.call("model/list", {})  # let the late answer be handled
            read = await client.call("thread/read", {"threadId": thread["id"]})
            statuses = [
                m["params"]["status"] for m in client.seen if m.get("method") == "thread/status/changed"
            ]
            assert statuses[-1] == read["result"]["thread"]["status"] == {"type": "idle"}, statuses[-3:]
        finally:
            assert await client.close() == 0


async def test_a_local_image_that_is_not_an_image_is_not_sent_to_the_provider(
    home: Path, workspace: Path, tmp_path: Path
) -> None:
    # What happens now: params.user_inputs only checks Path.is_file(); protocol.items._data_url reads
    # the whole file (any size, on the event loop) and sends it base64 as "image/png": a localImage
    # path naming a secret (auth.json, a key) puts its bytes in the request to the model provider.
    # The view_image tool checks size (MAX_IMAGE_BYTES) and sniffs the format (image_mime); upstream
    # decodes the image and never sends a file that is not one. What should happen: -32602 naming
    # `input[0].path` (not an image / too large), and nothing of the file leaves the machine.
    secret = tmp_path / "auth.json"
    secret.write_text('{"OPENAI_API_KEY": "sk-very-secret-value"}')
    with FakeResponsesServer([Reply(message_turn("seen"))]) as fake:
        write_config(home, fake.base_url)
        client = await spawn(workspace, tmp_path)
        try:
            thread = (await client.call("thread/start", FULL))["result"]["thread"]
            reply = await client.call("turn/start", {"threadId": thread["id"], "input": [
                {"type": "text", "text": "look"}, {"type": "localImage", "path": str(secret)}]})  # fmt: skip
            if "result" in reply:
                await client.notification("turn/completed")
            sent = json.dumps(fake.bodies())
            assert base64.b64encode(secret.read_bytes()).decode() not in sent
            assert "error" in reply and reply["error"]["code"] == -32602
        finally:
            assert await client.close() == 0

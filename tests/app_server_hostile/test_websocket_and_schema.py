"""The WebSocket listener's handshake and CLI checks (src/codexbro/appserver/serve.py), and replies
that do not validate against upstream 0.169's vendored schema.

Every test here FAILS on the code it was written against; each says what should happen instead."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app_server_client import spawn, spawn_ws, validator
from tests.conftest import write_config
from tests.fakes.responses_server import FakeResponsesServer


async def _handshake(url: str, headers: list[tuple[str, str]]) -> str:
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")  # fmt: skip
    request += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    writer.write(request.encode("latin-1"))
    await writer.drain()
    status = (await asyncio.wait_for(reader.readline(), 10)).decode().strip()
    writer.close()
    await writer.wait_closed()
    return status


async def test_handshake_authorization_edge_cases(home: Path, workspace: Path) -> None:
    # What happens now (serve._websocket.check):
    # - two Authorization headers: websockets' Headers.get raises MultipleValuesError inside
    #   process_request -> "500 Internal Server Error" and a traceback on stderr; should be 401.
    # - "authorization: bearer TOKEN" (RFC 7235: the scheme is case-insensitive) -> 401 because of
    #   removeprefix("Bearer "); should be accepted like "Bearer".
    with FakeResponsesServer() as fake:
        write_config(home, fake.base_url)
        proc, url, token = await spawn_ws(workspace)
        try:
            twice = await _handshake(
                url, [("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {token}")]
            )
            lower = await _handshake(url, [("Authorization", f"bearer {token}")])
            assert twice.split()[1] == "401", twice
            assert lower.split()[1] == "101", lower
        finally:
            proc.terminate()
            await proc.communicate()


@pytest.mark.parametrize("listen", ["ws://127.0.0.1:abc", "ws://127.0.0.1:99999"])
def test_a_bad_listen_port_is_one_line_not_a_traceback(listen: str, home: Path) -> None:
    # What happens now: serve.parse_listen reads urlsplit(value).port, which raises ValueError for a
    # port that is not a number or out of range: the CLI prints a Python traceback. What should
    # happen: "Error: --listen ...: bad port" and exit 2 (a UserError), like the other --listen checks.
    proc = subprocess.run([sys.executable, "-m", "codexbro", "app-server", "--listen", listen],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr[-600:]
    assert proc.returncode != 0


async def test_on_failure_approval_policy_reply_validates(
    home: Path, workspace: Path, tmp_path: Path
) -> None:
    # What happens now: codexbro accepts approvalPolicy "on-failure" (its own ApprovalPolicy has it)
    # and echoes it in ThreadStartResponse.approvalPolicy; 0.169's AskForApproval has no
    # "on-failure" (upstream answers "-32600 unknown variant `on-failure`"), so the reply does not
    # validate. Same for a config.toml with approval_policy = "on-failure" (thread/start and
    # config/read). What should happen: refuse it in params as upstream does, and map a configured
    # on-failure to a value the schema has ("on-request") in replies.
    with FakeResponsesServer() as fake:
        write_config(home, fake.base_url)
        client = await spawn(workspace, tmp_path)
        try:
            reply = await client.call("thread/start", {"approvalPolicy": "on-failure"})
            if "result" in reply:
                errors = [e.message for e in validator("ThreadStartResponse").iter_errors(reply["result"])]
                assert not errors, errors
        finally:
            assert await client.close() == 0


@pytest.mark.parametrize("extra", ['[tools]\nweb_search = true', '[approval_policy]\nreject = { sandbox_approval = true }'],
                         ids=["tools-web-search-bool", "legacy-approval-table"])  # fmt: skip
async def test_config_read_validates_for_documented_config(extra: str, home: Path, workspace: Path,
                                                           tmp_path: Path) -> None:  # fmt: skip
    # What happens now: params.config_read returns config.raw as is. `[tools] web_search = true`
    # (docs/config-keys.md: tools is "switch built-in tools on or off") fails 0.169's
    # Config.tools.web_search (a WebSearchToolConfig object or null); an approval_policy table
    # other than {granular: {...}} fails AskForApproval. What should happen: config/read converts
    # codexbro's values to the schema's shapes (as upstream converts its TOML) or leaves out what
    # it cannot express, so ConfigReadResponse validates.
    with FakeResponsesServer() as fake:
        write_config(home, fake.base_url, extra=extra)
        client = await spawn(workspace, tmp_path)
        try:
            reply = await client.call("config/read", {})
            errors = [e.message for e in validator("ConfigReadResponse").iter_errors(reply["result"])]
            assert not errors, errors
        finally:
            assert await client.close() == 0


async def test_a_command_exec_does_not_outlive_its_websocket_client(home: Path, workspace: Path) -> None:
    # What happens now: command/exec runs inside the connection's request task (Connection._spawn);
    # when the WebSocket closes, serve._websocket's handler closes the AppServer's threads but not
    # the connection's running requests, so the command (here with disableTimeout) keeps running
    # for as long as the listener lives - nobody can read its result or stop it. What should
    # happen: closing a connection cancels its running requests (run_process kills the process
    # group on cancellation), as it already closes its threads.
    pytest.importorskip("websockets")
    import json

    from websockets.asyncio.client import connect

    from tests.app_server_client import WsClient
    from tests.conftest import live_processes_with

    marker = f"61.{os.getpid()}"
    with FakeResponsesServer() as fake:
        write_config(home, fake.base_url)
        proc, url, token = await spawn_ws(workspace)
        try:
            async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
                client = WsClient(ws)
                await client.call("initialize", {"clientInfo": {"name": "x", "version": "1"}})
                await ws.send(json.dumps({"id": 50, "method": "command/exec", "params": {
                    "command": ["sleep", marker], "disableTimeout": True,
                    "sandboxPolicy": {"type": "dangerFullAccess"}}}))  # fmt: skip
                for _ in range(50):
                    if live_processes_with(marker):
                        break
                    await asyncio.sleep(0.1)
                assert live_processes_with(marker)
            await asyncio.sleep(2)
            assert live_processes_with(marker) == [], "the command outlived its client"
        finally:
            proc.terminate()
            await proc.wait()
            for pid in live_processes_with(marker):
                os.kill(pid, 9)

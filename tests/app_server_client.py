"""A stdio client of ``codexbro app-server`` for the tests (tests/test_app_server.py and the hostile
clients in tests/app_server_hostile): it keeps everything the server sends (and its stderr),
answers the server's requests, and validates every message against upstream 0.169's schema."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

SCHEMAS = Path(__file__).parent / "fixtures" / "app-server-schema-0.169"
V2 = json.loads((SCHEMAS / "codex_app_server_protocol.v2.schemas.json").read_text())
NOTIFICATIONS = Draft7Validator(json.loads((SCHEMAS / "ServerNotification.json").read_text()))
REQUESTS = Draft7Validator(json.loads((SCHEMAS / "ServerRequest.json").read_text()))
RESPONSES = {
    "thread/start": "ThreadStartResponse", "thread/resume": "ThreadResumeResponse",
    "thread/fork": "ThreadForkResponse", "thread/list": "ThreadListResponse", "thread/read": "ThreadReadResponse",
    "thread/archive": "ThreadArchiveResponse", "turn/start": "TurnStartResponse",
    "turn/interrupt": "TurnInterruptResponse", "turn/steer": "TurnSteerResponse", "model/list": "ModelListResponse",
    "config/read": "ConfigReadResponse", "account/read": "GetAccountResponse",
    "account/logout": "LogoutAccountResponse", "thread/compact/start": "ThreadCompactStartResponse",
    "mcpServerStatus/list": "ListMcpServerStatusResponse",
}  # fmt: skip


def validator(name: str) -> Draft7Validator:
    return Draft7Validator({"$ref": f"#/definitions/{name}", "definitions": V2["definitions"]})


class Client:
    """``codexbro app-server`` over stdio."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr: Path) -> None:
        self.proc = proc
        self.stderr_path = stderr
        self.seen: list[dict[str, Any]] = []
        self.bad_lines: list[bytes] = []
        self.sent_methods: dict[Any, str] = {}
        self.answer: Callable[[dict[str, Any]], Any] | None = lambda _req: {"decision": "accept"}
        self._next = 100
        self._arrived = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                message = json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
            except ValueError:
                self.bad_lines.append(line)
                self._arrived.set()
                continue
            self.seen.append(message)
            self._arrived.set()
            if "method" in message and "id" in message and self.answer is not None:
                reply = self.answer(message)
                if reply is not None:
                    await self.send({"id": message["id"], "result": reply})
        self._arrived.set()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    async def send(self, message: dict[str, Any]) -> None:
        await self.raw(json.dumps(message).encode() + b"\n")

    async def raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    async def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for message in self.seen:
                    if match(message):
                        return message
                if self._reader.done():
                    raise AssertionError(f"the server's stdout closed; stderr:\n{self.stderr[-3000:]}")
                self._arrived.clear()
                await self._arrived.wait()

    async def call(self, method: str, params: Any = None, timeout: float = 20) -> dict[str, Any]:
        self._next += 1
        request_id = self._next
        self.sent_methods[request_id] = method
        await self.send({"id": request_id, "method": method, "params": {} if params is None else params})
        return await self.wait(
            lambda m: m.get("id") == request_id and ("result" in m or "error" in m), timeout
        )

    async def notification(
        self, method: str, after: int = 0, timeout: float = 20, **where: Any
    ) -> dict[str, Any]:
        def match(m: dict[str, Any]) -> bool:
            return (m.get("method") == method and "id" not in m
                    and all(m["params"].get(k) == v for k, v in where.items()))  # fmt: skip

        return await self.wait(lambda m: match(m) and self.seen.index(m) >= after, timeout)

    def validate_all(self) -> None:
        errors = self.schema_errors()
        assert not errors, errors[:3]

    def schema_errors(self) -> list[tuple[dict[str, Any], list[str]]]:
        """Every message the server sent that does not validate against upstream's schema."""
        out = []
        for message in self.seen:
            if "method" in message and "id" in message:
                errors = [
                    e.message
                    for e in REQUESTS.iter_errors({k: message.get(k) for k in ("id", "method", "params")})
                ]
            elif "method" in message:
                errors = [e.message for e in NOTIFICATIONS.iter_errors(message)]
            elif "error" in message:
                err = message["error"]
                errors = (
                    []
                    if isinstance(err.get("code"), int) and isinstance(err.get("message"), str)
                    else ["bad error"]
                )
            else:
                name = RESPONSES.get(self.sent_methods.get(message.get("id"), ""))
                errors = [e.message for e in validator(name).iter_errors(message["result"])] if name else []
            if errors:
                out.append((message, errors[:3]))
        return out

    async def close(self, timeout: float = 30) -> int:
        assert self.proc.stdin is not None
        if not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(self._reader, 5)
        return code

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


async def spawn(cwd: Path, tmp: Path, *args: str, init: bool = True) -> Client:
    stderr = tmp / f"app-server-{os.getpid()}-{id(cwd)}-{len(list(tmp.glob('app-server-*')))}.stderr"
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "codexbro", "app-server", *args, cwd=cwd, env=os.environ.copy(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err, limit=256 * 1024 * 1024,
        )  # fmt: skip
    client = Client(proc, stderr)
    if init:
        reply = await client.call("initialize", {"clientInfo": {"name": "attack", "version": "1"}})
        assert "result" in reply, reply
        await client.send({"method": "initialized"})
    return client


async def spawn_ws(cwd: Path, *args: str) -> tuple[asyncio.subprocess.Process, str, str]:
    """``codexbro app-server --listen ws://127.0.0.1:0``: (the process, its URL, its token)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "codexbro", "app-server", "--listen", "ws://127.0.0.1:0", *args, cwd=cwd,
        env=os.environ.copy(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    first = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
    token = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode().split("token:")[1].strip()
    return proc, first.split("listening on ")[1].strip(), token


class WsClient:
    """One WebSocket connection: requests by id, everything received kept."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self._next = 0

    async def _until(self, match: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
        for old in self.seen:
            if match(old):
                return old
        async with asyncio.timeout(timeout):
            while True:
                message: dict[str, Any] = json.loads(await self.ws.recv())
                self.seen.append(message)
                if match(message):
                    return message

    async def call(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 20
    ) -> dict[str, Any]:
        self._next += 1
        request_id = self._next
        await self.ws.send(json.dumps({"id": request_id, "method": method, "params": params or {}}))
        return await self._until(lambda m: m.get("id") == request_id and "method" not in m, timeout)

    async def notification(self, method: str, timeout: float = 20) -> dict[str, Any]:
        return await self._until(lambda m: m.get("method") == method and "id" not in m, timeout)

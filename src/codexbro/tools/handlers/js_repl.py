"""``js_repl`` / ``js_repl_poll`` / ``js_repl_reset``: JavaScript in a persistent Node kernel
. Declarations persist between calls and top-level ``await`` works.

``js_repl`` is freeform: the input is raw JavaScript, optionally starting with a pragma line
``// codex-js-repl: timeout_ms=15000 poll=true``. With ``poll=true`` the call returns at once with an
``exec_id`` to pass to ``js_repl_poll``. A cell that runs past its timeout restarts the kernel (its
state is lost, and the answer says so). Offered only where ``node`` is on PATH.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codexbro.tools.base import (
    RespondToModel,
    ToolCall,
    ToolContext,
    ToolOutput,
    function_spec,
    parse_arguments,
)
from codexbro.tools.exec_env import build_env

if TYPE_CHECKING:
    from codexbro.sandbox.linux import Prepared
    from codexbro.tools.spawn import ToolProcess

DEFAULT_TIMEOUT_MS = 30_000
_PRAGMA = re.compile(r"^\s*//\s*codex(?:bro)?-js-repl:(?P<opts>.*)$")


def node_path() -> str | None:
    return shutil.which("node")


class JsKernel:
    """One Node process running ``kernel.js``; replies arrive on a dedicated pipe."""

    def __init__(self) -> None:
        self._proc: ToolProcess | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._sandbox: Prepared | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(
        self, env: dict[str, str], sandbox: Prepared | None = None, cwd: str | None = None
    ) -> None:
        self._sandbox = sandbox
        await self._start(env, sandbox, cwd or os.getcwd())

    async def _start(self, env: dict[str, str], sandbox: Prepared | None, cwd: str) -> None:
        node = node_path()
        if node is None:
            raise RespondToModel("js_repl is unavailable: Node.js (`node`) is not installed")
        script = Path(__file__).parent.parent / "js" / "kernel.js"
        read_fd, write_fd = os.pipe()
        try:
            from codexbro.tools.spawn import start_process

            self._proc = await start_process(
                [node, str(script)], cwd=Path(cwd), env={**env, "JS_REPL_FD": str(write_fd)}, sandbox=sandbox,
                pass_fds=(write_fd,), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            os.close(write_fd)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb"))
        ready: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending["ready"] = ready
        self._reader = asyncio.ensure_future(self._read(reader))
        try:
            await asyncio.wait_for(ready, 15)
        except TimeoutError:
            await self.stop()
            raise RespondToModel(
                "js_repl is unavailable: the Node.js kernel did not start within 15 s"
            ) from None

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            fut = self._pending.pop(str(msg.get("id") or "ready"), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RespondToModel("js_repl kernel exited unexpectedly; its state is lost"))
        self._pending.clear()

    def submit(self, code: str) -> tuple[str, asyncio.Future[dict[str, Any]]]:
        assert self._proc is not None and self._proc.stdin is not None
        exec_id = f"exec-{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[exec_id] = fut
        self._proc.stdin.write((json.dumps({"id": exec_id, "code": code}) + "\n").encode())
        return exec_id, fut

    async def stop(self) -> None:
        from codexbro.tools.spawn import finish_process

        if self._proc is not None and self._proc.returncode is None:
            from codexbro.tools.spawn import kill_group

            kill_group(self._proc)
            await self._proc.wait()
        if self._proc is not None:
            finish_process(self._proc, self._sandbox)
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, 2)
        self._proc = None


class JsRepl:
    """Session-scoped kernel plus the executions started in poll mode."""

    def __init__(self) -> None:
        self.kernel = JsKernel()
        self.polls: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def ensure(self, ctx: ToolContext) -> JsKernel:
        if not self.kernel.alive:
            from codexbro.tools.exec_gate import sandbox_for

            await self.kernel.stop()  # a kernel that died on its own still holds its sandbox
            self.kernel = JsKernel()
            await self.kernel.start(build_env(ctx.env_policy), await sandbox_for(ctx, True), str(ctx.cwd))
        return self.kernel

    async def reset(self) -> None:
        await self.kernel.stop()
        self.polls.clear()

    async def aclose(self) -> None:
        await self.reset()


def render(result: dict[str, Any]) -> ToolOutput:
    parts = list(result.get("logs") or [])
    if result.get("status") == "error":
        parts.append(str(result.get("error") or "error"))
    elif result.get("output"):
        parts.append(str(result["output"]))
    text = "\n".join(parts) if parts else "(no output)"
    return ToolOutput([{"type": "input_text", "text": text}], success=result.get("status") != "error")


def _check_input(code: str) -> None:
    stripped = code.strip()
    if not stripped:
        raise RespondToModel("js_repl expects JavaScript source; the input was empty")
    if stripped.startswith("```"):
        raise RespondToModel(
            "js_repl takes raw JavaScript: remove the Markdown code fence and send the code itself"
        )
    if stripped[0] in "{\"'" and stripped[-1] in "}\"'":
        try:
            parsed = json.loads(stripped)
        except ValueError:
            return
        if isinstance(parsed, dict | str):
            raise RespondToModel(
                "js_repl is a freeform tool: send raw JavaScript, not JSON or a quoted string"
            )


def _pragma(code: str) -> tuple[int, bool]:
    first = code.split("\n", 1)[0]
    match = _PRAGMA.match(first)
    timeout, poll = DEFAULT_TIMEOUT_MS, False
    if match:
        for key, _, value in (tok.partition("=") for tok in match.group("opts").split()):
            if key == "timeout_ms" and value.isdigit():
                timeout = max(1, int(value))
            elif key == "poll":
                poll = value.lower() == "true"
    return timeout, poll


class JsReplHandler:
    name = "js_repl"
    supports_parallel = False

    def __init__(self, repl: JsRepl) -> None:
        self.repl = repl

    def spec(self) -> dict[str, Any]:
        return {
            "type": "custom",
            "name": "js_repl",
            "description": "Runs JavaScript in a persistent Node.js session: variables and functions survive "
            "between calls and top-level await works. Send raw JavaScript (not JSON). An optional first line "
            "`// codex-js-repl: timeout_ms=15000 poll=true` sets a timeout or returns at once with an exec_id "
            "for js_repl_poll.",
            "format": {"type": "grammar", "syntax": "lark", "definition": "start: /[\\s\\S]*/"},
        }

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        if call.kind != "custom":
            raise RespondToModel("js_repl is a freeform tool: send raw JavaScript as the tool input")
        code = call.input
        _check_input(code)
        timeout_ms, poll = _pragma(code)
        kernel = await self.repl.ensure(ctx)
        exec_id, fut = kernel.submit(code)
        if poll:
            self.repl.polls[exec_id] = fut
            return ToolOutput(json.dumps({"exec_id": exec_id, "status": "running"}))
        try:
            result = await asyncio.wait_for(asyncio.shield(fut), timeout_ms / 1000)
        except TimeoutError:
            await self.repl.reset()
            raise RespondToModel(
                f"js_repl: execution timed out after {timeout_ms} ms; the kernel was restarted and its state is lost"
            ) from None
        except asyncio.CancelledError:
            await asyncio.shield(self.repl.reset())  # an interrupt must not leave a busy kernel behind
            raise
        return render(result)


JS_REPL_POLL = function_spec(
    "js_repl_poll",
    "Waits for a js_repl execution started with poll=true and returns its logs and status.",
    {
        "exec_id": {"type": "string", "description": "The exec_id js_repl returned."},
        "yield_time_ms": {
            "type": "number",
            "description": "How long to wait before answering (default 1000).",
        },
    },
    ["exec_id"],
)


class JsReplPollHandler:
    name = "js_repl_poll"
    supports_parallel = False

    def __init__(self, repl: JsRepl) -> None:
        self.repl = repl

    def spec(self) -> dict[str, Any]:
        return JS_REPL_POLL

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        args = parse_arguments(call, JS_REPL_POLL["parameters"])
        exec_id = args["exec_id"]
        fut = self.repl.polls.get(exec_id)
        if fut is None:
            raise RespondToModel(f"js_repl_poll: unknown exec_id {exec_id!r}")
        wait_ms = args.get("yield_time_ms") or 1000
        try:
            result = await asyncio.wait_for(asyncio.shield(fut), min(float(wait_ms), 300_000) / 1000)
        except TimeoutError:
            return ToolOutput(json.dumps({"exec_id": exec_id, "status": "running"}))
        self.repl.polls.pop(exec_id, None)
        status = {k: result.get(k) for k in ("status", "logs", "output", "error")}
        return ToolOutput(json.dumps({"exec_id": exec_id, **status}), success=result.get("status") != "error")


class JsReplResetHandler:
    name = "js_repl_reset"
    supports_parallel = False

    def __init__(self, repl: JsRepl) -> None:
        self.repl = repl

    def spec(self) -> dict[str, Any]:
        return function_spec(
            "js_repl_reset", "Restarts the js_repl kernel, discarding all its state.", {}, []
        )

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        await self.repl.reset()
        return ToolOutput("js_repl kernel reset")

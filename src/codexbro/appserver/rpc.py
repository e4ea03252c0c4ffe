"""JSON-RPC 2.0 as upstream's app server speaks it: one JSON object per line, without the
``jsonrpc`` member. Requests in both directions (the server asks the client for approvals and
answers), notifications, and errors with upstream's codes and wording where it has them:

- a request before ``initialize``: ``-32600 Not initialized``; a second ``initialize``:
  ``-32600 Already initialized``;
- an unknown method: ``-32601 method not found: NAME`` (upstream answers ``-32600 Invalid request:
  unknown variant …`` with its whole method list; codexbro names the method and keeps the standard
  code);
- wrong params: ``-32602 Invalid params: …`` naming the field;
- a line that is not JSON, or whose id is neither a string nor an integer, cannot be answered
  (upstream's schema has no null id): skipped as upstream skips it, and said on stderr (stdio) and
  in the log — never silently.

Each request runs as its own task, so a long ``turn/start`` never blocks an ``interrupt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from codexbro import textsafe

log = logging.getLogger(__name__)

DRAIN_S = 5.0
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    -32700,
    -32600,
    -32601,
    -32602,
    -32603,
)


class RpcError(Exception):
    """An error answer: code, message (and optional data)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"Invalid params: {message}")


class AfterReply:
    """A result whose ``then`` runs once the reply is on the wire (so a notification the handler
    caused follows its reply, as upstream orders them)."""

    def __init__(self, result: Any, then: Callable[[], None]) -> None:
        self.result, self.then = result, then


Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]


class Connection:
    """One client: lines in (``feed``), lines out (``write``)."""

    def __init__(self, write: Callable[[str], Awaitable[None]], handle: Handler,
                 on_notification: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None) -> None:  # fmt: skip
        self._write = write
        self._handle = handle
        self._on_notification = on_notification
        self._ids = itertools.count(0)
        self._waiting: dict[Any, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self.closed = False
        self.on_skip: Callable[[str], None] | None = None  # where skipped lines are said (stdio: stderr)

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        try:
            line = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except ValueError:  # NaN or infinity in a result: JSON has no such numbers
            line = json.dumps(textsafe.scrub(json.loads(json.dumps(message, default=str), parse_constant=lambda _c: None)),
                              ensure_ascii=False, separators=(",", ":"))  # fmt: skip
        line = textsafe.clean(
            line
        )  # a lone surrogate from a file name or a client: U+FFFD, never a broken pipe
        async with self._lock:  # one line at a time, whole
            try:
                await self._write(line)
            except (OSError, ConnectionError) as exc:  # the client went away
                log.info("client gone: %s", exc)
                self.close()

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        await self.send({"method": method, "params": params, "emittedAtMs": int(time.time() * 1000)})

    def next_id(self) -> int:
        return next(self._ids)

    async def request(self, method: str, params: dict[str, Any], request_id: int | None = None) -> Any:
        """Ask the client; its result (an error reply raises ``RpcError``; a closed connection
        raises ``ConnectionError``)."""
        if self.closed:
            raise ConnectionError("the client is gone")
        if request_id is None:
            request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            await self.send({"id": request_id, "method": method, "params": params})
            return await future
        finally:
            self._waiting.pop(request_id, None)

    def feed(self, line: str) -> None:
        """One line from the client. As upstream, a line that is not a JSON object with a usable id
        cannot be answered (upstream's schema has no null id): it is logged and skipped; everything
        else is answered."""
        if not line.strip():
            return
        try:
            message = textsafe.loads(line)
        except (ValueError, RecursionError) as exc:
            self._skip(f"a line that is not JSON ({type(exc).__name__}: {str(exc)[:80]})")
            return
        if not isinstance(message, dict):
            self._skip("a JSON value that is not an object")
            return
        method, request_id = message.get("method"), message.get("id")
        if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, str | int)):
            self._skip(f"a message whose id is neither a string nor an integer ({type(request_id).__name__})")
            return
        if method is None and request_id is not None and ("result" in message or "error" in message):
            future = self._waiting.get(request_id)
            if future is not None and not future.done():
                if "error" in message:
                    err = message["error"] if isinstance(message["error"], dict) else {}
                    code = err.get("code")
                    code = code if isinstance(code, int) and not isinstance(code, bool) else INTERNAL_ERROR
                    future.set_exception(RpcError(code, str(err.get("message", ""))[:2000]))
                else:
                    future.set_result(message.get("result"))
            return
        if request_id is None:  # a notification is never answered, whatever it holds
            if isinstance(method, str) and self._on_notification is not None:
                self._spawn(self._on_notification(method, message.get("params") or {}))
            return
        if not isinstance(method, str):
            self._spawn(self._error(request_id, RpcError(INVALID_REQUEST, "Invalid request: no method")))
            return
        params = message.get("params")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            self._spawn(self._error(request_id, invalid_params("params must be an object")))
            return
        self._spawn(self._answer(request_id, method, params))

    def feed_skip(self, what: str) -> None:
        self._skip(what)

    def _skip(self, what: str) -> None:
        log.warning("ignored %s", what)
        if self.on_skip is not None:
            self.on_skip(f"codexbro app-server: ignored {what}")

    async def _answer(self, request_id: Any, method: str, params: dict[str, Any]) -> None:
        try:
            result = await self._handle(method, params)
        except RpcError as err:
            await self._error(request_id, err)
            return
        except Exception as exc:  # a bug: said, and the server goes on
            log.exception("%s failed", method)
            await self._error(
                request_id, RpcError(INTERNAL_ERROR, f"Internal error: {type(exc).__name__}: {exc}")
            )
            return
        if isinstance(result, AfterReply):
            try:
                await self.send({"id": request_id, "result": result.result})
            finally:
                result.then()
            return
        await self.send({"id": request_id, "result": result})

    async def _error(self, request_id: Any, err: RpcError) -> None:
        error: dict[str, Any] = {"code": err.code, "message": err.message}
        if err.data is not None:
            error["data"] = err.data
        await self.send({"error": error, "id": request_id})

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_requests(self) -> None:
        """The client is gone: what it asked for (a command/exec, a turn/interrupt's wait) stops."""
        for task in list(self._tasks):
            task.cancel()

    def close(self) -> None:
        """The client is gone: requests waiting on it fail; running handlers are left to finish."""
        self.closed = True
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the client is gone"))

    async def drain(self) -> None:
        """Let running handlers answer (at most a few seconds)."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), DRAIN_S)

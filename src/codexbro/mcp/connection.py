"""One MCP server connection, through the official SDK (imported here, only when a server runs).

The SDK's transports and ``ClientSession`` are anyio context managers that must be entered and left
in one task, so each connection has a runner task that opens them, initialises (``initialize``,
``notifications/initialized``, every page of ``tools/list``), reports ready, and holds the session
open until ``close``. Calls come from other tasks through ``session``.

stdio servers start with upstream's small default environment (HOME, LOGNAME, PATH, SHELL, TERM,
USER, LANG, LC_ALL, TMPDIR, TZ) plus the variables named in ``env_vars`` plus ``env`` — never the agent's whole
environment, so no credential leaks to a server by accident. Their stderr goes to a temporary file
whose tail is reported when the server fails. MCP servers are programs the user configured: like
upstream, they run outside the sandbox (their *calls* go through the approval policy).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from codexbro import __version__
from codexbro.config.mcp_servers import HttpTransport, McpServerConfig, StdioTransport

log = logging.getLogger(__name__)

State = Literal["starting", "ready", "failed", "stopped"]
# An elicitation from the server: (server, message, requested schema) → (action, content).
Elicit = Callable[[str, str, dict[str, Any] | None], Awaitable[tuple[str, dict[str, Any] | None]]]
STDERR_TAIL_LINES = 12
UPSTREAM_DEFAULT_ENV = (
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "TZ",
)  # beside the SDK's own defaults (rmcp-client's list)
PING_TIMEOUT_S = 3.0  # a live server answers a ping at once; one that does not has stopped


def keep_sdk_logs_off_the_terminal() -> None:
    """The SDK logs what servers send (unknown SSE events, bad lines, tracebacks): into codexbro's
    log file, never through Python's last-resort handler to stderr, where a hostile server's text
    would reach the terminal raw."""
    sdk = logging.getLogger("mcp")
    if sdk.propagate:
        sdk.propagate = False
        for handler in logging.getLogger("codexbro").handlers:
            sdk.addHandler(handler)
        if not sdk.handlers:
            sdk.addHandler(logging.NullHandler())


keep_sdk_logs_off_the_terminal()


class McpCallError(Exception):
    """A call that got no result: the server is gone, timed out, or answered a protocol error."""


class McpConnection:
    """One configured server: start, its tools, calls, resources, close."""

    def __init__(
        self, config: McpServerConfig, *, cwd: Path, env: Mapping[str, str], elicit: Elicit | None = None,
        http_headers: Callable[[], dict[str, str]] | None = None, http_auth: Callable[[], Any] | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self.name = config.name
        self.cwd = cwd
        self.env = env
        self.elicit = elicit
        self.http_headers = http_headers or (lambda: {})
        self.http_auth = http_auth or (lambda: None)  # an httpx Auth (a stored OAuth login) or None
        self.state: State = "starting"
        self.error: str | None = None
        self.tools: list[dict[str, Any]] = []  # tools/list entries as wire JSON (camelCase)
        self.server_info: dict[str, Any] = {}
        self.instructions: str | None = None
        self.capabilities: dict[str, Any] = {}
        self.started_at = time.monotonic()
        self.ready_after_s: float | None = None
        self.session: Any = None
        self.http_status: int | None = None  # the last HTTP error status of a streamable-HTTP server
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stderr: Any = None

    # ---- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"mcp:{self.name}")

    async def wait_started(self) -> None:
        """Until ready or failed, at most ``startup_timeout_sec`` after the start."""
        remaining = self.config.startup_timeout_s - (time.monotonic() - self.started_at)
        try:
            await asyncio.wait_for(self._ready.wait(), max(0.0, remaining))
        except TimeoutError:
            if self.state == "starting":
                self._fail(
                    f"did not start within {self.config.startup_timeout_s:g} s "
                    f"(raise `mcp_servers.{self.name}.startup_timeout_sec` if it needs longer)"
                )
                self._stop.set()
                if self._task is not None:  # it may be stuck in initialize: stop waiting for it now
                    self._task.cancel()

    async def _run(self) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                from mcp import ClientSession
                from mcp.types import Implementation

                session = await stack.enter_async_context(
                    ClientSession(
                        read, write, elicitation_callback=self._on_elicit if self.elicit else None,
                        client_info=Implementation(name="codexbro-mcp-client", title="codexbro", version=__version__),
                    )
                )  # fmt: skip
                init = await session.initialize()
                self.server_info = init.server_info.model_dump(mode="json", exclude_none=True)
                self.instructions = init.instructions
                self.capabilities = init.capabilities.model_dump(
                    mode="json", by_alias=True, exclude_none=True
                )
                self.tools = await self._list_tools(session)
                if self.state != "starting":  # too late: it was given up on
                    return
                self.session = session
                self.state = "ready"
                self.ready_after_s = time.monotonic() - self.started_at
                self._ready.set()
                await self._stop.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the SDK raises exception groups from its task groups
            self._fail(_describe(exc))
        finally:
            self.session = None
            if self.state in ("starting", "ready"):
                self.state = "stopped"
            self._ready.set()

    def _transport(self) -> Any:
        t = self.config.transport
        if isinstance(t, StdioTransport):
            from mcp.client.stdio import StdioServerParameters, stdio_client

            # The SDK's defaults (HOME, LOGNAME, PATH, SHELL, TERM, USER) plus the rest of upstream's
            # list, then the names the config passes through, then its own values.
            passed = (*UPSTREAM_DEFAULT_ENV, *t.env_vars)
            env = {name: self.env[name] for name in passed if name in self.env} | t.env
            cwd = Path(t.cwd).expanduser() if t.cwd else self.cwd
            self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
            params = StdioServerParameters(command=t.command, args=list(t.args), env=env, cwd=str(cwd))
            return stdio_client(params, errlog=self._stderr)
        assert isinstance(t, HttpTransport)
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        client = create_mcp_http_client(headers=self.http_headers(), auth=self.http_auth())

        async def remember_status(response: Any) -> None:  # the SDK's errors drop the HTTP status
            if response.status_code >= 400 and self.state == "starting":  # what made the start fail
                self.http_status = int(response.status_code)

        client.event_hooks["response"].append(remember_status)
        return _http_transport(t.url, client, streamable_http_client)

    @staticmethod
    async def _list_tools(session: Any) -> list[dict[str, Any]]:
        from mcp.types import PaginatedRequestParams

        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(100):  # a server whose cursor never ends cannot hang the start
            page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            tools += [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in page.tools]
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    def _fail(self, reason: str) -> None:
        if self.state == "failed":
            return
        self.state = "failed"
        if self.http_status in (401, 403):
            hint = (
                "log in again (codexbro login)" if self.name == "codex_apps"
                else f"set `mcp_servers.{self.name}.bearer_token_env_var`, or run `codexbro mcp login {self.name}`"
            )  # fmt: skip
            reason = f"HTTP {self.http_status}: the server refused the credentials; {hint} ({reason})"
        elif self.http_status is not None:
            reason = f"HTTP {self.http_status} from the server ({reason})"
        tail = self.stderr_tail()
        self.error = reason + (f"\nlast lines of its stderr:\n{tail}" if tail else "")
        self._ready.set()

    def stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.flush()
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 8192))
            lines = self._stderr.read().splitlines()
        except (OSError, ValueError):
            return ""
        return "\n".join(line.rstrip() for line in lines[-STDERR_TAIL_LINES:])

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
        if self.state != "failed":
            self.state = "stopped"
        if self._stderr is not None:
            with contextlib.suppress(OSError):
                self._stderr.close()

    # ---- calls -----------------------------------------------------------------------------------

    def _live(self) -> Any:
        if self.session is None or self.state != "ready":
            raise McpCallError(
                f"MCP server `{self.name}` is not running" + (f": {self.error}" if self.error else "")
            )
        return self.session

    async def call_tool(self, tool: str, arguments: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """The ``CallToolResult`` as wire JSON (``content``, ``structuredContent``, ``isError``)."""
        session = self._live()
        try:
            result = await asyncio.wait_for(session.call_tool(tool, arguments), timeout_s)
        except Exception as exc:
            raise await self._call_error(exc, timeout_s) from None
        return dict(result.model_dump(mode="json", by_alias=True, exclude_none=True))

    async def list_resources(self, cursor: str | None) -> dict[str, Any]:
        from mcp.types import PaginatedRequestParams

        return await self._request(
            lambda s: s.list_resources(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
        )

    async def list_resource_templates(self, cursor: str | None) -> dict[str, Any]:
        from mcp.types import PaginatedRequestParams

        return await self._request(
            lambda s: s.list_resource_templates(
                params=PaginatedRequestParams(cursor=cursor) if cursor else None
            )
        )

    async def read_resource(self, uri: str) -> dict[str, Any]:
        return await self._request(lambda s: s.read_resource(uri))

    async def _request(self, send: Callable[[Any], Awaitable[Any]]) -> dict[str, Any]:
        session = self._live()
        timeout = self.config.tool_timeout_s
        try:
            result = await asyncio.wait_for(send(session), timeout)
        except Exception as exc:
            raise await self._call_error(exc, timeout) from None
        out = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        for noise in ("ttlMs", "cacheScope", "resultType", "ttl_ms", "cache_scope", "result_type"):
            out.pop(noise, None)
        return dict(out)

    async def _call_error(self, exc: BaseException, timeout_s: float) -> McpCallError:
        """What a failed call means, decided by what happened — never by the words of the error,
        which a server (or, through arguments, the model) chooses: our own deadline passed → a
        timeout; the server no longer answers a ping → it has stopped (said once, its tools leave);
        anything else → this call's error only."""
        if isinstance(exc, TimeoutError):
            return McpCallError(
                f"timed out after {timeout_s:g} s (`mcp_servers.{self.name}.tool_timeout_sec`)"
            )
        text = _describe(exc)
        if not await self._alive():
            self._fail("the server stopped (its connection closed)")
            self._stop.set()
            return McpCallError(f"MCP server `{self.name}` stopped: {self.error}")
        return McpCallError(text)

    async def _alive(self) -> bool:
        session = self.session
        if session is None or self._task is None or self._task.done():
            return False
        try:
            await asyncio.wait_for(session.send_ping(), PING_TIMEOUT_S)
        except Exception:
            return False
        return True

    async def _on_elicit(self, context: Any, params: Any) -> Any:
        from mcp.types import ElicitResult

        assert self.elicit is not None
        schema: Any = getattr(params, "requested_schema", None)
        if schema is not None and hasattr(schema, "model_dump"):
            schema = schema.model_dump(mode="json", by_alias=True, exclude_none=True)
        message = str(getattr(params, "message", ""))
        url = getattr(params, "url", None)
        if url:
            message = f"{message}\n{url}"
        action, content = await self.elicit(self.name, message, schema if isinstance(schema, dict) else None)
        return ElicitResult(action=action, content=content if action == "accept" else None)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def _http_transport(url: str, client: Any, connect: Any) -> Any:
    async with client, connect(url, http_client=client) as streams:
        yield streams


def _describe(exc: BaseException) -> str:
    """The innermost useful message of an exception (or exception group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip()
    if isinstance(exc, FileNotFoundError):
        return f"could not start its command: {exc.strerror}: {exc.filename}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    return (
        f"{type(exc).__name__}: {text}"
        if text and not text.startswith(type(exc).__name__)
        else (text or type(exc).__name__)
    )

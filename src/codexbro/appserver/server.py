"""``codexbro app-server``: upstream's app-server protocol (v2, Codex 0.169) over codexbro's core.

Sessions are opened through the composition root (``SessionOptions(source="appServer",
interactive=True)``) and driven only with Ops; what they emit reaches the client as v2
notifications (``events.py``) and server→client requests (``threads.py``). The methods a client
needs to run an agent are implemented (docs/app-server.md lists them); any other method of
upstream's answers ``-32601 method not found: NAME`` — never silence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codexbro import __version__
from codexbro import protocol as p
from codexbro.appserver import params as pa
from codexbro.appserver.rpc import (
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    AfterReply,
    Connection,
    RpcError,
    invalid_params,
)
from codexbro.appserver.threads import LiveThread
from codexbro.config.loader import Overrides

log = logging.getLogger(__name__)
ORIGINATOR = "codex_app_server"


class AppServer:
    """One client connection's state: initialised or not, the threads it has loaded."""

    def __init__(self, base: Overrides, home: Path, shared: dict[str, object] | None = None) -> None:
        self.base, self.home = base, home
        # Threads loaded by any client of this listener: a thread has one live session at a time.
        self.shared: dict[str, object] = shared if shared is not None else {}
        self.initialized = False
        self.threads: dict[str, LiveThread] = {}
        self.conn: Connection | None = None
        from codexbro.appserver.command import Logins
        from codexbro.core.rollout import new_thread_id

        self.logins = Logins()
        self.owner = f"app-server-{new_thread_id()}"  # command/exec's sandbox containers are this client's

    # ---- dispatch ---------------------------------------------------------------------------------

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        if method == "initialize":
            if self.initialized:
                raise RpcError(INVALID_REQUEST, "Already initialized")
            pa.require(params, "clientInfo", dict)
            self.initialized = True
            return {"userAgent": f"codexbro/{__version__}", "codexHome": str(self.home),
                    "platformFamily": "unix", "platformOs": "linux"}  # fmt: skip
        if not self.initialized:
            raise RpcError(INVALID_REQUEST, "Not initialized")
        handler = getattr(self, "m_" + method.replace("/", "_"), None)
        if handler is None:
            raise RpcError(
                METHOD_NOT_FOUND,
                f"method not found: {method} (codexbro implements the subset in docs/app-server.md)",
            )
        result: Any = await handler(params)
        return result

    async def on_notification(self, method: str, params: dict[str, Any]) -> None:
        if method != "initialized":
            log.info("notification %s ignored", method)

    def _thread(self, params: dict[str, Any]) -> LiveThread:
        thread_id = pa.require(params, "threadId", str)
        thread = self.threads.get(thread_id)
        if thread is None:
            raise RpcError(INVALID_REQUEST, f"thread not found: {thread_id} (start or resume it first)")
        return thread

    def _load(self, session: Any) -> LiveThread:
        assert self.conn is not None
        thread = LiveThread(session, self.conn)
        self.threads[thread.id] = thread
        self.shared[thread.id] = self
        thread.start()
        return thread

    def _not_elsewhere(self, thread_id: str) -> None:
        owner = self.shared.get(thread_id)
        if owner is not None and owner is not self:
            raise RpcError(INVALID_REQUEST, f"thread {thread_id} is loaded by another client of this server")

    async def _open(self, params: dict[str, Any], **options: Any) -> Any:
        from codexbro.composition import SessionOptions, managed, start_session
        from codexbro.config.loader import load_config
        from codexbro.errors import CodexbroError

        try:
            config = load_config(pa.overrides(params, self.base))
            await managed.prime(config)  # a slow requirements server must not stall every client
            return start_session(config, SessionOptions(originator=ORIGINATOR, source="appServer",
                                                        interactive=True, **options))  # fmt: skip
        except CodexbroError as err:
            raise invalid_params(err.message) from None

    # ---- threads --------------------------------------------------------------------------------

    async def m_thread_start(self, params: dict[str, Any]) -> AfterReply:
        session = await self._open(params, ephemeral=bool(params.get("ephemeral")))
        session.drain_events()  # start-up events: the response and thread/started say it
        thread = self._load(session)
        return AfterReply({"thread": thread.json(), **thread.settings()}, self._announce(thread))

    def _announce(self, thread: LiveThread) -> Callable[[], None]:
        """``thread/started``, sent once the reply is on the wire (upstream's order)."""

        def send() -> None:
            assert self.conn is not None
            task = asyncio.get_running_loop().create_task(
                self.conn.notify("thread/started", {"thread": thread.json()})
            )
            thread.asks.add(task)
            task.add_done_callback(thread.asks.discard)

        return send

    async def m_thread_resume(self, params: dict[str, Any]) -> dict[str, Any]:
        loaded = self._rollout(pa.require(params, "threadId", str))
        self._not_elsewhere(loaded.thread_id)
        if loaded.thread_id in self.threads:
            thread = self.threads[loaded.thread_id]
        else:
            session = await self._open(params, resume=loaded)
            session.drain_events()
            thread = self._load(session)
            thread.preview = pa.preview(loaded.history)
        turns = [] if params.get("excludeTurns") else pa.turns(loaded.history)
        return {"thread": thread.json(turns=turns), **thread.settings()}

    async def m_thread_fork(self, params: dict[str, Any]) -> AfterReply:
        loaded = self._rollout(pa.require(params, "threadId", str))
        session = await self._open(params, fork=loaded, ephemeral=bool(params.get("ephemeral")))
        session.drain_events()
        thread = self._load(session)
        thread.preview = pa.preview(loaded.history)
        return AfterReply({"thread": thread.json(turns=pa.turns(loaded.history)), **thread.settings()},
                          self._announce(thread))  # fmt: skip

    def _rollout(self, thread_id: str) -> Any:
        """The stored thread with exactly this id (never a prefix or suffix match, as the CLI allows)."""
        from codexbro.core.rollout import find_rollout, load_rollout
        from codexbro.errors import CodexbroError

        pa.check_thread_id(thread_id)
        try:
            loaded = load_rollout(find_rollout(self.home, thread_id))
        except (CodexbroError, OSError) as err:
            raise RpcError(
                INVALID_REQUEST, f"no rollout found for thread id {thread_id}: {getattr(err, 'message', err)}"
            ) from None
        if loaded.thread_id != thread_id:
            raise RpcError(INVALID_REQUEST, f"no rollout found for thread id {thread_id}")
        return loaded

    async def m_thread_list(self, params: dict[str, Any]) -> dict[str, Any]:
        return pa.thread_list(self.home, params)

    async def m_thread_read(self, params: dict[str, Any]) -> dict[str, Any]:
        thread_id = pa.require(params, "threadId", str)
        loaded = self._rollout(thread_id)
        entry = pa.stored_thread(loaded)
        if params.get("includeTurns"):
            entry["turns"] = pa.turns(loaded.history)
        live = self.threads.get(thread_id)
        if live is not None:
            entry["status"] = live.json()["status"]
        return {"thread": entry}

    async def m_thread_archive(self, params: dict[str, Any]) -> dict[str, Any]:
        thread_id = pa.require(params, "threadId", str)
        loaded = self._rollout(thread_id)
        self._not_elsewhere(thread_id)
        live = self.threads.pop(thread_id, None)
        if live is not None:
            self.shared.pop(thread_id, None)
            await live.close()
        pa.archive(self.home, loaded.path)
        assert self.conn is not None
        await self.conn.notify("thread/archived", {"threadId": thread_id})
        return {}

    async def m_thread_compact_start(self, params: dict[str, Any]) -> dict[str, Any]:
        thread = self._thread(params)
        thread.session.submit(p.Compact())
        return {}

    # ---- turns ----------------------------------------------------------------------------------

    async def m_turn_start(self, params: dict[str, Any], review: str | None = None) -> AfterReply:
        thread = self._thread(params)
        if thread.running_turn is not None or thread.starting:
            running = thread.running_turn or "(starting)"
            raise RpcError(INVALID_REQUEST, f"turn {running} is running on thread {thread.id}: "
                           "steer it (turn/steer) or wait for turn/completed")  # fmt: skip
        thread.starting = True  # before any await: a pipelined second turn/start is refused
        try:
            return await self._start_turn(thread, params, review)
        finally:
            thread.starting = False

    async def _start_turn(self, thread: LiveThread, params: dict[str, Any], review: str | None) -> AfterReply:
        inputs = pa.user_inputs(params.get("input"))
        schema = params.get("outputSchema")
        if schema is not None and not isinstance(schema, dict):
            raise invalid_params("`outputSchema` must be a JSON Schema object")
        override = pa.turn_override(params, thread.session)
        if override is not None:
            thread.session.submit(override)
        thread.started.clear()
        thread.replied.clear()
        thread.awaiting_reply = True
        thread.mapper.review = review
        thread.session.submit(p.UserTurn(inputs, schema))
        try:
            await asyncio.wait_for(thread.started.wait(), 60)
        except TimeoutError:
            thread.awaiting_reply = False
            raise RpcError(INVALID_REQUEST, "the turn did not start") from None
        turn = {"id": thread.mapper.turn_id or "", "items": [], "status": "inProgress"}
        return AfterReply({"turn": turn}, thread.replied.set)

    async def m_review_start(self, params: dict[str, Any]) -> AfterReply:
        from codexbro.appserver.command import review_prompt

        delivery = params.get("delivery")
        if delivery not in (None, "inline"):
            raise invalid_params(
                "`delivery`: codexbro runs reviews inline (start a thread for a separate review)"
            )
        prompt, label = review_prompt(params.get("target"))
        started = await self.m_turn_start({"threadId": params.get("threadId"),
                                           "input": [{"type": "text", "text": prompt}]}, review=label)  # fmt: skip
        started.result = {"reviewThreadId": params.get("threadId"), **started.result}
        return started

    async def m_command_exec(self, params: dict[str, Any]) -> dict[str, Any]:
        from codexbro.appserver.command import command_exec

        return await command_exec(self.base, self.home, self.owner, params)

    async def m_account_login_start(self, params: dict[str, Any]) -> dict[str, Any]:
        assert self.conn is not None
        return await self.logins.start(self.home, params, self.conn.notify)

    async def m_account_login_cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.logins.cancel(params)

    async def m_turn_interrupt(self, params: dict[str, Any]) -> dict[str, Any]:
        thread = self._thread(params)
        turn_id = pa.require(params, "turnId", str)
        if thread.running_turn != turn_id:
            raise RpcError(INVALID_REQUEST, f"turn {turn_id} is not running on thread {thread.id}")
        thread.session.submit(
            p.Interrupt()
        )  # answered at once; turn/completed (interrupted) follows, as upstream
        return {}

    async def m_turn_steer(self, params: dict[str, Any]) -> dict[str, Any]:
        thread = self._thread(params)
        expected = pa.require(params, "expectedTurnId", str)
        if thread.running_turn != expected:
            raise RpcError(
                INVALID_REQUEST, f"expected turn {expected} is not the running turn of {thread.id}"
            )
        thread.session.submit(p.UserTurn(pa.user_inputs(params.get("input")), when="steer"))
        return {"turnId": expected}

    # ---- the rest a client needs ----------------------------------------------------------------

    async def m_model_list(self, params: dict[str, Any]) -> dict[str, Any]:
        return pa.model_list(self.base, params)

    async def m_config_read(self, params: dict[str, Any]) -> dict[str, Any]:
        return pa.config_read(self.base, params)

    async def m_account_read(self, params: dict[str, Any]) -> dict[str, Any]:
        return pa.account_read(self.home)

    async def m_account_logout(self, params: dict[str, Any]) -> dict[str, Any]:
        from codexbro.api.responses_client import originator_for, user_agent
        from codexbro.auth.revoke import logout

        origin = originator_for("codex_app_server")
        result = await logout(self.home, headers={"originator": origin, "user-agent": user_agent(origin)})
        assert self.conn is not None
        if result.revoked is False:
            await self.conn.notify("warning", {"message": f"could not revoke the ChatGPT token ({result.problem}); "
                                               "the local credential was removed", "threadId": None})  # fmt: skip
        await self.conn.notify("account/updated", {"authMode": None, "planType": None})
        return {}

    async def m_mcpServerStatus_list(self, params: dict[str, Any]) -> dict[str, Any]:
        servers: list[dict[str, Any]] = []
        for thread in self.threads.values():
            mcp = thread.session.tool_resources.mcp
            if mcp is not None:
                servers = mcp.status()
                break
        return pa.mcp_status(servers)

    async def m_fuzzyFileSearch(self, params: dict[str, Any]) -> dict[str, Any]:
        query = pa.require(params, "query", str)
        roots = pa.require(params, "roots", list)
        return await asyncio.to_thread(pa.fuzzy_search, query, [str(r) for r in roots])

    # ---- life -----------------------------------------------------------------------------------

    async def close(self) -> None:
        for task in list(self.logins.running.values()):
            task.cancel()
        import sys

        linux = sys.modules.get("codexbro.sandbox.linux")
        if linux is not None:
            await linux.end_session(self.owner)
        threads, self.threads = list(self.threads.values()), {}
        for thread in threads:
            if self.shared.get(thread.id) is self:
                self.shared.pop(thread.id, None)
            try:
                await thread.close()
            except Exception:  # one broken thread must not keep the others' processes alive
                log.exception("closing thread %s", thread.id)

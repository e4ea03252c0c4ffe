"""Clients for the ChatGPT backend ecosystem: wham (usage, tasks, requirements,
environments, apps), the connectors directory, plugins and transcription.

Every call goes by route name through the route table; responses are JSON checked for shape. The
wire layer knows nothing of sessions: callers pass the base URL and the auth headers (access token
and ``ChatGPT-Account-ID``). Shapes of these product routes are not publicly documented; typed
results cover the fields codexbro shows and keep the raw document for ``--json``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from msgspec import Struct

from codexbro import textsafe
from codexbro.api.http import RouteHttp
from codexbro.api.routes import route
from codexbro.errors import ApiError, FatalApiError, TransportError


class UsageWindow(Struct, frozen=True):
    name: str
    used_percent: float
    window_seconds: int | None
    resets_at: int | None


class Usage(Struct, frozen=True):
    plan_type: str | None
    windows: list[UsageWindow]
    credits: dict[str, Any] | None
    raw: dict[str, Any]


class TaskSummary(Struct, frozen=True):
    id: str
    title: str
    status: str | None
    updated_at: float | None
    files_modified: int | None
    raw: dict[str, Any]


def _window(name: str, doc: Any) -> UsageWindow | None:
    if not isinstance(doc, dict):
        return None
    used = doc.get("used_percent")
    return UsageWindow(
        name,
        float(used) if isinstance(used, int | float) else 0.0,
        doc.get("limit_window_seconds") if isinstance(doc.get("limit_window_seconds"), int) else None,
        doc.get("reset_at") if isinstance(doc.get("reset_at"), int) else None,
    )


def parse_usage(doc: dict[str, Any]) -> Usage:
    windows = []
    for group_key, prefix in (("rate_limit", ""), ("code_review_rate_limit", "code review ")):
        group = doc.get(group_key)
        if isinstance(group, dict):
            for key, label in (("primary_window", "primary"), ("secondary_window", "secondary")):
                w = _window(prefix + label, group.get(key))
                if w is not None:
                    windows.append(w)
    credits = doc.get("credits") if isinstance(doc.get("credits"), dict) else None
    plan = doc.get("plan_type") if isinstance(doc.get("plan_type"), str) else None
    return Usage(plan, windows, credits, doc)


def parse_task(doc: dict[str, Any]) -> TaskSummary:
    display = (doc.get("task_status_display") or {}).get("latest_turn_status_display") or {}
    stats = display.get("diff_stats") or {}
    return TaskSummary(
        str(doc.get("id") or ""),
        str(doc.get("title") or ""),
        display.get("turn_status") if isinstance(display.get("turn_status"), str) else None,
        doc.get("updated_at") if isinstance(doc.get("updated_at"), int | float) else None,
        stats.get("files_modified") if isinstance(stats.get("files_modified"), int) else None,
        doc,
    )


HeadersFn = Callable[[], Awaitable[dict[str, str]]]


class ChatGPTBackend:
    """``headers`` returns fresh auth headers; ``on_unauthorized`` (optional) refreshes after a 401."""

    def __init__(self, http: RouteHttp, base_url: str, headers: HeadersFn,
                 on_unauthorized: Callable[[], Awaitable[bool]] | None = None) -> None:  # fmt: skip
        self.http = http
        self.base_url = base_url
        self._headers = headers
        self._on_unauthorized = on_unauthorized

    async def call(
        self, name: str, *, query: dict[str, str] | None = None, body: Any = None,
        headers: dict[str, str] | None = None, **params: str,
    ) -> Any:  # fmt: skip
        r = route(name)
        if query:
            query = {k: quote(v, safe="") for k, v in query.items()}
        url = r.url(self.base_url, query, **params)
        for attempt in (1, 2):
            sent = {"accept": "application/json", **(headers or {}), **await self._headers()}
            try:
                response = await self.http.request(r, url, headers=sent, json_body=body, attempt=attempt)
            except TransportError as exc:
                raise ApiError(f"could not reach {url}: {exc.detail}", kind="http_connection_failed",
                               route=name) from None  # fmt: skip
            if (
                response.status_code == 401
                and attempt == 1
                and self._on_unauthorized
                and await self._on_unauthorized()
            ):
                continue
            break
        text = response.content.decode("utf-8", "replace")
        if response.status_code >= 400:
            detail = _error_detail(text)
            raise FatalApiError(f"{r.method} {url} failed with HTTP {response.status_code}: {detail}",
                                kind="unauthorized" if response.status_code == 401 else "other",
                                status=response.status_code, route=name)  # fmt: skip
        try:
            return textsafe.loads(text) if text.strip() else {}
        except ValueError:
            raise FatalApiError(f"{url} answered with {_describe(text)} instead of JSON", kind="other",
                                status=response.status_code, route=name) from None  # fmt: skip

    async def usage(self) -> Usage:
        doc = await self.call("wham.usage")
        if not isinstance(doc, dict):
            raise FatalApiError("wham/usage: expected a JSON object", kind="other", route="wham.usage")
        return parse_usage(doc)

    async def tasks(
        self, limit: int = 20, cursor: str | None = None, environment_id: str | None = None
    ) -> tuple[list[TaskSummary], str | None, dict[str, Any]]:
        """One page of the current tasks (query as 0.169 sends it: ``limit``, ``task_filter``,
        then ``cursor`` and ``environment_id`` when given): summaries, the next cursor, the page."""
        query = {"limit": str(limit), "task_filter": "current"}
        if cursor:
            query["cursor"] = cursor
        if environment_id:
            query["environment_id"] = environment_id
        doc = await self.call("wham.tasks.list", query=query)
        items = doc.get("items") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise FatalApiError(
                'wham/tasks/list: expected {"items": [...]}', kind="other", route="wham.tasks.list"
            )
        nxt = doc.get("cursor") if isinstance(doc.get("cursor"), str) else None
        return [parse_task(i) for i in items if isinstance(i, dict)], nxt, doc

    async def task(self, task_id: str) -> dict[str, Any]:
        doc = await self.call("wham.tasks.get", task_id=task_id)
        if not isinstance(doc, dict):
            raise FatalApiError(f"wham/tasks/{task_id}: expected a JSON object", kind="other",
                                route="wham.tasks.get")  # fmt: skip
        return doc

    async def sibling_turns(self, task_id: str, turn_id: str) -> list[dict[str, Any]]:
        doc = await self.call("wham.tasks.sibling_turns", task_id=task_id, turn_id=turn_id)
        turns = doc.get("sibling_turns") if isinstance(doc, dict) else None
        return [t for t in turns if isinstance(t, dict)] if isinstance(turns, list) else []

    async def create_task(
        self, environment_id: str, prompt: str, branch: str = "main", *, best_of_n: int = 1,
        starting_diff: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """``POST wham/tasks`` as 0.169 sends it (captured on loopback): best-of-N as
        ``metadata.best_of_n``, only when above 1; a starting diff as a ``pre_apply_patch`` item."""
        items: list[dict[str, Any]] = [
            {"type": "message", "role": "user", "content": [{"content_type": "text", "text": prompt}]}
        ]
        if starting_diff:
            items.append({"type": "pre_apply_patch", "output_diff": {"diff": starting_diff}})
        body: dict[str, Any] = {
            "new_task": {
                "environment_id": environment_id,
                "branch": branch,
                "run_environment_in_qa_mode": False,
            },
            "input_items": items,
        }
        if best_of_n > 1:
            body["metadata"] = {"best_of_n": best_of_n}
        doc = await self.call("wham.tasks.create", body=body)
        return doc if isinstance(doc, dict) else {"value": doc}

    async def config_bundle(self) -> Any:
        """The workspace's managed config and requirements (0.169's route)."""
        return await self.call("wham.config.bundle")

    async def requirements(self) -> Any:
        """The older managed-requirements route (``{"contents": TOML}``), for servers without the bundle."""
        return await self.call("wham.config.requirements")

    async def environments(self) -> list[dict[str, Any]]:
        return _objects(await self.call("wham.environments"), "wham/environments")

    async def environments_by_repo(self, provider: str, owner: str, repo: str) -> list[dict[str, Any]]:
        doc = await self.call("wham.environments.by_repo", provider=provider, owner=owner, repo=repo)
        return _objects(doc, "wham/environments/by-repo")

    async def connectors(self, workspace: bool = False) -> list[dict[str, Any]]:
        doc = await self.call(
            "connectors.directory.list_workspace" if workspace else "connectors.directory.list"
        )
        items = doc.get("items") or doc.get("connectors") or [] if isinstance(doc, dict) else doc
        return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []

    async def plugins(self, scope: str = "GLOBAL", *, installed: bool = False) -> list[dict[str, Any]]:
        """The remote plugin catalog (or the account's installed plugins), every page, as 0.169
        asks for it (``oai-product-sku: codex``)."""
        name = "plugins.installed" if installed else "plugins.list"
        found: list[dict[str, Any]] = []
        token: str | None = None
        for _page in range(50):
            query = {"scope": scope, "limit": "200", **({"pageToken": token} if token else {})}
            doc = await self.call(name, query=query, headers={"oai-product-sku": "codex"})
            items = doc.get("plugins") if isinstance(doc, dict) else None
            if not isinstance(items, list):
                raise FatalApiError(
                    f'{route(name).path}: expected {{"plugins": [...]}}', kind="other", route=name
                )
            found += [i for i in items if isinstance(i, dict)]
            pagination = doc.get("pagination")
            token = pagination.get("next_page_token") if isinstance(pagination, dict) else None
            if not isinstance(token, str) or not token:
                break
        return found

    async def apps(self, message: dict[str, Any]) -> Any:
        """The legacy apps MCP gateway: one JSON-RPC message in, the gateway's answer out."""
        return await self.call("wham.apps", body=message)


def _objects(doc: Any, what: str) -> list[dict[str, Any]]:
    """A bare JSON array of objects (the environments routes answer one)."""
    if isinstance(doc, dict) and isinstance(doc.get("items"), list):
        doc = doc["items"]
    if not isinstance(doc, list):
        raise FatalApiError(f"{what}: expected a JSON array", kind="other")
    return [d for d in doc if isinstance(d, dict)]


def _describe(text: str) -> str:
    return "an HTML page" if text.lstrip().startswith("<") else f"non-JSON text ({text[:60]!r})"


def _error_detail(text: str) -> str:
    try:
        doc = textsafe.loads(text)
    except ValueError:
        return _describe(text)
    if isinstance(doc, dict):
        err = doc.get("error") or doc.get("detail") or doc
        if isinstance(err, dict):
            return str(err.get("message") or err.get("code") or err)
        return str(err)
    return str(doc)[:200]

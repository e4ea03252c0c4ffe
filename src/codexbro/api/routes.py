"""The route map: every outbound request codexbro can make, with its bucket.

Clients never build URLs by hand: they look a route up here and call ``route.url(base)``, so
inspection (``codexbro routes``, traces) and the wire layer can never disagree.

Buckets:
- ``public_api``        https://api.openai.com/v1/...
- ``codex_backend``     https://chatgpt.com/backend-api/codex/... (model traffic under ChatGPT login)
- ``chatgpt_ecosystem`` other https://chatgpt.com/backend-api/... families (wham, connectors, …)
- ``auth``              the OAuth issuer (https://auth.openai.com)
- ``third_party``       model traffic to any other Responses-compatible endpoint (local servers, …)
- ``in_process``        the embedded model (``embedded://``): no network at all (codexbro's addition)
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from msgspec import Struct

PUBLIC_API = "public_api"
CODEX_BACKEND = "codex_backend"
CHATGPT_ECOSYSTEM = "chatgpt_ecosystem"
AUTH = "auth"
THIRD_PARTY = "third_party"
IN_PROCESS = "in_process"
BUCKETS = (PUBLIC_API, CODEX_BACKEND, CHATGPT_ECOSYSTEM, AUTH, THIRD_PARTY, IN_PROCESS)


class Route(Struct, frozen=True):
    """One endpoint. ``family`` says which base URL it hangs off:

    - ``model``: the provider base (``.../v1`` or ``.../backend-api/codex``)
    - ``chatgpt``: ``chatgpt_base_url`` (``https://chatgpt.com/backend-api/``)
    - ``auth``: the OAuth issuer
    """

    name: str
    method: str
    path: str
    family: str
    purpose: str
    auth_headers: str
    implemented: bool = False  # does codexbro call it today (inspection says so honestly)

    def template(self, base: str) -> str:
        """The URL with its ``{parameters}`` left in, for maps and docs."""
        return base.rstrip("/") + "/" + self.path.lstrip("/")

    def url(self, base: str, query: dict[str, str] | None = None, **params: str) -> str:
        path = self.path
        for key, value in params.items():
            path = path.replace("{" + key + "}", quote(value, safe=""))
        if "{" in path:
            raise ValueError(f"route {self.name}: unfilled parameters in {path}")
        url = base.rstrip("/") + "/" + path.lstrip("/")
        if query:
            # Upstream joins query_params unencoded (`?k=v&…`); keep that for Azure's api-version.
            url += ("&" if "?" in url else "?") + "&".join(f"{k}={v}" for k, v in query.items())
        return url


def bucket_for_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "embedded":
        return IN_PROCESS
    host = (parts.hostname or "").lower()
    path = parts.path
    if host == "api.openai.com":
        return PUBLIC_API
    if host in ("chatgpt.com", "chat.openai.com"):
        if path.startswith("/backend-api/codex"):
            return CODEX_BACKEND
        return CHATGPT_ECOSYSTEM
    if host == "auth.openai.com":
        return AUTH
    return THIRD_PARTY


def bucket_for(route: Route, url: str) -> str:
    """The bucket of a concrete request. Loopback fakes of OpenAI services keep the route's bucket
    by family so tests see the same classification as production."""
    bucket = bucket_for_url(url)
    if bucket != THIRD_PARTY:
        return bucket
    if route.family == "chatgpt":
        return CHATGPT_ECOSYSTEM
    if route.family == "auth":
        return AUTH
    return THIRD_PARTY


_BEARER = "Authorization: Bearer <token>"
_CHATGPT = "Authorization: Bearer <access token>, ChatGPT-Account-ID"

ROUTES: tuple[Route, ...] = (
    # Model traffic (provider base: public API, ChatGPT Codex backend or a third-party endpoint).
    Route("responses.create", "POST", "responses", "model", "stream one model response (SSE)", _BEARER, True),
    Route("responses.websocket", "GET", "responses", "model", "Responses over WebSocket", _BEARER, True),
    Route(
        "chat.completions",
        "POST",
        "chat/completions",
        "model",
        "chat-completions bridge (wire_api = chat)",
        _BEARER,
        True,
    ),
    Route("responses.compact", "POST", "responses/compact", "model", "remote compaction", _BEARER, True),
    Route("models.list", "GET", "models", "model", "live model catalog", _BEARER, True),
    Route(
        "realtime.connect", "GET", "realtime", "model", "realtime voice session (WebSocket)", _BEARER, True
    ),
    Route(
        "audio.transcriptions",
        "POST",
        "audio/transcriptions",
        "model",
        "speech to text (API key mode)",
        _BEARER,
        True,
    ),
    Route(
        "connectors.gateway_mcp",
        "POST",
        "connectors/gateways/flat/mcp",
        "model",
        "connectors MCP gateway (ChatGPT connectors as MCP; [features] apps_mcp_gateway)",
        _CHATGPT,
        True,
    ),
    # ChatGPT backend ecosystem (chatgpt_base_url).
    Route("wham.usage", "GET", "wham/usage", "chatgpt", "usage and rate limits", _CHATGPT, True),
    Route("wham.tasks.list", "GET", "wham/tasks/list", "chatgpt", "list cloud tasks", _CHATGPT, True),
    Route("wham.tasks.get", "GET", "wham/tasks/{task_id}", "chatgpt", "fetch a cloud task", _CHATGPT, True),
    Route(
        "wham.tasks.sibling_turns",
        "GET",
        "wham/tasks/{task_id}/turns/{turn_id}/sibling_turns",
        "chatgpt",
        "sibling attempts of a task turn",
        _CHATGPT,
        True,
    ),
    Route("wham.tasks.create", "POST", "wham/tasks", "chatgpt", "create a cloud task", _CHATGPT, True),
    Route(
        "wham.config.bundle",
        "GET",
        "wham/config/bundle",
        "chatgpt",
        "managed config and requirements (0.169)",
        _CHATGPT,
        True,
    ),
    Route(
        "wham.config.requirements",
        "GET",
        "wham/config/requirements",
        "chatgpt",
        "managed requirements (older route; used when the bundle is absent)",
        _CHATGPT,
        True,
    ),
    Route("wham.environments", "GET", "wham/environments", "chatgpt", "list environments", _CHATGPT, True),
    Route(
        "wham.environments.by_repo",
        "GET",
        "wham/environments/by-repo/{provider}/{owner}/{repo}",
        "chatgpt",
        "environments for a repository",
        _CHATGPT,
        True,
    ),
    Route(
        "wham.apps",
        "POST",
        "wham/apps",
        "chatgpt",
        "apps MCP gateway: ChatGPT connectors as MCP (default)",
        _CHATGPT,
        True,
    ),
    Route(
        "connectors.directory.list",
        "GET",
        "connectors/directory/list",
        "chatgpt",
        "connector directory",
        _CHATGPT,
        True,
    ),
    Route(
        "connectors.directory.list_workspace",
        "GET",
        "connectors/directory/list_workspace",
        "chatgpt",
        "workspace connectors",
        _CHATGPT,
        True,
    ),
    Route("plugins.list", "GET", "ps/plugins/list", "chatgpt", "remote plugin catalog", _CHATGPT, True),
    Route("plugins.installed", "GET", "ps/plugins/installed", "chatgpt", "installed plugins", _CHATGPT, True),
    Route("transcribe", "POST", "transcribe", "chatgpt", "speech to text (ChatGPT mode)", _CHATGPT, True),
    # OAuth issuer.
    Route("oauth.authorize", "GET", "oauth/authorize", "auth", "browser login (PKCE)", "none", True),
    Route("oauth.token", "POST", "oauth/token", "auth", "code exchange and token refresh", "none", True),
    Route("oauth.revoke", "POST", "oauth/revoke", "auth", "revoke on logout", "none", True),
    Route(
        "deviceauth.usercode",
        "POST",
        "api/accounts/deviceauth/usercode",
        "auth",
        "device-code login: get a code",
        "none",
        True,
    ),
    Route(
        "deviceauth.token",
        "POST",
        "api/accounts/deviceauth/token",
        "auth",
        "device-code login: poll",
        "none",
        True,
    ),
)

_BY_NAME = {r.name: r for r in ROUTES}


def route(name: str) -> Route:
    """Look a route up by name; an unknown name is a programming error."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no route named {name!r} in the route table") from None

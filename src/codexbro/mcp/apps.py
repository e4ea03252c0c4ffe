"""ChatGPT connectors ("apps") as an MCP server: for a ChatGPT login, the connectors the account
has enabled are one streamable-HTTP MCP server named ``codex_apps``, reached through the apps
gateway with the account's headers (``Authorization: Bearer <access token>``,
``ChatGPT-Account-ID``). Its tools join the menu like any server's (``mcp__codex_apps__TOOL``).

Which gateway, as upstream's ``codex_apps_mcp_url`` (codex-rs/codex-mcp, looked up in upstream's
source; not observed against the real service):
- by default the legacy path under ``chatgpt_base_url``: ``…/backend-api/wham/apps`` (a base
  without ``/backend-api`` gets ``/api/codex/apps``; ``…/api/codex`` gets ``/apps``);
- with ``[features] apps_mcp_gateway = true``: the connectors MCP gateway,
  ``https://api.openai.com/v1/connectors/gateways/flat/mcp`` (route ``connectors.gateway_mcp``).

``CODEX_CONNECTORS_TOKEN`` in the environment replaces the login's token (as upstream). Turning it
off: ``[features] apps = false`` (codexbro's switch; upstream gates apps on its own feature flags).

UNVERIFIED: the gateway's tool ``_meta`` keys naming each tool's connector (``connector_id``,
``connector_name``) — ``codexbro connectors active`` groups by them when present.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codexbro.api.routes import route
from codexbro.config.mcp_servers import HttpTransport, McpServerConfig
from codexbro.config.types import Config

CODEX_APPS = "codex_apps"
CONNECTORS_TOKEN_ENV = "CODEX_CONNECTORS_TOKEN"
CONNECTORS_MCP_BASE_URL = "https://api.openai.com/v1"


def gateway(config: Config) -> tuple[str, str]:
    """(URL, route name) of the apps MCP gateway for this config."""
    if config.features.get("apps_mcp_gateway") is True:
        return route("connectors.gateway_mcp").url(CONNECTORS_MCP_BASE_URL), "connectors.gateway_mcp"
    base = config.chatgpt_base_url.rstrip("/")
    if base.startswith(("https://chatgpt.com", "https://chat.openai.com")) and "/backend-api" not in base:
        base += "/backend-api"
    if "/backend-api" in base:
        return route("wham.apps").url(base), "wham.apps"
    if "/api/codex" in base:
        return f"{base}/apps", "wham.apps"
    return f"{base}/api/codex/apps", "wham.apps"


def apps_enabled(config: Config) -> bool:
    return config.features.get("apps") is not False and config.features.get("connectors") is not False


def apps_server(
    config: Config, *, token: str | None, account_id: str | None, env: Mapping[str, str]
) -> McpServerConfig | None:
    """The ``codex_apps`` server for a ChatGPT login (None: no token, or apps switched off)."""
    bearer = env.get(CONNECTORS_TOKEN_ENV, "").strip() or (token or "").strip()
    if not bearer or not apps_enabled(config):
        return None
    url, _route = gateway(config)
    headers = {"Authorization": f"Bearer {bearer}"}
    if account_id:
        headers["ChatGPT-Account-ID"] = account_id
    # A gateway that lists many connectors may be slow to answer tools/list: upstream allows 30 s.
    return McpServerConfig(name=CODEX_APPS, transport=HttpTransport(url=url, http_headers=headers),
                           startup_timeout_s=30.0, startup_timeout_set=True)  # fmt: skip


def connectors_of(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The connectors behind the gateway's tools, from each tool's ``_meta`` (UNVERIFIED keys)."""
    found: dict[str, dict[str, Any]] = {}
    for tool in tools:
        raw = tool.get("_meta")
        meta: dict[str, Any] = raw if isinstance(raw, dict) else {}
        cid = str(meta.get("connector_id") or meta.get("connectorId") or "")
        name = str(meta.get("connector_name") or meta.get("connectorName") or cid or "(unnamed)")
        entry = found.setdefault(cid or name, {"id": cid or None, "name": name, "tools": []})
        entry["tools"].append(str(tool.get("name")))
    return sorted(found.values(), key=lambda c: str(c["name"]).lower())

"""``codexbro routes``: the route map printed from the table the wire layer uses."""

from __future__ import annotations

import json
from typing import Any

from msgspec import Struct

from codexbro.api.routes import (
    AUTH,
    CHATGPT_ECOSYSTEM,
    CODEX_BACKEND,
    IN_PROCESS,
    PUBLIC_API,
    ROUTES,
    THIRD_PARTY,
    Route,
    bucket_for_url,
)
from codexbro.config.loader import CHATGPT_CODEX_BASE, OPENAI_API_BASE
from codexbro.config.types import Config

ISSUER = "https://auth.openai.com"
TITLES = {
    PUBLIC_API: "OpenAI public API",
    CODEX_BACKEND: "ChatGPT Codex backend (model traffic under ChatGPT login)",
    CHATGPT_ECOSYSTEM: "ChatGPT backend ecosystem (wham, connectors, plugins, transcription)",
    AUTH: "Auth (OAuth issuer)",
    THIRD_PARTY: "This config's provider (third-party endpoint)",
    IN_PROCESS: "This config's embedded model (in-process: nothing leaves the machine)",
}


class Row(Struct, frozen=True):
    bucket: str
    route: Route
    url: str
    status: str  # used | available | not implemented


def current_model_base(config: Config) -> tuple[str, str]:
    """(base URL, credential) the current config's model traffic would use — as exec resolves it
    (nothing configured and no credential: the embedded model)."""
    from codexbro.composition import resolve

    resolution = resolve(config, allow_missing_auth=True)
    if resolution.embedded:  # the provider's address, not one weights file's
        return resolution.provider.base_url or resolution.base_url, resolution.auth.source
    return resolution.base_url, resolution.auth.source


def _config_uses(route: Route, config: Config | None) -> bool:
    if config is None:
        return False
    if route.name == "responses.compact":
        from codexbro.core.compact import choose_strategy

        return choose_strategy(config.compaction_strategy, config.model_provider.is_openai) == "remote"
    # Sessions send responses.create; the rest (transcription, …) only on explicit commands.
    return route.name == "responses.create"


def _apps_gateway(config: Config | None) -> str | None:
    """The apps MCP gateway route a session under this config would use (a ChatGPT login with
    apps on), else None."""
    if config is None:
        return None
    from codexbro.auth import storage
    from codexbro.mcp.apps import apps_enabled, gateway

    auth = storage.load(config.codexbro_home)
    if auth is None or auth.tokens is None or not apps_enabled(config):
        return None
    return gateway(config)[1]


def _chatgpt_login(config: Config | None) -> bool:
    from codexbro.auth import storage
    from codexbro.errors import AuthError

    try:
        auth = storage.load(config.codexbro_home) if config is not None else None
    except AuthError:
        return False
    return auth is not None and auth.tokens is not None


def rows(config: Config | None) -> list[Row]:
    current = current_model_base(config)[0] if config else None
    current_bucket = bucket_for_url(current) if current else None
    bases = [(PUBLIC_API, OPENAI_API_BASE), (CODEX_BACKEND, CHATGPT_CODEX_BASE)]
    if current and current_bucket in (THIRD_PARTY, IN_PROCESS):
        bases.append((current_bucket, current))
    chatgpt_base = config.chatgpt_base_url if config else "https://chatgpt.com/backend-api/"
    out: list[Row] = []
    gateway = _apps_gateway(config)
    chatgpt_login = _chatgpt_login(config)
    for route in ROUTES:
        if route.name == "connectors.gateway_mcp":  # only ever at the public API (mcp/apps.py)
            targets = [(PUBLIC_API, route.template(OPENAI_API_BASE))]
        elif route.family == "model":
            # The embedded model answers requests in-process: only responses.create exists there.
            targets = [
                (bucket, route.template(base))
                for bucket, base in bases
                if bucket != IN_PROCESS or route.name == "responses.create"
            ]
        elif route.family == "chatgpt":
            targets = [(CHATGPT_ECOSYSTEM, route.template(chatgpt_base))]
        else:
            targets = [(AUTH, route.template(ISSUER))]
        for bucket, url in targets:
            if not route.implemented:
                status = "not implemented"
            elif route.family == "model" and current is not None and url == route.template(current):
                status = "used" if _config_uses(route, config) else "available"
            elif route.name == gateway:
                status = "used"  # this config's sessions reach the ChatGPT connectors through it
            elif route.family == "chatgpt" and chatgpt_login:
                status = "used"  # this login's sessions and commands (cloud, usage, plugins, …) send it
            else:
                status = "available"
            out.append(Row(bucket, route, url, status))
    return out


def _auth(row: Row) -> str:
    return "none (in-process)" if row.bucket == IN_PROCESS else row.route.auth_headers


def render(config: Config | None, as_json: bool) -> str:
    table = rows(config)
    if as_json:
        doc: list[dict[str, Any]] = [
            {"bucket": r.bucket, "name": r.route.name, "method": r.route.method, "url": r.url,
             "purpose": r.route.purpose, "auth": _auth(r), "status": r.status}
            for r in table
        ]  # fmt: skip
        return json.dumps(doc, indent=2)
    lines = [
        "codexbro route map — every request codexbro can make, from the route table the wire layer uses",
        "",
    ]
    if config is not None:
        base, auth = current_model_base(config)
        lines.append(
            f"current config: provider `{config.model_provider_id}`, model traffic to {base} ({auth})"
        )
        lines.append("")
    for bucket in (PUBLIC_API, CODEX_BACKEND, THIRD_PARTY, IN_PROCESS, CHATGPT_ECOSYSTEM, AUTH):
        group = [r for r in table if r.bucket == bucket]
        if not group:
            continue
        lines.append(f"{TITLES[bucket]}  [{bucket}]")
        for r in group:
            lines.append(f"  {r.route.method:<5} {r.url}")
            lines.append(f"        {r.route.name} — {r.route.purpose}; auth: {_auth(r)}; {r.status}")
        lines.append("")
    lines.append(
        "status: used = this config sends it (with a ChatGPT login: the ChatGPT backend's commands too); "
        "available = codexbro sends it with another provider or login;"
    )
    lines.append("        not implemented = on the map (upstream calls it), not called by codexbro yet")
    return "\n".join(lines)

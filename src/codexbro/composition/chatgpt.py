"""The ChatGPT backend client for the ecosystem commands (usage, cloud tasks, connectors):
built from the config and the ChatGPT login the same way for every front end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from codexbro.config.types import Config
from codexbro.errors import AuthError

if TYPE_CHECKING:
    from codexbro.api.chatgpt.backend import ChatGPTBackend


@asynccontextmanager
async def chatgpt_backend(
    config: Config, *, timeout_s: float = 30.0, read_timeout_s: float | None = None
) -> AsyncIterator[ChatGPTBackend]:
    """A backend client under the stored ChatGPT login (refreshed as needed, recovered once from
    a 401); ``AuthError`` when there is no such login — an API key is not enough."""
    from codexbro.api.chatgpt.backend import ChatGPTBackend
    from codexbro.api.http import RouteHttp
    from codexbro.auth import storage
    from codexbro.auth.manager import AuthManager

    auth = storage.load(config.codexbro_home)
    if auth is None or auth.tokens is None:
        raise AuthError(
            "this needs a ChatGPT login (auth.json with ChatGPT tokens); an API key is not enough"
        )
    http = RouteHttp(timeout_s=timeout_s, read_timeout_s=read_timeout_s)
    manager = AuthManager(config.codexbro_home, http)

    async def headers() -> dict[str, str]:
        await manager.ensure_fresh()
        out = {"authorization": f"Bearer {manager.access_token}"}
        if manager.account_id:
            out["chatgpt-account-id"] = manager.account_id
        return out

    async def refresh() -> bool:
        return await manager.recover_unauthorized(1)

    try:
        yield ChatGPTBackend(http, config.chatgpt_base_url, headers, refresh)
    finally:
        await http.aclose()

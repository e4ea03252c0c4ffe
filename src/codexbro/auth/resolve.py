"""Which credential a provider's requests carry, and where it came from (for inspection).

Order for providers with ``requires_openai_auth`` (the built-in ``openai``):
``CODEXBRO_API_KEY`` > ``CODEX_API_KEY`` > ``auth.json`` (API key or ChatGPT tokens) >
``OPENAI_API_KEY``. Upstream 0.169 ignores ``OPENAI_API_KEY`` for requests; codexbro accepts it last,
because a user who has one set expects it to work (documented in docs/config.md).

Login flows are in ``login.py``, token refresh in ``manager.py``, auth.json writing in
``storage.py``; this module only reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from msgspec import Struct

from codexbro.auth import storage
from codexbro.config.types import ModelProviderInfo
from codexbro.errors import AuthError


class ProviderAuth(Struct, frozen=True):
    """The credential a provider uses, and where it came from (never shown: the token)."""

    mode: str  # "apikey" | "chatgpt" | "env_key" | "bearer" | "none"
    token: str | None
    source: str
    account_id: str | None = None

    def __repr__(self) -> str:  # never show the token
        return f"ProviderAuth(mode={self.mode!r}, source={self.source!r}, token={'<set>' if self.token else None})"


def resolve_auth(
    provider: ModelProviderInfo, home: Path, env: Mapping[str, str] | None = None
) -> ProviderAuth:
    env = os.environ if env is None else env
    if provider.env_key:
        value = env.get(provider.env_key, "").strip()
        if not value:
            hint = provider.env_key_instructions or (
                f"Set it in your shell: export {provider.env_key}=<your key>"
            )
            raise AuthError(f"Missing environment variable: `{provider.env_key}`. {hint}")
        return ProviderAuth("env_key", value, f"environment variable {provider.env_key}")
    if provider.experimental_bearer_token:
        return ProviderAuth(
            "bearer",
            provider.experimental_bearer_token,
            f"model_providers.{provider.id}.experimental_bearer_token",
        )
    if not provider.requires_openai_auth:
        return ProviderAuth("none", None, "no authentication (local or open endpoint)")

    for var in ("CODEXBRO_API_KEY", "CODEX_API_KEY"):
        value = env.get(var, "").strip()
        if value:
            return ProviderAuth("apikey", value, f"environment variable {var}")
    stored = storage.load(home)  # raises AuthError with a fix for a corrupt or foreign file
    if stored is not None:
        where = storage.auth_path(home)
        if stored.tokens is not None and stored.auth_mode != "apikey":
            return ProviderAuth(
                "chatgpt",
                stored.tokens.access_token,
                f"ChatGPT login in {where}",
                account_id=stored.tokens.account_id,
            )
        if stored.api_key and stored.api_key.strip():
            return ProviderAuth("apikey", stored.api_key.strip(), f"API key in {where}")
    value = env.get("OPENAI_API_KEY", "").strip()
    if value:
        return ProviderAuth("apikey", value, "environment variable OPENAI_API_KEY")
    raise AuthError(
        "No credentials for the OpenAI provider. Set CODEXBRO_API_KEY (export CODEXBRO_API_KEY=sk-...), "
        f"put an API key in {home / 'auth.json'}, or choose a local provider with --oss."
    )

"""Which credential a provider's requests carry, and where it came from (for inspection).

Order for providers with ``requires_openai_auth`` (the built-in ``openai``):
``CODEXBRO_API_KEY`` > ``CODEX_API_KEY`` > ``auth.json`` (API key or ChatGPT tokens) >
``OPENAI_API_KEY``. Upstream 0.169 ignores ``OPENAI_API_KEY`` for requests; codexbro accepts it last,
because a user who has one set expects it to work (documented in docs/config.md).

Login flows, token refresh and auth.json writing are the auth manager's job (issue 5); this module
only reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codexbro.config.types import ModelProviderInfo
from codexbro.errors import AuthError


@dataclass(frozen=True)
class ProviderAuth:
    mode: str  # "apikey" | "chatgpt" | "env_key" | "bearer" | "none"
    token: str | None
    source: str
    account_id: str | None = None

    def __repr__(self) -> str:  # never show the token
        return f"ProviderAuth(mode={self.mode!r}, source={self.source!r}, token={'<set>' if self.token else None})"


def read_auth_json(home: Path) -> dict[str, Any] | None:
    path = home / "auth.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuthError(f"cannot read {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except ValueError:
        raise AuthError(f"{path} is not valid JSON; remove it and log in again (`codexbro login`)") from None
    if not isinstance(doc, dict):
        raise AuthError(f"{path} does not hold a JSON object; remove it and log in again")
    return doc


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
    doc = read_auth_json(home)
    if doc is not None:
        key = doc.get("OPENAI_API_KEY")
        tokens = doc.get("tokens")
        mode = doc.get("auth_mode")
        if isinstance(tokens, dict) and mode != "apikey" and isinstance(tokens.get("access_token"), str):
            account = tokens.get("account_id")
            return ProviderAuth(
                "chatgpt",
                tokens["access_token"],
                f"ChatGPT login in {home / 'auth.json'}",
                account_id=account if isinstance(account, str) else None,
            )
        if isinstance(key, str) and key.strip():
            return ProviderAuth("apikey", key.strip(), f"API key in {home / 'auth.json'}")
    value = env.get("OPENAI_API_KEY", "").strip()
    if value:
        return ProviderAuth("apikey", value, "environment variable OPENAI_API_KEY")
    raise AuthError(
        "No credentials for the OpenAI provider. Set CODEXBRO_API_KEY (export CODEXBRO_API_KEY=sk-...), "
        f"put an API key in {home / 'auth.json'}, or choose a local provider with --oss."
    )

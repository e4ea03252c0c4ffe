"""Logout: revoke the ChatGPT refresh token at the issuer, then remove the local credential.

Upstream 0.169's ``codex logout`` (captured against a loopback server through its
``CODEX_REVOKE_TOKEN_URL_OVERRIDE``; ``tests/fixtures/codex-0.169/logout-revoke.json``) sends one
request, best effort, and removes ``auth.json`` whatever the answer::

    POST https://auth.openai.com/oauth/revoke
    content-type: application/json
    {"token": "<refresh token>", "token_type_hint": "refresh_token", "client_id": "app_EMoamEEZ73f0CkXaXp7hrann"}

An API-key login sends nothing. codexbro sends the same request (URL overridable with
``CODEXBRO_REVOKE_TOKEN_URL_OVERRIDE``, or upstream's variable) and also removes the credential when
the revoke fails — but says so, with the reason, where upstream says nothing: a token that was not
revoked stays valid at the issuer until it expires.
"""

from __future__ import annotations

import os
from pathlib import Path

from msgspec import Struct

from codexbro.api.routes import route
from codexbro.auth import storage
from codexbro.auth.manager import CLIENT_ID, DEFAULT_ISSUER
from codexbro.errors import TransportError

REVOKE = route("oauth.revoke")
TIMEOUT_S = 10.0


def revoke_url(issuer: str = DEFAULT_ISSUER) -> str:
    override = os.environ.get("CODEXBRO_REVOKE_TOKEN_URL_OVERRIDE") or os.environ.get(
        "CODEX_REVOKE_TOKEN_URL_OVERRIDE"
    )
    return override or REVOKE.url(issuer)


class LogoutResult(Struct, frozen=True):
    removed: bool  # a credential was stored and is gone
    revoked: bool | None  # None: nothing to revoke (API key, or not logged in)
    problem: str | None = None  # why the revoke failed


async def logout(home: Path, *, headers: dict[str, str], issuer: str = DEFAULT_ISSUER) -> LogoutResult:
    """Revoke (ChatGPT login), then delete the stored credential — always, even when the revoke
    fails. Never raises for a network or server problem: the result says what happened.
    ``headers``: the front end's ``originator`` and ``user-agent``."""
    auth = storage.load(home)
    revoked: bool | None = None
    problem = None
    if auth is not None and auth.tokens is not None and auth.tokens.refresh_token:
        revoked, problem = await _revoke(auth.tokens.refresh_token, revoke_url(issuer), headers)
    removed = storage.delete(home)
    return LogoutResult(removed, revoked, problem)


async def _revoke(refresh_token: str, url: str, headers: dict[str, str]) -> tuple[bool, str | None]:
    from codexbro.api.http import RouteHttp

    headers = {**headers, "content-type": "application/json"}
    http = RouteHttp(timeout_s=TIMEOUT_S, tls=url.startswith("https://"))
    body = {"token": refresh_token, "token_type_hint": "refresh_token", "client_id": CLIENT_ID}
    try:
        response = await http.request(REVOKE, url, headers=headers, json_body=body)
    except TransportError as exc:
        return False, f"{url} unreachable: {exc.detail}"
    except ValueError as exc:  # a plain-http client asked for https (cannot happen) or a bad URL
        return False, str(exc)
    finally:
        await http.aclose()
    if 200 <= response.status_code < 300:
        return True, None
    return False, f"{url} answered HTTP {response.status_code}"

"""ChatGPT token lifecycle: refresh before expiry and on 401.

- Before a request: refresh when the access token's ``exp`` is past (or within a minute), or, when it
  has none, when ``last_refresh`` is older than 8 days.
- On 401: first re-read auth.json (another process may have refreshed already); if nothing
  changed, refresh with the refresh token; if that fails too, the 401 stands.
- ``POST {issuer}/oauth/token`` with JSON ``{client_id, grant_type: refresh_token, refresh_token}``
  (URL overridable with ``CODEXBRO_REFRESH_TOKEN_URL_OVERRIDE`` for tests and proxies).
- A refresh token that expired, was reused or was revoked is a permanent error telling the user to
  log in again; other failures say the refresh can be retried.
- Refresh tokens rotate: each is good for one refresh. Two codexbro processes refreshing the same
  login at once would burn it (the second is "reused" and the login is dead), so the whole
  read–refresh–write runs under an exclusive lock (``auth.json.lock`` beside auth.json, ``flock``);
  whoever waited re-reads auth.json and finds the fresh tokens instead of refreshing again. Upstream
  Codex sharing the home does not take this lock: a Codex and a codexbro refreshing in the same
  instant can still collide (the re-read before refreshing narrows it to that instant).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from codexbro.api.http import RouteHttp
from codexbro.api.routes import route
from codexbro.auth import storage
from codexbro.errors import AuthError, TransportError
from codexbro.records import replace

CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
DEFAULT_ISSUER = "https://auth.openai.com"
log = logging.getLogger(__name__)
LOCK_TIMEOUT_S = 60.0  # a refresh takes well under a second; a holder this long is stuck
TOKEN = route("oauth.token")
PERMANENT = {
    "refresh_token_expired": "has expired",
    "refresh_token_reused": "was already used",
    "refresh_token_invalidated": "was revoked",
}


def token_url(issuer: str = DEFAULT_ISSUER) -> str:
    override = os.environ.get("CODEXBRO_REFRESH_TOKEN_URL_OVERRIDE") or os.environ.get(
        "CODEX_REFRESH_TOKEN_URL_OVERRIDE"
    )
    return override or TOKEN.url(issuer)


def needs_refresh(auth: storage.AuthFile, *, now: float | None = None) -> bool:
    if auth.tokens is None:
        return False
    now = time.time() if now is None else now
    exp = storage.jwt_claims(auth.tokens.access_token).get("exp")
    if isinstance(exp, int | float):
        return exp <= now + 60
    if auth.last_refresh:
        try:
            last = datetime.fromisoformat(auth.last_refresh.replace("Z", "+00:00"))
        except ValueError:
            return True
        return datetime.now(UTC) - last > timedelta(days=8)
    return False


class AuthManager:
    """A ChatGPT login's tokens: refreshed before they expire and after a 401, under a cross-process lock."""

    def __init__(self, home: Path, http: RouteHttp, issuer: str = DEFAULT_ISSUER) -> None:
        self.home = home
        self.http = http
        self.issuer = issuer
        self.auth = storage.load(home)

    @property
    def access_token(self) -> str | None:
        return self.auth.tokens.access_token if self.auth and self.auth.tokens else None

    @property
    def account_id(self) -> str | None:
        return self.auth.tokens.account_id if self.auth and self.auth.tokens else None

    async def ensure_fresh(self) -> None:
        if self.auth is not None and needs_refresh(self.auth):
            await self.refresh("expired")

    async def recover_unauthorized(self, step: int) -> bool:
        """Upstream's recovery, one step per 401: (0) re-read auth.json and retry — another process may
        have refreshed, or the server may have been briefly wrong; (1) refresh and retry. False: give up."""
        if step == 0:
            reloaded = storage.load(self.home)
            if reloaded is None or reloaded.tokens is None:
                raise AuthError("the ChatGPT login was removed (auth.json is gone): run `codexbro login`")
            if (
                self.account_id
                and reloaded.tokens.account_id
                and reloaded.tokens.account_id != self.account_id
            ):
                raise AuthError(
                    "auth.json now belongs to a different ChatGPT account: you have since logged out or signed in "
                    "to another account; start a new session"
                )
            self.auth = reloaded
            return True
        if step == 1:
            used = self.access_token
            await self.refresh("unauthorized_recovery")
            return self.access_token != used
        return False

    async def refresh(self, reason: str) -> None:
        lock = await self._lock()
        try:
            await self._refresh_locked(reason)
        finally:
            storage.unlock(lock)

    async def _lock(self, timeout_s: float = LOCK_TIMEOUT_S) -> int:
        deadline = asyncio.get_running_loop().time() + timeout_s
        told = False
        while (fd := storage.try_lock(self.home)) is None:
            if not told:
                log.info("waiting for another process refreshing the ChatGPT login (%s)", storage.LOCK_NAME)
                told = True
            if asyncio.get_running_loop().time() > deadline:
                raise AuthError(
                    f"another process has held {self.home / storage.LOCK_NAME} for {timeout_s:.0f} s while "
                    "refreshing the ChatGPT login; try again (or remove the file if no codexbro is running)"
                )
            await asyncio.sleep(0.05)
        return fd

    async def _refresh_locked(self, reason: str) -> None:
        current = storage.load(self.home) or self.auth
        if current is None or current.tokens is None:
            raise AuthError("not logged in with ChatGPT: run `codexbro login`")
        if self.auth and self.auth.tokens and current.tokens.access_token != self.auth.tokens.access_token:
            self.auth = current  # another process refreshed meanwhile
            return
        body = {
            "client_id": CLIENT_ID,
            "grant_type": "refresh_token",
            "refresh_token": current.tokens.refresh_token,
        }
        if reason == "unauthorized_recovery":
            body["refresh_reason"] = reason
        url = token_url(self.issuer)
        try:
            response = await self.http.request(
                TOKEN, url, headers={"content-type": "application/json"}, json_body=body
            )
        except TransportError as exc:
            raise AuthError(
                f"could not refresh the ChatGPT token ({url} unreachable: {exc.detail}); try again"
            ) from None
        try:
            doc = json.loads(response.content)
        except ValueError:
            doc = {}
        if response.status_code != 200:
            err = doc.get("error") if isinstance(doc, dict) else None
            code = (err.get("code") if isinstance(err, dict) else err) or (
                doc.get("code") if isinstance(doc, dict) else None
            )
            if code in PERMANENT:
                raise AuthError(
                    f"Your access token could not be refreshed because your refresh token {PERMANENT[code]}. "
                    "Please log out and sign in again (`codexbro logout`, then `codexbro login`)."
                )
            if response.status_code == 401:
                raise AuthError(
                    "the ChatGPT login is no longer valid: run `codexbro logout`, then `codexbro login`"
                )
            raise AuthError(f"could not refresh the ChatGPT token (HTTP {response.status_code}); try again")
        tokens = current.tokens
        fresh = replace(
            tokens,
            id_token=doc.get("id_token") or tokens.id_token,
            access_token=doc.get("access_token") or tokens.access_token,
            refresh_token=doc.get("refresh_token") or tokens.refresh_token,
        )
        self.auth = replace(current, tokens=fresh, last_refresh=storage.now_iso())
        storage.save(self.home, self.auth)

"""``$CODEXBRO_HOME/auth.json`` in upstream's format, written atomically with mode 0600.

::

    {"auth_mode": "apikey", "OPENAI_API_KEY": "sk-…"}
    {"auth_mode": "chatgpt", "OPENAI_API_KEY": null,
     "tokens": {"id_token": "<JWT>", "access_token": "<JWT>", "refresh_token": "…", "account_id": "…"},
     "last_refresh": "2026-11-23T19:20:28.061263Z"}

JWT payloads are read (never verified) for ``exp``, the email and the ChatGPT account and plan.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from msgspec import Struct

from codexbro.errors import AuthError


class Tokens(Struct, frozen=True):
    id_token: str
    access_token: str
    refresh_token: str
    account_id: str | None = None


class AuthFile(Struct, frozen=True):
    auth_mode: str  # apikey | chatgpt
    api_key: str | None = None
    tokens: Tokens | None = None
    last_refresh: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"auth_mode": self.auth_mode, "OPENAI_API_KEY": self.api_key}
        if self.tokens is not None:
            doc["tokens"] = {
                "id_token": self.tokens.id_token,
                "access_token": self.tokens.access_token,
                "refresh_token": self.tokens.refresh_token,
                "account_id": self.tokens.account_id,
            }
        if self.last_refresh is not None:
            doc["last_refresh"] = self.last_refresh
        return doc


def auth_path(home: Path) -> Path:
    override = os.environ.get("CODEXBRO_AUTH_HOME")
    return (Path(override).expanduser() if override else home) / "auth.json"


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT (unverified); {} when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        doc = json.loads(payload)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def load(home: Path) -> AuthFile | None:
    path = auth_path(home)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuthError(f"cannot read {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except ValueError:
        raise AuthError(f"{path} is not valid JSON; run `codexbro logout` and log in again") from None
    if not isinstance(doc, dict):
        raise AuthError(f"{path} does not hold a JSON object; run `codexbro logout` and log in again")
    key = doc.get("OPENAI_API_KEY")
    tokens = doc.get("tokens")
    mode = doc.get("auth_mode") or ("apikey" if key and not tokens else "chatgpt")
    parsed = None
    if isinstance(tokens, dict):
        id_token = tokens.get("id_token")
        if isinstance(id_token, dict):  # legacy: claims stored parsed
            id_token = ""
        if not all(isinstance(tokens.get(k), str) for k in ("access_token", "refresh_token")):
            raise AuthError(f"{path}: the ChatGPT tokens are incomplete; run `codexbro login` again")
        account = tokens.get("account_id")
        access, refresh = tokens["access_token"].strip(), tokens["refresh_token"].strip()
        if any(not ch.isprintable() or ch.isspace() for ch in access + refresh):
            raise AuthError(f"{path}: a ChatGPT token holds a space or a control character; run `codexbro login` "
                            "again")  # fmt: skip
        parsed = Tokens(str(id_token or ""), access, refresh, account if isinstance(account, str) else None)
    if isinstance(key, str):
        key = key.strip()
        if any(not ch.isprintable() or ch.isspace() for ch in key):
            raise AuthError(
                f"{path}: OPENAI_API_KEY holds a space or a control character; run `codexbro login` again"
            )
    if mode == "apikey" and not (isinstance(key, str) and key.strip()):
        raise AuthError(
            f"{path}: auth_mode is apikey but OPENAI_API_KEY is empty; run `codexbro login` again"
        )
    if mode not in ("apikey", "chatgpt", "chatgptAuthTokens"):
        raise AuthError(f"{path}: unknown auth_mode `{mode}`")
    last = doc.get("last_refresh")
    return AuthFile(
        mode, key if isinstance(key, str) else None, parsed, last if isinstance(last, str) else None
    )


def save(home: Path, auth: AuthFile) -> Path:
    """Atomic write (temp file with 0600, fsync, rename): a crash never leaves half a file."""
    import tempfile  # only when writing: keeps it off the start-up path

    path = auth_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".auth.", suffix=".json", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(auth.to_json(), fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


LOCK_NAME = "auth.json.lock"


def try_lock(home: Path) -> int | None:
    """Take the exclusive lock around read–refresh–write of auth.json without waiting: the file
    descriptor holding it, or None when another process holds it. (A separate file: auth.json itself
    is replaced by rename, so a lock on it would not outlive a save.)"""
    import fcntl

    path = home / LOCK_NAME
    try:
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise AuthError(
            f"cannot open the login's lock file {path}: {exc.strerror or exc} — it must be a file you can "
            "write (remove it if no codexbro is running, e.g. one left by `sudo codexbro`)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlock(fd: int) -> None:
    os.close(fd)  # closing the descriptor releases the flock


def delete(home: Path) -> bool:
    try:
        auth_path(home).unlink()
        return True
    except FileNotFoundError:
        return False


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def describe(auth: AuthFile) -> str:
    """One line for ``login status`` (no secret, only a short key fingerprint)."""
    if auth.auth_mode == "apikey" and auth.api_key:
        key = auth.api_key
        return (
            f"Logged in using an API key - {key[:5]}***{key[-4:]}"
            if len(key) > 12
            else "Logged in using an API key"
        )
    claims = jwt_claims(auth.tokens.id_token) if auth.tokens else {}
    email = claims.get("email") or (claims.get("https://api.openai.com/profile") or {}).get("email")
    plan = (claims.get("https://api.openai.com/auth") or {}).get("chatgpt_plan_type")
    who = f" as {email}" if email else ""
    return f"Logged in using ChatGPT{who}" + (f" ({plan} plan)" if plan else "")

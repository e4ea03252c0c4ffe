"""ChatGPT login: browser (OAuth PKCE with a local callback server) and device code
. The issuer (default ``https://auth.openai.com``) and the callback
port (default 1455) can be changed with ``CODEXBRO_LOGIN_ISSUER`` / ``CODEXBRO_LOGIN_PORT`` (tests,
proxies). Tokens are exchanged through the route table and stored with ``storage.save`` (0600).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import secrets
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from codexbro.api.http import RouteHttp
from codexbro.api.routes import route
from codexbro.auth import storage
from codexbro.auth.manager import CLIENT_ID, DEFAULT_ISSUER
from codexbro.errors import AuthError, TransportError

SCOPE = "openid profile email offline_access api.connectors.read api.connectors.invoke"
SUCCESS_PAGE = b"<!doctype html><title>codexbro</title><p>Signed in to codexbro. You can close this tab.</p>"


def issuer() -> str:
    return (os.environ.get("CODEXBRO_LOGIN_ISSUER") or DEFAULT_ISSUER).rstrip("/")


def callback_port() -> int:
    return int(os.environ.get("CODEXBRO_LOGIN_PORT") or 1455)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce() -> tuple[str, str]:
    verifier = b64url(secrets.token_bytes(64))
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def authorize_url(base: str, redirect_uri: str, challenge: str, state: str) -> str:
    query = urlencode({
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": redirect_uri, "code_challenge": challenge,
        "code_challenge_method": "S256", "state": state, "scope": SCOPE, "id_token_add_organizations": "true",
        "codex_cli_simplified_flow": "true", "originator": "codex_cli_rs",
    })  # fmt: skip
    return f"{route('oauth.authorize').url(base)}?{query}"


def _tokens_to_auth(doc: dict[str, Any]) -> storage.AuthFile:
    id_token, access, refresh = doc.get("id_token"), doc.get("access_token"), doc.get("refresh_token")
    if not all(isinstance(v, str) and v for v in (id_token, access, refresh)):
        raise AuthError("the login server's token answer is missing id_token, access_token or refresh_token")
    claims = storage.jwt_claims(str(id_token)).get("https://api.openai.com/auth") or {}
    account = claims.get("chatgpt_account_id") if isinstance(claims, dict) else None
    tokens = storage.Tokens(
        str(id_token), str(access), str(refresh), account if isinstance(account, str) else None
    )
    return storage.AuthFile("chatgpt", None, tokens, storage.now_iso())


async def exchange_code(
    http: RouteHttp, base: str, code: str, redirect_uri: str, verifier: str
) -> storage.AuthFile:
    token = route("oauth.token")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "client_id": CLIENT_ID,
            "code_verifier": verifier}  # fmt: skip
    try:
        resp = await http.request(token, token.url(base), headers={"content-type": "application/x-www-form-urlencoded"},
                                  data=form)  # fmt: skip
    except TransportError as exc:
        raise AuthError(f"could not reach the login server at {base}: {exc.detail}") from None
    if resp.status_code != 200:
        raise AuthError(f"the login server refused the code exchange (HTTP {resp.status_code})")
    try:
        doc = json.loads(resp.content)
    except ValueError:
        raise AuthError(
            "the login server answered the code exchange with something other than JSON"
        ) from None
    return _tokens_to_auth(doc if isinstance(doc, dict) else {})


class _Callback:
    """The local server that receives ``/auth/callback?code&state`` from the browser."""

    def __init__(self, port: int, state: str, loop: asyncio.AbstractEventLoop) -> None:
        self.result: asyncio.Future[tuple[str, str]] = loop.create_future()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/cancel":
                    self._send(200, b"cancelled")
                    outer._finish(None, AuthError("login cancelled by another login attempt"))
                elif parts.path == "/auth/callback":
                    if query.get("state") != state:
                        self._send(400, b"State mismatch")
                        outer._finish(None, AuthError("login failed: the callback's state does not match (possible "
                                                      "forgery or a stale browser tab); run `codexbro login` again"))  # fmt: skip
                    elif not query.get("code"):
                        self._send(400, b"Missing authorization code")
                        outer._finish(
                            None, AuthError(f"login failed: {query.get('error_description') or 'no code'}")
                        )
                    else:
                        self._send(200, SUCCESS_PAGE)
                        outer._finish((query["code"], query["state"]), None)
                else:
                    self._send(404, b"not found")

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._loop = loop
        self.server = _bind(port, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _finish(self, value: tuple[str, str] | None, error: Exception | None) -> None:
        def settle() -> None:
            if not self.result.done():
                if error is not None:
                    self.result.set_exception(error)
                else:
                    assert value is not None
                    self.result.set_result(value)

        self._loop.call_soon_threadsafe(settle)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _bind(port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    for attempt in range(10):
        try:
            return ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:
            if attempt == 0:  # an earlier login may still be listening: ask it to stop
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/cancel", timeout=1).close()
            time.sleep(0.2)
    raise AuthError(
        f"port {port} on 127.0.0.1 is busy, so the login callback cannot listen; close whatever uses it, or use "
        "`codexbro login --device-auth` (or set CODEXBRO_LOGIN_PORT)"
    )


async def browser_login(
    home: Path, *, open_browser: bool, timeout_s: float = 600, show: Callable[[str], None] | None = None
) -> Path:
    """Sign in with ChatGPT in a browser (PKCE, a one-shot callback server); ``show`` receives the
    URL to open (default: printed on stderr with instructions)."""
    base, port = issuer(), callback_port()
    verifier, challenge = pkce()
    state = b64url(secrets.token_bytes(32))
    redirect_uri = f"http://127.0.0.1:{port}/auth/callback"
    callback = _Callback(port, state, asyncio.get_running_loop())
    http = RouteHttp(timeout_s=30.0)
    try:
        url = authorize_url(base, redirect_uri, challenge, state)
        if show is not None:
            show(url)
        else:
            print(f"Starting local login server on http://127.0.0.1:{port}.", file=sys.stderr)
            print(
                f"If your browser did not open, open this URL to sign in:\n\n{url}\n",
                file=sys.stderr,
                flush=True,
            )
            print(
                "On a machine without a browser, use `codexbro login --device-auth`.",
                file=sys.stderr,
                flush=True,
            )
        if open_browser:
            import webbrowser

            with contextlib.suppress(Exception):
                webbrowser.open(url)
        try:
            code, _ = await asyncio.wait_for(callback.result, timeout_s)
        except TimeoutError:
            raise AuthError(
                f"no sign-in arrived within {int(timeout_s)} s; run `codexbro login` again"
            ) from None
        auth = await exchange_code(http, base, code, redirect_uri, verifier)
        return storage.save(home, auth)
    finally:
        callback.close()
        await http.aclose()


async def device_login(home: Path, *, timeout_s: float = 900) -> Path:
    base = issuer()
    http = RouteHttp(timeout_s=30.0)
    try:
        start = route("deviceauth.usercode")
        try:
            resp = await http.request(start, start.url(base), headers={"content-type": "application/json"},
                                      json_body={"client_id": CLIENT_ID})  # fmt: skip
        except TransportError as exc:
            raise AuthError(f"could not reach the login server at {base}: {exc.detail}") from None
        if resp.status_code == 404:
            raise AuthError(
                "Device code login is not enabled for this server; use `codexbro login` in a browser"
            )
        doc = json.loads(resp.content) if resp.status_code == 200 else {}
        device_id, user_code = doc.get("device_auth_id"), doc.get("user_code") or doc.get("usercode")
        if not device_id or not user_code:
            raise AuthError(f"the login server did not start a device login (HTTP {resp.status_code})")
        interval = float(doc.get("interval") or 5)
        print(
            f"Open {base}/codex/device in a browser and enter the code: {user_code}",
            file=sys.stderr,
            flush=True,
        )
        poll = route("deviceauth.token")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(interval)
            resp = await http.request(poll, poll.url(base), headers={"content-type": "application/json"},
                                      json_body={"device_auth_id": device_id, "user_code": user_code})  # fmt: skip
            if resp.status_code in (403, 404):
                continue  # still pending
            if resp.status_code != 200:
                raise AuthError(f"device login failed (HTTP {resp.status_code})")
            doc = json.loads(resp.content)
            code, verifier = doc.get("authorization_code"), doc.get("code_verifier")
            if not code or not verifier:
                raise AuthError("device login: the server's answer has no authorization code")
            auth = await exchange_code(http, base, str(code), f"{base}/deviceauth/callback", str(verifier))
            return storage.save(home, auth)
        raise AuthError(
            "the device code expired before sign-in completed; run `codexbro login --device-auth` again"
        )
    finally:
        await http.aclose()

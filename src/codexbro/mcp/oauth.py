"""OAuth for streamable-HTTP MCP servers: ``codexbro mcp login|logout NAME``, and the tokens a
session sends (refreshed by the SDK when they expire).

The flow is the MCP authorization spec's, driven by the official SDK's ``OAuthClientProvider``, as
upstream 0.169's ``codex mcp login`` runs it: the server's 401 leads to its protected-resource and
authorization-server metadata; the client registers itself dynamically where the server offers
it (or uses ``[mcp_servers.NAME.oauth] client_id``/``client_secret``); the user approves in the
browser (``--no-browser``: the URL is printed); the code comes back to a one-shot callback listener
on 127.0.0.1 (``mcp_oauth_callback_port``, else any free port; ``mcp_oauth_callback_url`` replaces
the redirect URL sent); PKCE throughout. Tokens and the registered client are kept in
``$CODEXBRO_HOME/.credentials/mcp-oauth.json`` (0600; codexbro has no keyring store).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from codexbro.config.mcp_servers import HttpTransport, McpServerConfig
from codexbro.config.types import Config
from codexbro.errors import UserError
from codexbro.mcp import oauth_store

LOGIN_TIMEOUT_S = 300.0


class LoginRequired(Exception):
    """The server needs an interactive login that a session cannot do."""


class FileTokenStorage:
    """The SDK's ``TokenStorage`` over the 0600 credentials file."""

    def __init__(self, home: Path, name: str, url: str) -> None:
        self.home, self.name, self.url = home, name, url

    async def get_tokens(self) -> Any:
        from mcp.shared.auth import OAuthToken

        entry = oauth_store.load_tokens(self.home, self.name, self.url)
        if entry is None:
            return None
        tokens = dict(entry["tokens"])
        expires_at = tokens.pop("expires_at", None)
        if isinstance(expires_at, int | float):
            tokens["expires_in"] = max(0, int(expires_at - time.time()))
        return OAuthToken.model_validate(tokens)

    async def set_tokens(self, tokens: Any) -> None:
        doc = tokens.model_dump(mode="json", exclude_none=True)
        if tokens.expires_in is not None:
            doc["expires_at"] = int(time.time()) + int(tokens.expires_in)
        oauth_store.save(self.home, self.name, self.url, tokens=doc)

    async def get_client_info(self) -> Any:
        from mcp.shared.auth import OAuthClientInformationFull

        client = oauth_store.load_client(self.home, self.name, self.url)
        return OAuthClientInformationFull.model_validate(client) if client else None

    async def set_client_info(self, client_info: Any) -> None:
        oauth_store.save(
            self.home, self.name, self.url, client=client_info.model_dump(mode="json", exclude_none=True)
        )


def _http(server: McpServerConfig) -> HttpTransport:
    if not isinstance(server.transport, HttpTransport):
        raise UserError("OAuth login is only supported for streamable HTTP servers.")
    return server.transport


def provider(home: Path, server: McpServerConfig, *, redirect_uri: str, scopes: list[str] | None,
             redirect: Callable[[str], Awaitable[None]], callback: Callable[[], Awaitable[Any]]) -> Any:  # fmt: skip
    """The SDK's OAuth provider for ``server`` over the credentials file."""
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import OAuthClientMetadata

    class StoredLoginProvider(OAuthClientProvider):
        """The SDK's provider, knowing when a stored token expires: SDK 2.3 forgets the expiry of
        tokens it loads, so an expired stored token would be sent, refused, and mistaken for a
        missing login instead of refreshed. (Overrides a private hook; the SDK version is pinned.)"""

        async def _initialize(self) -> None:
            await super()._initialize()
            if self.context.current_tokens is not None:
                self.context.update_token_expiry(self.context.current_tokens)

    scope = " ".join(scopes or server.scopes) or None
    metadata = OAuthClientMetadata(
        client_name="codexbro", redirect_uris=[redirect_uri],  # type: ignore[list-item]
        grant_types=["authorization_code", "refresh_token"], response_types=["code"],
        token_endpoint_auth_method="client_secret_post" if server.oauth_client_secret else "none", scope=scope,
    )  # fmt: skip
    return StoredLoginProvider(_http(server).url, metadata, FileTokenStorage(home, server.name, _http(server).url),
                               redirect_handler=redirect, callback_handler=callback)  # fmt: skip


def session_auth(home: Path, server: McpServerConfig) -> Any | None:
    """For a session: the stored login (refreshed when it expires), or None when there is none.
    A server that wants a new interactive login fails to start with what to run."""
    t = _http(server)
    if oauth_store.load_tokens(home, server.name, t.url) is None:
        return None
    client = oauth_store.load_client(home, server.name, t.url) or {}
    uris = client.get("redirect_uris") or ["http://127.0.0.1/callback"]

    async def refuse(_url: str) -> None:
        raise LoginRequired(
            f"the login to `{server.name}` has expired: run `codexbro mcp login {server.name}`"
        )

    async def never() -> Any:
        raise LoginRequired(f"run `codexbro mcp login {server.name}`")

    return provider(home, server, redirect_uri=str(uris[0]), scopes=None, redirect=refuse, callback=never)


# ---- codexbro mcp login / logout -----------------------------------------------------------------


def login_command(
    config: Config, server: McpServerConfig, scopes: list[str] | None, *, open_browser: bool
) -> int:
    t = _http(server)
    if t.bearer_token_env_var:
        raise UserError(
            f"`{server.name}` authenticates with the bearer token in ${t.bearer_token_env_var}; "
            "remove `bearer_token_env_var` to use OAuth instead"
        )
    asyncio.run(_login(config, server, scopes, open_browser))
    print(f"Successfully logged in to MCP server '{server.name}'.")
    return 0


def logout_command(config: Config, server: McpServerConfig) -> int:
    t = _http(server)
    if oauth_store.delete(config.codexbro_home, server.name, t.url):
        print(f"Removed OAuth credentials for '{server.name}'.")
    else:
        print(f"No OAuth credentials stored for '{server.name}'.")
    return 0


async def _login(
    config: Config, server: McpServerConfig, scopes: list[str] | None, open_browser: bool
) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull

    from codexbro.mcp.connection import keep_sdk_logs_off_the_terminal

    keep_sdk_logs_off_the_terminal()
    got: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    expected: dict[str, str] = {}  # the state the authorization URL carries, once known
    port = config.raw.get("mcp_oauth_callback_port") or 0
    try:
        listener = await asyncio.start_server(lambda r, w: _callback(r, w, got, expected), "127.0.0.1", port)
    except OSError as exc:
        raise UserError(f"cannot listen for the OAuth callback on 127.0.0.1:{port}: {exc.strerror}") from None
    bound = listener.sockets[0].getsockname()[1]
    redirect_uri = str(config.raw.get("mcp_oauth_callback_url") or f"http://127.0.0.1:{bound}/callback")
    storage = FileTokenStorage(config.codexbro_home, server.name, _http(server).url)
    if server.oauth_client_id:  # a pre-registered client: no dynamic registration
        await storage.set_client_info(OAuthClientInformationFull(
            client_id=server.oauth_client_id, client_secret=server.oauth_client_secret,
            redirect_uris=[redirect_uri],  # type: ignore[list-item]
            token_endpoint_auth_method="client_secret_post" if server.oauth_client_secret else "none",
        ))  # fmt: skip

    async def show(url: str) -> None:
        state = parse_qs(urlsplit(url).query).get("state")
        if state:
            expected["state"] = state[0]
        expected["path"] = urlsplit(redirect_uri).path or "/"
        print(f"Open this URL to authorize codexbro with '{server.name}':\n{url}", flush=True)
        if open_browser:
            import webbrowser

            with contextlib.suppress(Exception):
                webbrowser.open(url)

    async def wait() -> Any:
        try:
            params = await asyncio.wait_for(got, LOGIN_TIMEOUT_S)
        except TimeoutError:
            raise UserError(
                f"no answer from the browser within {LOGIN_TIMEOUT_S:g} s; login cancelled"
            ) from None
        if "error" in params:
            from codexbro.textsafe import for_terminal

            detail = for_terminal(f"{params['error']} {params.get('error_description', '')}".strip())
            raise UserError(f"the server refused the login: {detail}")
        return AuthorizationCodeResult(
            code=params.get("code", ""), state=params.get("state"), iss=params.get("iss")
        )

    auth = provider(
        config.codexbro_home, server, redirect_uri=redirect_uri, scopes=scopes, redirect=show, callback=wait
    )
    try:
        async with listener:
            client = create_mcp_http_client(headers=dict(_http(server).http_headers), auth=auth)
            async with (
                client,
                streamable_http_client(_http(server).url, http_client=client) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
    except UserError:
        raise
    except BaseException as exc:
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        if isinstance(exc, UserError):
            raise exc from None
        if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
            raise
        raise UserError(f"OAuth login to '{server.name}' failed: {type(exc).__name__}: {exc}") from None
    if oauth_store.load_tokens(config.codexbro_home, server.name, _http(server).url) is None:
        raise UserError(
            f"'{server.name}' did not ask for a login (it answered without one); nothing was stored"
        )


async def _callback(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, got: asyncio.Future[dict[str, str]],
                    expected: dict[str, str]) -> None:  # fmt: skip
    """The browser's redirect: ``GET /callback?code=…&state=…`` (one line is all we need). Only a
    request on the redirect path carrying this login's ``state`` counts — a page that guesses the
    port cannot end or steer the login; anything else gets 400 and the listener keeps waiting."""
    try:
        line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1")
        parts = line.split()
        target = parts[1] if len(parts) >= 2 else "/"
        query = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
        ours = (
            urlsplit(target).path == expected.get("path", "/callback")
            and "state" in expected and query.get("state") == expected["state"]
        )  # fmt: skip
        ok = ours and bool(query.get("code") or query.get("error"))
        body = ("Login finished: you can close this window and go back to codexbro." if ok
                else "This is codexbro's OAuth callback; this request is not the login it waits for.").encode()  # fmt: skip
        writer.write(b"HTTP/1.1 " + (b"200 OK" if ok else b"400 Bad Request") +
                     b"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
        await writer.drain()
        if ok and not got.done():
            got.set_result(query)
    except Exception as exc:  # a malformed, huge or abandoned request: ignored, the login waits on
        print(
            f"codexbro: a bad request on the OAuth callback port was ignored ({type(exc).__name__})",
            file=sys.stderr,
        )
    finally:
        writer.close()

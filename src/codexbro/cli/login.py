"""``codexbro login [status] [--with-api-key]`` and ``codexbro logout``."""

from __future__ import annotations

import sys

from codexbro.auth import storage
from codexbro.config.loader import codexbro_home
from codexbro.errors import AuthError


def login(status: bool, with_api_key: bool, device_auth: bool, open_browser: bool = True) -> int:
    home = codexbro_home()
    try:
        if status:
            auth = storage.load(home)
            if auth is None:
                print("Not logged in")
                return 1
            print(storage.describe(auth))
            return 0
        if with_api_key:
            if sys.stdin.isatty():
                print("Error: pipe the key on stdin, e.g. printenv OPENAI_API_KEY | codexbro login --with-api-key",
                      file=sys.stderr)  # fmt: skip
                return 1
            print("Reading API key from stdin...", file=sys.stderr)
            key = sys.stdin.read().strip()
            if not key:
                print("Error: no API key was given on stdin", file=sys.stderr)
                return 1
            path = storage.save(home, storage.AuthFile("apikey", api_key=key))
            print(f"API key saved to {path}. Authentication is checked when you send a request.")
            return 0
        import asyncio

        from codexbro.auth.login import browser_login, device_login

        if device_auth:
            path = asyncio.run(device_login(home))
        else:
            path = asyncio.run(browser_login(home, open_browser=open_browser))
        auth = storage.load(home)
        print(
            f"Successfully logged in; credentials saved to {path}."
            + (f" {storage.describe(auth)}." if auth else "")
        )
        return 0
    except AuthError as err:
        print(f"Error: {err.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Login cancelled", file=sys.stderr)
        return 130


def logout() -> int:
    """Revoke a ChatGPT login at the issuer, then remove the stored credential (even when the
    revoke fails, which is said on stderr)."""
    import asyncio

    from codexbro.auth.revoke import logout as revoke_and_delete

    result = asyncio.run(revoke_and_delete(codexbro_home(), headers=client_headers()))
    if result.revoked is False:
        print(f"Warning: could not revoke the ChatGPT token ({result.problem}); it stays valid at the "
              "issuer until it expires. The local credential was removed.", file=sys.stderr)  # fmt: skip
    print("Successfully logged out" if result.removed else "Not logged in")
    return 0


def client_headers(originator: str = "codex_cli_rs") -> dict[str, str]:
    from codexbro.api.responses_client import originator_for, user_agent

    origin = originator_for(originator)
    return {"originator": origin, "user-agent": user_agent(origin)}

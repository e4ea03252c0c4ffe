"""``codexbro login [status]`` and ``codexbro logout``."""

from __future__ import annotations

import argparse
from typing import Any

from codexbro.cli.commands import subcommands


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "login", help="store credentials (browser, device code, or an API key from stdin)"
    )
    parser.add_argument("--with-api-key", action="store_true", help="read an API key from stdin and store it")
    parser.add_argument(
        "--device-auth", action="store_true", help="device-code login, for machines without a browser"
    )
    parser.add_argument(
        "--no-browser", action="store_true", help="print the sign-in URL without opening a browser"
    )
    parser.set_defaults(run=run, status=False)
    nested = subcommands(parser, "login_command")
    nested.add_parser("status", help="who is logged in, and how").set_defaults(status=True)
    sub.add_parser("logout", help="remove stored credentials").set_defaults(run=run_logout)


def run(ns: argparse.Namespace) -> int:
    from codexbro.cli.login import login

    return login(ns.status, ns.with_api_key, ns.device_auth, not ns.no_browser)


def run_logout(ns: argparse.Namespace) -> int:
    from codexbro.cli.login import logout

    return logout()

"""``codexbro mcp list|get|add|remove|login|logout``: the ``[mcp_servers]`` of config.toml, as
upstream's ``codex mcp``."""

from __future__ import annotations

import argparse
from typing import Any

from codexbro.cli.commands import leaf_config_options, leaf_flag, subcommands
from codexbro.cli.commands.options import add_config_options


def register(sub: Any) -> None:
    parent: argparse.ArgumentParser = sub.add_parser("mcp", help="manage the MCP servers in config.toml")
    add_config_options(parent)
    parent.set_defaults(run=run, mcp_action=None)
    nested = subcommands(parent, "mcp_command")

    def leaf(name: str, help_text: str, *, json: bool = False) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = nested.add_parser(name, help=help_text)
        if json:
            leaf_flag(parser, "--json", action="store_true", help="machine-readable output")
        leaf_config_options(parser)
        parser.set_defaults(mcp_action=name)
        return parser

    leaf("list", "the configured servers", json=True)
    leaf("get", "one server's settings", json=True).add_argument("name", metavar="NAME")
    add = leaf("add", "add a server: `add NAME -- COMMAND ARGS…` (stdio) or `add NAME --url URL`")
    add.add_argument("name", metavar="NAME")
    add.add_argument("server_command", nargs="*", metavar="COMMAND", help="the stdio server's command line")
    add.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                     help="a variable for the stdio server (repeatable)")  # fmt: skip
    add.add_argument("--url", help="URL of a streamable HTTP server")
    add.add_argument(
        "--bearer-token-env-var", metavar="ENV_VAR", help="variable holding the HTTP server's token"
    )
    add.add_argument("--oauth-client-id", metavar="CLIENT_ID", help="a pre-registered OAuth client id")
    add.add_argument("--oauth-client-secret", metavar="SECRET", help="that client's secret")
    add.add_argument("--oauth-resource", metavar="RESOURCE", help="the OAuth resource parameter for login")
    leaf("remove", "remove a server").add_argument("name", metavar="NAME")
    login = leaf("login", "OAuth login to a streamable HTTP server")
    login.add_argument("name", metavar="NAME")
    login.add_argument("--scopes", help="comma-separated scopes to ask for")
    login.add_argument("--no-browser", action="store_true", help="print the URL instead of opening a browser")
    leaf("logout", "forget a server's OAuth tokens").add_argument("name", metavar="NAME")


def run(ns: argparse.Namespace) -> int:
    from codexbro.cli import mcp_admin

    return mcp_admin.run(ns)

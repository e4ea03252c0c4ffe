"""``codexbro mcp-server``: codexbro as an MCP server over stdio (tools ``codex`` and ``codex-reply``)."""

from __future__ import annotations

import argparse
from typing import Any

from codexbro.cli.commands.options import add_config_options


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "mcp-server", help="serve codexbro as an MCP server over stdio (tools `codex`, `codex-reply`)"
    )
    add_config_options(parser)
    parser.set_defaults(run=run)


def run(ns: argparse.Namespace) -> int:
    from codexbro.mcp.server import serve

    return serve(ns.config_overrides, ns.profile)

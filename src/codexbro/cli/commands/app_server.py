"""``codexbro app-server``: the app-server protocol (v2) for IDEs and SDKs."""

from __future__ import annotations

import argparse
from typing import Any

from codexbro.cli.commands.options import add_config_options


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "app-server",
        help="serve upstream's app-server protocol (JSON-RPC) over stdio or a loopback WebSocket",
    )
    parser.add_argument("--listen", default="stdio://", metavar="URL",
                        help="stdio:// (default) or ws://127.0.0.1:PORT (loopback; a token is printed at start)")  # fmt: skip
    add_config_options(parser)
    parser.set_defaults(run=run)


def run(ns: argparse.Namespace) -> int:
    from codexbro.appserver.serve import serve
    from codexbro.config.loader import Overrides, load_config
    from codexbro.logs import setup_file_logging

    base = Overrides(cli_overrides=list(ns.config_overrides), profile=ns.profile)
    config = load_config(base)  # a bad config is one line and exit 1, before any client connects
    setup_file_logging(config.codexbro_home)
    return serve(base, config.codexbro_home, ns.listen)

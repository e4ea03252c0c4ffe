"""``codexbro models [list|show SLUG] [--json] [--refresh]``: the catalog, without network use
unless ``--refresh`` asks for the live list."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from codexbro.cli.commands import leaf_config_options, leaf_flag, subcommands
from codexbro.cli.commands.options import add_config_options


def register(sub: Any) -> None:
    parser = sub.add_parser("models", help="list the model catalog, or show one model (no network)")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.add_argument(
        "--refresh", action="store_true", help="fetch the live list first (the only network use)"
    )
    add_config_options(parser)
    parser.set_defaults(run=run, slug=None)
    nested = subcommands(parser, "models_command")
    listing = nested.add_parser(
        "list", help="every model in the catalog, and the embedded models (the default)"
    )
    show = nested.add_parser(
        "show", help="one model's metadata, how its slug resolved, and what codexbro ignores"
    )
    show.add_argument("slug")
    for leaf in (listing, show):
        leaf_flag(leaf, "--json", action="store_true", help="JSON instead of a table")
        leaf_flag(leaf, "--refresh", action="store_true", help="fetch the live list first")
        leaf_config_options(leaf)


def run(ns: argparse.Namespace) -> int:
    from codexbro.cli import models as models_cli
    from codexbro.config.loader import Overrides, load_config

    config = load_config(Overrides(cli_overrides=ns.config_overrides, profile=ns.profile))
    if ns.refresh:
        import asyncio

        print(asyncio.run(models_cli.refresh_now(config)), file=sys.stderr)
    if ns.models_command == "show":
        print(models_cli.show_model(config, ns.slug))
    else:
        print(models_cli.list_models(config, ns.json))
    return 0

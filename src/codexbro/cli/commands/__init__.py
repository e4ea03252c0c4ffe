"""One module per codexbro command. Each ``register(sub)`` adds its parser — argparse only: the
implementation is imported when the command runs — and sets ``run`` (``Namespace → exit code``)
as the parser's default, so ``main`` dispatches without knowing the commands."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

MODULES = (
    "exec_cmd",
    "apply_patch",
    "login",
    "models",
    "chatgpt",
    "inspection",
    "sandbox",
    "mcp",
    "mcp_server",
    "app_server",
    "transcribe",
    "realtime",
    "batch",
)


def register_all(sub: Any) -> None:
    for name in MODULES:
        importlib.import_module(f"codexbro.cli.commands.{name}").register(sub)


def subcommands(parser: argparse.ArgumentParser, dest: str) -> Any:
    """Nested subcommands under ``parser`` (none chosen: the parser's own ``run`` default applies)."""
    return parser.add_subparsers(dest=dest, metavar="SUBCOMMAND")


def leaf_config_options(parser: argparse.ArgumentParser) -> None:
    """``-c``/``-p`` after a nested subcommand too (``models show X -c k=v``): kept apart and added
    after the parent's by ``main``, so neither replaces the other."""
    parser.add_argument("-c", "--config", dest="leaf_overrides", action="append", default=argparse.SUPPRESS,
                        metavar="KEY=VALUE", help="override a config value")  # fmt: skip
    parser.add_argument(
        "-p", "--profile", dest="leaf_profile", default=argparse.SUPPRESS, help="config profile to apply"
    )


def leaf_flag(parser: argparse.ArgumentParser, *names: str, **kwargs: Any) -> None:
    """A flag accepted both before and after a nested subcommand (``models --json show X`` and
    ``models show X --json``): on the leaf it only overrides when given."""
    parser.add_argument(*names, default=argparse.SUPPRESS, **kwargs)

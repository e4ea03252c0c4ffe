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


# Which module registers each command name (a test checks it against ``register``): a command's
# parser is built alone — argparse spends ~0.3 ms of gettext lookups per option, ~15 ms for all.
COMMANDS = {
    "exec": "exec_cmd", "e": "exec_cmd", "apply-patch": "apply_patch", "login": "login", "logout": "login",
    "models": "models", "usage": "chatgpt", "cloud": "chatgpt", "connectors": "chatgpt", "plugin": "chatgpt",
    "routes": "inspection", "trace": "inspection", "debug": "inspection", "sandbox": "sandbox", "mcp": "mcp",
    "mcp-server": "mcp_server", "app-server": "app_server", "transcribe": "transcribe", "realtime": "realtime",
    "batch": "batch",
}  # fmt: skip


def register_all(sub: Any, only: str | None = None) -> None:
    """Every command's parser, or only the one registering command ``only``."""
    for name in MODULES if only is None else (COMMANDS[only],):
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

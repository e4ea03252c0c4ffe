"""``codexbro usage``, ``codexbro cloud list|show|create``, ``codexbro connectors list|workspace|active``:
the ChatGPT backend ecosystem (a ChatGPT login is needed)."""

from __future__ import annotations

import argparse
from typing import Any

from codexbro.cli.commands import leaf_config_options, leaf_flag, subcommands
from codexbro.cli.commands.options import add_config_options


def _parent(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    parser.add_argument("--json", action="store_true", help="the server's JSON instead of a table")
    add_config_options(parser)
    parser.set_defaults(run=run, action=None, args=[])
    return parser


def _leaf(nested: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    leaf: argparse.ArgumentParser = nested.add_parser(name, help=help_text)
    leaf_flag(leaf, "--json", action="store_true", help="the server's JSON instead of a table")
    leaf_config_options(leaf)
    leaf.set_defaults(action=name)
    return leaf


def register(sub: Any) -> None:
    _parent(sub, "usage", "ChatGPT plan usage and rate-limit windows (needs a ChatGPT login)")
    cloud = subcommands(_parent(sub, "cloud", "Codex cloud tasks: list, show, create"), "cloud_command")
    _leaf(cloud, "list", "the most recent tasks (the default)")
    _leaf(cloud, "show", "one task, as JSON").add_argument("task_id", metavar="TASK_ID")
    create = _leaf(cloud, "create", "start a task in an environment")
    create.add_argument("environment_id", metavar="ENVIRONMENT_ID")
    create.add_argument("prompt", nargs="+", metavar="PROMPT")
    conn = subcommands(
        _parent(sub, "connectors", "ChatGPT connectors: the directory, your workspace's, the active ones"),
        "connectors_command",
    )
    _leaf(conn, "list", "every connector in the directory (the default)")
    _leaf(conn, "workspace", "the connectors of your workspace")
    _leaf(
        conn,
        "active",
        "the connectors your account has enabled, with their tools (through the apps MCP gateway)",
    )


def run(ns: argparse.Namespace) -> int:
    from codexbro.cli import chatgpt

    args: list[str] = []
    if ns.action == "show":
        args = [ns.task_id]
    elif ns.action == "create":
        args = [ns.environment_id, *ns.prompt]
    action = ns.action or ("list" if ns.command in ("cloud", "connectors") else None)
    return chatgpt.run(ns.command, action, args, ns.json, ns.config_overrides)

"""``codexbro usage``, ``codexbro cloud list|status|diff|apply|exec|envs|show|create``,
``codexbro connectors list|workspace|active``, ``codexbro plugin list``: the ChatGPT backend
ecosystem (a ChatGPT login is needed)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
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


def _bounded(name: str, low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be between {low} and {high}")
        return value

    return parse


def register(sub: Any) -> None:
    _parent(sub, "usage", "ChatGPT plan usage and rate-limit windows (needs a ChatGPT login)")
    cloud = subcommands(
        _parent(sub, "cloud", "Codex cloud tasks: list, status, diff, apply, exec, envs"), "cloud_command"
    )
    listing = _leaf(cloud, "list", "the most recent tasks (the default)")
    listing.add_argument("--env", metavar="ENV", help="only this environment (an id or a label)")
    listing.add_argument("--limit", type=_bounded("limit", 1, 20), default=20, metavar="N",
                         help="how many tasks (1-20; default 20)")  # fmt: skip
    listing.add_argument("--cursor", metavar="CURSOR", help="the next page (as the previous page says)")
    _leaf(cloud, "status", "a task's status; exits 1 unless it is ready").add_argument(
        "task_id", metavar="TASK_ID", help="a task id or its URL"
    )
    attempt = _bounded("attempt", 1, 4)
    diff = _leaf(cloud, "diff", "a task's unified diff (coloured on a terminal)")
    diff.add_argument("task_id", metavar="TASK_ID", help="a task id or its URL")
    diff.add_argument("--attempt", type=attempt, metavar="N", help="which attempt of a best-of-N task (1-4)")
    apply = _leaf(cloud, "apply", "apply a task's diff to this work tree: all of it, or nothing")
    apply.add_argument("task_id", metavar="TASK_ID", help="a task id or its URL")
    apply.add_argument("--attempt", type=attempt, metavar="N", help="which attempt of a best-of-N task (1-4)")
    apply.add_argument("--3way", dest="three_way", action="store_true",
                       help="merge a diff that does not fit, leaving conflict markers (listed)")  # fmt: skip
    apply.add_argument("--check", action="store_true", help="only say whether it applies; change nothing")
    submit = _leaf(cloud, "exec", "submit a task to Codex cloud")
    submit.add_argument("query", nargs="?", metavar="QUERY", help="the task (`-` or none: read stdin)")
    submit.add_argument("--env", metavar="ENV",
                        help="environment id or label (default: the one this repository's remote matches)")  # fmt: skip
    submit.add_argument("--attempts", type=attempt, default=1, metavar="N", help="best-of-N attempts (1-4)")
    submit.add_argument(
        "--branch", metavar="BRANCH", help="the branch to start from (default: the current one)"
    )
    _leaf(cloud, "envs", "the environments, and which ones this repository's remotes match")
    _leaf(cloud, "show", "one task, the server's JSON").add_argument("task_id", metavar="TASK_ID")
    create = _leaf(cloud, "create", "start a task in an environment (the server's answer as JSON)")
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
    plugin = subcommands(_parent(sub, "plugin", "ChatGPT plugins: the remote catalog"), "plugin_command")
    plugins = _leaf(plugin, "list", "installed plugins and what each provides (the default)")
    plugins.add_argument("--available", action="store_true", help="also the catalog's plugins not installed")


def run(ns: argparse.Namespace) -> int:
    if ns.command == "cloud":
        from codexbro.cli import cloud

        return cloud.run(ns.action or "list", _cloud_defaults(ns))
    if ns.command == "plugin":
        from codexbro.cli import plugins

        return plugins.run(ns)
    from codexbro.cli import chatgpt

    action = ns.action or ("list" if ns.command == "connectors" else None)
    return chatgpt.run(ns.command, action, [], ns.json, ns.config_overrides)


def _cloud_defaults(ns: argparse.Namespace) -> argparse.Namespace:
    """`codexbro cloud` alone is `cloud list` with its defaults."""
    for key, value in (("env", None), ("limit", 20), ("cursor", None)):
        if not hasattr(ns, key):
            setattr(ns, key, value)
    return ns

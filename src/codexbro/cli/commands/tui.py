"""``codexbro [OPTIONS] [PROMPT]``: the interactive agent (no subcommand). Its parser is separate
from the subcommands': a prompt is free text and could be any word."""

from __future__ import annotations

import argparse

from codexbro.cli.commands.options import APPROVAL_POLICIES, LOCAL_PROVIDERS, SANDBOX_MODES


def build_parser(kind: str | None = None) -> argparse.ArgumentParser:
    """``codexbro [PROMPT]``, or with ``kind`` ``codexbro resume|fork [ID]``."""
    if kind is None:
        parser = argparse.ArgumentParser(
            prog="codexbro",
            description="The interactive agent (a full-screen terminal app). Subcommands: codexbro --help.",
        )
        parser.add_argument("prompt", nargs="?", help="a first message, sent at once")
    else:
        what = "continue an earlier session" if kind == "resume" else "continue a copy of an earlier session"
        parser = argparse.ArgumentParser(prog=f"codexbro {kind}", description=f"{what} (no id: a picker)")
        parser.add_argument("session_id", nargs="?", help="session (thread) id, or a unique prefix")
        parser.add_argument(
            "--last", action="store_true", help=f"{kind} the most recent session in this directory"
        )
        parser.set_defaults(prompt=None)
    add = parser.add_argument
    add("-m", "--model", help="model slug to use")
    add(
        "-s",
        "--sandbox",
        choices=SANDBOX_MODES,
        help="sandbox policy (default: workspace-write in a git workspace)",
    )
    add(
        "-a",
        "--ask-for-approval",
        choices=APPROVAL_POLICIES,
        help="when to ask before running (default: on-request)",
    )
    add("-C", "--cd", metavar="DIR", help="working directory for the agent")
    add("-c", "--config", dest="config_overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value")  # fmt: skip
    add("-p", "--profile", help="config profile to apply")
    add("--oss", action="store_true", help="use a local open-weight model provider")
    add("--local-provider", choices=LOCAL_PROVIDERS, help="which local provider --oss uses")
    add("-i", "--image", dest="images", action="extend", nargs="+", default=[], metavar="FILE",
        help="attach images to the first message")  # fmt: skip
    add("--search", action="store_true", help="offer the model live web search")
    add("--full-auto", action="store_true", help="workspace-write sandbox, ask on request")
    add("--dangerously-bypass-approvals-and-sandbox", "--yolo", dest="yolo", action="store_true",
        help="no sandbox, no approvals: only inside an externally sandboxed environment")  # fmt: skip
    add("--add-dir", dest="add_dirs", action="append", default=[], metavar="DIR",
        help="another directory the agent may write to")  # fmt: skip
    add("--no-alt-screen", action="store_true", help="keep the transcript in the terminal's scrollback")
    return parser


def run(argv: list[str], overrides: list[str], profile: str | None) -> int:
    kind = argv[0] if argv and argv[0] in ("resume", "fork") else None
    ns = build_parser(kind).parse_args(argv[1:] if kind else argv)
    ns.config_overrides = overrides + ns.config_overrides
    ns.profile = ns.profile or profile
    from codexbro.tui.launch import run as launch

    return launch(ns, kind=kind)

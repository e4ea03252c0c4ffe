"""``codexbro exec [PROMPT]`` and ``exec resume|fork``: one task, headless. (``exec``'s own
subcommands are found before argparse runs: a prompt is free text and could be any word.)"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from codexbro.cli.commands.options import EXEC_VALUE_OPTIONS, add_exec_options

SUBCOMMANDS = ("resume", "fork", "review", "help")


def register(sub: Any) -> None:
    parser = sub.add_parser("exec", aliases=["e"], help="run one task headless and print the result")
    parser.add_argument("prompt", nargs="?", help="the task; `-` or nothing reads it from stdin")
    add_exec_options(parser)
    parser.set_defaults(run=run)


def run(ns: argparse.Namespace, *, resume: bool = False, fork: bool = False) -> int:
    from codexbro.exec.run import ExecArgs, run_exec

    fields = {k: v for k, v in vars(ns).items() if k in ExecArgs.__struct_fields__}
    return run_exec(ExecArgs(resume=resume, fork=fork, **fields))


def build_resume_parser(kind: str = "resume") -> argparse.ArgumentParser:
    what = "continue an earlier session" if kind == "resume" else "continue a copy of an earlier session"
    parser = argparse.ArgumentParser(prog=f"codexbro exec {kind}", description=what)
    parser.add_argument("session_id", nargs="?", help="session (thread) id, or a unique prefix")
    parser.add_argument("prompt", nargs="?", help="the next message; `-` reads stdin")
    parser.add_argument(
        "--last", action="store_true", help=f"{kind} the most recent session in this directory"
    )
    parser.add_argument(
        "--all", action="store_true", help="with --last: look at sessions from every directory"
    )
    add_exec_options(parser)
    return parser


def build_review_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codexbro exec review", description="review code changes (as Codex CLI 0.169's exec review)"
    )
    parser.add_argument("prompt", nargs="?", help="custom review instructions; `-` reads stdin")
    parser.add_argument(
        "--uncommitted", action="store_true", help="review staged, unstaged and untracked changes"
    )
    parser.add_argument("--base", metavar="BRANCH", help="review the changes against this base branch")
    parser.add_argument("--commit", metavar="SHA", help="review the changes a commit introduced")
    add_exec_options(parser)
    return parser


def subcommand(argv: Sequence[str]) -> str | None:
    """The first positional after `exec` when it names a subcommand (never taken as a prompt)."""
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token in EXEC_VALUE_OPTIONS:
            skip = True
            continue
        if token.startswith("-") and token != "-":
            continue
        return token if token in SUBCOMMANDS else None
    return None


def pre_dispatch(argv: list[str], overrides: list[str], profile: str | None) -> int | list[str] | None:
    """``exec resume|fork|review|help``: the exit code once handled, argv to parse instead
    (``help``), or None for a plain ``exec``."""
    sub = subcommand(argv[1:])
    if sub in ("resume", "fork"):
        rest = list(argv[1:])
        rest.remove(sub)
        ns = build_resume_parser(sub).parse_args(rest)
        ns.config_overrides = overrides + ns.config_overrides
        ns.profile = ns.profile or profile
        if ns.last and ns.session_id is not None and ns.prompt is None:
            ns.prompt, ns.session_id = ns.session_id, None  # `resume --last "next prompt"`
        if not ns.last and ns.session_id is None:
            print(f"Error: exec {sub} needs a session id or --last", file=sys.stderr)
            return 2
        return run(ns, resume=sub == "resume", fork=sub == "fork")
    if sub == "review":
        rest = list(argv[1:])
        rest.remove(sub)
        ns = build_review_parser().parse_args(rest)
        ns.config_overrides = overrides + ns.config_overrides
        ns.profile = ns.profile or profile
        chosen = [k for k in ("uncommitted", "base", "commit") if getattr(ns, k)]
        if len(chosen) > 1 or (chosen and ns.prompt is not None):
            print(
                "Error: exec review takes one of --uncommitted, --base, --commit or a PROMPT", file=sys.stderr
            )
            return 2
        if not chosen and ns.prompt is None:
            print(
                "Error: exec review needs --uncommitted, --base BRANCH, --commit SHA or a PROMPT",
                file=sys.stderr,
            )
            return 2
        kind = chosen[0] if chosen else "custom"
        ns.review_kind = kind
        ns.review_value = {"base": ns.base, "commit": ns.commit}.get(kind) or ""
        return run(ns)
    if sub == "help":
        return ["exec", "--help"]
    return None

"""The ``codexbro`` command. argparse only (fast to import); each subcommand imports its own
module when it runs, so ``codexbro --version`` stays near bare interpreter start-up."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from codexbro import __version__


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (``only``: a command name) the top level and that command."""
    from codexbro.cli.commands import register_all

    parser = argparse.ArgumentParser(
        prog="codexbro",
        description="A coding agent for your terminal, over the OpenAI Responses API.",
        epilog="With no command, `codexbro [OPTIONS] [PROMPT]` opens the interactive agent; "
        "`codexbro resume|fork [--last|ID]` continues a session in it. The interactive options: "
        "`codexbro resume --help`; the keys: docs/tui.md.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"codexbro {__version__}")
    parser.add_argument("-c", "--config", dest="global_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, for any subcommand (as after it)")  # fmt: skip
    parser.add_argument(
        "-p", "--profile", dest="global_profile", metavar="NAME", help="config profile, for any subcommand"
    )
    register_all(parser.add_subparsers(dest="command", metavar="COMMAND"), only)
    return parser


GLOBAL_VALUE_OPTIONS = ("-c", "--config", "-p", "--profile")


def _split_globals(argv: list[str]) -> tuple[list[str], list[str], str | None]:
    """Leading `-c KEY=VALUE` / `-p NAME` before the subcommand (as upstream accepts them)."""
    overrides: list[str] = []
    profile = None
    while len(argv) >= 2 and argv[0] in GLOBAL_VALUE_OPTIONS:
        if argv[0] in ("-c", "--config"):
            overrides.append(argv[1])
        else:
            profile = argv[1]
        argv = argv[2:]
    return overrides, argv, profile


def main(argv: Sequence[str] | None = None) -> int:
    """One error path for every command: codexbro's errors are one line on stderr and exit 1;
    Ctrl-C exits 130; a closed stdout (`codexbro … | head`) exits 141, without a traceback."""
    import contextlib
    import os

    from codexbro.errors import CodexbroError

    # `python -m codexbro` puts the working directory first on sys.path: a workspace file named like
    # a module the agent imports later (sqlite3.py, …) must never be that module.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    for stream in (sys.stdout, sys.stderr):  # text that cannot be encoded is shown, not a traceback
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()
        return code
    except CodexbroError as err:
        from codexbro.textsafe import for_terminal

        print(f"Error: {for_terminal(err.message)}", file=sys.stderr)  # may quote a server or a file
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush stays quiet
        return 141


def entry() -> NoReturn:
    """The console script (and ``python -m codexbro``): :func:`main`, then a quick exit.

    Tearing the interpreter down (freeing every module and object one by one) took ~30 ms of a
    ~250 ms ``exec`` turn. Once ``main`` has returned, the work is done and saved — every file is
    written atomically and closed, sessions and their processes are closed — so the process leaves
    with ``os._exit`` after what an ordinary exit would still do that matters: the ``atexit``
    handlers (log handlers flushed, ``weakref.finalize`` clean-ups) and flushing stdout and stderr.
    When a thread that is not a daemon still runs, or a stream cannot be flushed, it exits the
    ordinary way instead (joining the thread; reporting the stream as Python does)."""
    import atexit
    import os
    import threading

    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code)


def _main(argv: list[str]) -> int:
    if argv in (["-V"], ["--version"]):  # answered before any command's parser is built
        print(f"codexbro {__version__}")
        return 0
    overrides, argv, profile = _split_globals(argv)
    if argv and argv[0] == "apply-patch" and "-h" not in argv[1:2] and "--help" not in argv[1:2]:
        from codexbro.cli.commands.apply_patch import run_raw

        return run_raw(argv[1:])
    if argv and argv[0] in ("exec", "e"):
        from codexbro.cli.commands import exec_cmd

        handled = exec_cmd.pre_dispatch(argv, overrides, profile)
        if isinstance(handled, int):
            return handled
        if handled is not None:
            argv = handled
    from codexbro.cli.commands import COMMANDS

    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        from codexbro.cli.commands import tui  # no subcommand: the interactive agent

        return tui.run(argv, overrides, profile)
    parser = build_parser(argv[0] if argv[0] in COMMANDS else None)
    tail: list[str] = []
    if (
        argv[0] == "mcp" and "--" in argv
    ):  # `mcp add NAME -- CMD ARGS…`: argparse 3.11 mishandles `--` in subcommands
        cut = argv.index("--")
        argv, tail = argv[:cut], argv[cut + 1 :]
    ns = parser.parse_args(argv)
    if tail:
        ns.server_command = [*getattr(ns, "server_command", []), *tail]
    if hasattr(ns, "config_overrides"):
        leaf = getattr(ns, "leaf_overrides", [])  # given after a nested subcommand: the most specific
        ns.config_overrides = overrides + ns.global_overrides + ns.config_overrides + leaf
    if hasattr(ns, "profile"):
        ns.profile = getattr(ns, "leaf_profile", None) or ns.profile or ns.global_profile or profile
    run = getattr(ns, "run", None)
    if run is None:
        parser.print_help()
        return 0
    code: int = run(ns)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

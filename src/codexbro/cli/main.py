"""The ``codexbro`` command. argparse only (fast to import); each subcommand imports its own
module when it runs, so ``codexbro --version`` stays near bare interpreter start-up."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from codexbro import __version__

# exec options that take a value (used to find the first positional, to spot `exec resume`).
_VALUE_OPTIONS = {
    "-m", "--model", "-s", "--sandbox", "-C", "--cd", "-c", "--config", "-p", "--profile",
    "-o", "--output-last-message", "--output-schema", "--color", "--local-provider",
    "-i", "--image", "--enable", "--disable", "--add-dir", "--trace",
}  # fmt: skip


def _add_exec_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", "--experimental-json", action="store_true", help="print events as JSONL on stdout"
    )
    parser.add_argument("-m", "--model", help="model slug to use")
    parser.add_argument(
        "-s",
        "--sandbox",
        choices=["read-only", "workspace-write", "danger-full-access"],
        help="sandbox policy",
    )
    parser.add_argument("-C", "--cd", metavar="DIR", help="working directory for the agent")
    parser.add_argument(
        "-c",
        "--config",
        dest="config_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='override a config value (TOML value, dotted key), e.g. -c model="gpt-5.4"',
    )
    parser.add_argument("-p", "--profile", help="config profile ([profiles.NAME]) to apply")
    parser.add_argument(
        "--skip-git-repo-check", action="store_true", help="allow running outside a git repository"
    )
    parser.add_argument("-o", "--output-last-message", metavar="FILE", help="write the final message to FILE")
    parser.add_argument("--output-schema", metavar="FILE", help="JSON Schema the final message must follow")
    parser.add_argument("--color", choices=["always", "never", "auto"], default="auto")
    parser.add_argument("--ephemeral", action="store_true", help="do not write a rollout file")
    parser.add_argument(
        "--full-auto",
        action="store_true",
        help="convenience: --sandbox workspace-write (approvals are off in exec)",
    )
    parser.add_argument(
        "--dangerously-bypass-approvals-and-sandbox",
        "--yolo",
        dest="yolo",
        action="store_true",
        help="no sandbox, no approvals: only inside an externally sandboxed environment",
    )
    parser.add_argument("--oss", action="store_true", help="use a local open-weight model provider")
    parser.add_argument(
        "--local-provider", choices=["ollama", "lmstudio", "embedded"], help="which local provider --oss uses"
    )
    parser.add_argument(
        "-i",
        "--image",
        dest="images",
        action="extend",
        nargs="+",
        default=[],
        metavar="FILE",
        help="attach images to the prompt (several: -i a.png b.png, or -i a.png,b.png)",
    )
    parser.add_argument(
        "--add-dir", dest="add_dirs", action="append", default=[], metavar="DIR",
        help="another directory the agent may write to (workspace-write sandbox)",
    )  # fmt: skip
    parser.add_argument("--strict-config", action="store_true", help="treat unknown config keys as errors")
    parser.add_argument(
        "--ignore-user-config", action="store_true", help="do not read $CODEXBRO_HOME/config.toml"
    )
    parser.add_argument("--ignore-rules", action="store_true", help="do not load approval rules files")
    parser.add_argument(
        "--trace", metavar="FILE", help="write a JSONL trace of every request, decision and tool call to FILE"
    )
    parser.add_argument("--enable", action="append", default=[], metavar="FEATURE", help="turn a feature on")
    parser.add_argument(
        "--disable", action="append", default=[], metavar="FEATURE", help="turn a feature off"
    )


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", dest="config_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value")  # fmt: skip
    parser.add_argument("-p", "--profile", help="config profile to apply")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codexbro",
        description="A coding agent for your terminal, over the OpenAI Responses API.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"codexbro {__version__}")
    parser.add_argument("-c", "--config", dest="global_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, for any subcommand (as after it)")  # fmt: skip
    parser.add_argument(
        "-p", "--profile", dest="global_profile", metavar="NAME", help="config profile, for any subcommand"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    exec_p = sub.add_parser("exec", aliases=["e"], help="run one task headless and print the result")
    exec_p.add_argument("prompt", nargs="?", help="the task; `-` or nothing reads it from stdin")
    _add_exec_options(exec_p)

    patch_p = sub.add_parser(
        "apply-patch", help="apply a patch in the apply_patch format (argument or stdin)"
    )
    patch_p.add_argument("patch", nargs="?", help="the whole patch; read from stdin when absent")

    login_p = sub.add_parser(
        "login", help="store credentials (an API key from stdin), or show the login status"
    )
    login_p.add_argument("action", nargs="?", choices=["status"], help="`status`: who is logged in")
    login_p.add_argument(
        "--with-api-key", action="store_true", help="read an API key from stdin and store it"
    )
    login_p.add_argument(
        "--device-auth", action="store_true", help="device-code login, for machines without a browser"
    )
    login_p.add_argument(
        "--no-browser", action="store_true", help="print the sign-in URL without opening a browser"
    )
    sub.add_parser("logout", help="remove stored credentials")

    models_p = sub.add_parser("models", help="list the model catalog, or show one model (no network)")
    models_p.add_argument("action", nargs="?", choices=["show"])
    models_p.add_argument("slug", nargs="?")
    models_p.add_argument("--json", action="store_true")
    models_p.add_argument(
        "--refresh", action="store_true", help="fetch the live list first (the only network use)"
    )
    _add_config_options(models_p)

    usage_p = sub.add_parser(
        "usage", help="ChatGPT plan usage and rate-limit windows (needs a ChatGPT login)"
    )
    usage_p.add_argument("--json", action="store_true")
    _add_config_options(usage_p)
    cloud_p = sub.add_parser("cloud", help="Codex cloud tasks: list, show TASK_ID, create ENV_ID PROMPT")
    cloud_p.add_argument("action", nargs="?", choices=["list", "show", "create"], default="list")
    cloud_p.add_argument("args", nargs="*")
    cloud_p.add_argument("--json", action="store_true")
    _add_config_options(cloud_p)
    conn_p = sub.add_parser("connectors", help="the ChatGPT connectors directory (list, or workspace)")
    conn_p.add_argument("action", nargs="?", choices=["list", "workspace"], default="list")
    conn_p.add_argument("--json", action="store_true")
    _add_config_options(conn_p)

    routes = sub.add_parser("routes", help="print the route map: every request codexbro can make, by bucket")
    routes.add_argument("--json", action="store_true")
    _add_config_options(routes)

    debug = sub.add_parser("debug", help="inspection helpers")
    debug_sub = debug.add_subparsers(dest="debug_command", metavar="SUBCOMMAND")
    dreq = debug_sub.add_parser(
        "request",
        help="build the first request `codexbro exec` would send for this config, and print it (never sent)",
    )
    dreq.add_argument("prompt", nargs="?", default="Hello", help="the user message (default: Hello)")
    dreq.add_argument(
        "--json", action="store_true", help="print everything, including the full body, as JSON"
    )
    dreq.add_argument("-m", "--model", help="model slug")
    dreq.add_argument("-s", "--sandbox", choices=["read-only", "workspace-write", "danger-full-access"])
    dreq.add_argument("-C", "--cd", metavar="DIR")
    dreq.add_argument("--oss", action="store_true")
    dreq.add_argument("--local-provider", choices=["ollama", "lmstudio", "embedded"])
    _add_config_options(dreq)

    trace = sub.add_parser("trace", help="read a --trace file")
    trace_sub = trace.add_subparsers(dest="trace_command", metavar="SUBCOMMAND")
    tshow = trace_sub.add_parser("show", help="render a trace as a timeline (or an HTML page with --html)")
    tshow.add_argument("file")
    tshow.add_argument("--html", metavar="OUT", help="write one self-contained HTML page instead")

    box = sub.add_parser("sandbox", help="run a command in the sandbox, or diagnose the sandbox backends")
    box_sub = box.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND")
    lin = box_sub.add_parser("linux", help="run CMD under the Linux sandbox (codexbro sandbox linux -- CMD)")
    lin.add_argument(
        "--policy", choices=["read-only", "workspace-write", "danger-full-access"], default="read-only"
    )
    lin.add_argument("--writable-root", dest="roots", action="append", default=[], metavar="DIR",
                     help="extra writable root (workspace-write)")  # fmt: skip
    lin.add_argument("--network", action="store_true", help="allow network access (workspace-write)")
    lin.add_argument("--backend", choices=["auto", "namespaces", "bubblewrap", "landlock"], default="auto")
    lin.add_argument("-C", "--cd", metavar="DIR", help="working directory (the workspace root)")
    lin.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    doc = box_sub.add_parser("doctor", help="which sandbox backends work here, and why the others do not")
    doc.add_argument("--json", action="store_true")

    return parser


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
    _add_exec_options(parser)
    return parser


EXEC_SUBCOMMANDS = ("resume", "fork", "review", "help")


def _exec_subcommand(argv: Sequence[str]) -> str | None:
    """The first positional after `exec` when it names a subcommand (never taken as a prompt)."""
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token in _VALUE_OPTIONS:
            skip = True
            continue
        if token.startswith("-") and token != "-":
            continue
        return token if token in EXEC_SUBCOMMANDS else None
    return None


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
        print(f"Error: {err.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush stays quiet
        return 141


def _main(argv: list[str]) -> int:
    overrides, argv, profile = _split_globals(argv)
    if argv and argv[0] == "apply-patch" and "-h" not in argv[1:2] and "--help" not in argv[1:2]:
        from codexbro.apply_patch.cli import run

        return run(argv[1:])
    sub = _exec_subcommand(argv[1:]) if argv and argv[0] in ("exec", "e") else None
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
        return _exec(ns, resume=sub == "resume", fork=sub == "fork")
    if sub == "review":
        print(
            "Error: `codexbro exec review` is not available yet; ask for a review in the prompt instead, e.g. "
            'codexbro exec "review the uncommitted changes and list problems by severity"',
            file=sys.stderr,
        )
        return 2
    if sub == "help":
        argv = ["exec", "--help"]
    parser = build_parser()
    ns = parser.parse_args(argv)
    if hasattr(ns, "config_overrides"):
        ns.config_overrides = overrides + ns.global_overrides + ns.config_overrides
    if hasattr(ns, "profile"):
        ns.profile = ns.profile or ns.global_profile or profile
    if ns.command in ("exec", "e"):
        return _exec(ns, resume=False)
    if ns.command == "login":
        from codexbro.cli.login import login

        return login(ns.action == "status", ns.with_api_key, ns.device_auth, not ns.no_browser)
    if ns.command == "logout":
        from codexbro.cli.login import logout

        return logout()
    if ns.command in ("usage", "cloud", "connectors"):
        from codexbro.cli import chatgpt

        return chatgpt.run(ns.command, getattr(ns, "action", None), getattr(ns, "args", []), ns.json,
                           ns.config_overrides)  # fmt: skip
    if ns.command in ("routes", "debug", "trace", "models"):
        return _inspect(parser, ns)
    if ns.command == "sandbox":
        from codexbro.cli import sandbox as sandbox_cli

        if ns.sandbox_command == "linux":
            cmd = ns.cmd[1:] if ns.cmd[:1] == ["--"] else ns.cmd
            return sandbox_cli.run_linux(ns.policy, ns.roots, ns.network, ns.backend, ns.cd, cmd)
        if ns.sandbox_command == "doctor":
            return sandbox_cli.doctor(ns.json)
        parser.parse_args(["sandbox", "--help"])
    parser.print_help()
    return 0


def _inspect(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> int:
    from codexbro.errors import CodexbroError

    try:
        if ns.command == "trace":
            if ns.trace_command != "show":
                parser.parse_args(["trace", "--help"])
            from pathlib import Path

            from codexbro.inspection.trace_view import show
            from codexbro.textsafe import for_terminal

            print(for_terminal(show(Path(ns.file), ns.html)))  # commands and messages the model chose
            return 0
        from pathlib import Path

        from codexbro.config.loader import Overrides, load_config

        flags: dict[str, object] = {}
        if ns.command == "debug":
            if ns.debug_command != "request":
                parser.parse_args(["debug", "--help"])
            # The request `codexbro exec` would send: exec always runs with approval policy never.
            flags = {"model": ns.model, "sandbox_mode": ns.sandbox, "approval_policy": "never"}
            if ns.oss:
                from codexbro.exec.run import OSS_DEFAULT_MODELS

                provider = ns.local_provider or "ollama"
                flags["model_provider"] = provider
                flags["model"] = ns.model or OSS_DEFAULT_MODELS.get(provider)
        cwd = Path(ns.cd) if getattr(ns, "cd", None) else None
        config = load_config(
            Overrides(cli_overrides=ns.config_overrides, profile=ns.profile, flags=flags, cwd=cwd)
        )
        if ns.command == "models":
            from codexbro.cli import models as models_cli

            if ns.refresh:
                import asyncio

                print(asyncio.run(models_cli.refresh_now(config)), file=sys.stderr)
            if ns.action == "show":
                if not ns.slug:
                    print("Error: give a slug: codexbro models show SLUG", file=sys.stderr)
                    return 2
                print(models_cli.show_model(config, ns.slug))
            else:
                print(models_cli.list_models(config, ns.json))
            return 0
        if ns.command == "routes":
            from codexbro.inspection.routes import render

            print(render(config, ns.json))
            return 0
        import asyncio
        import json

        from codexbro.inspection import debug_request

        info = asyncio.run(debug_request.build(config, ns.prompt))
        print(json.dumps(info, indent=2, ensure_ascii=False) if ns.json else debug_request.render(info))
        return 0
    except CodexbroError as err:
        print(f"Error: {err.message}", file=sys.stderr)
        return 1


def _exec(ns: argparse.Namespace, *, resume: bool, fork: bool = False) -> int:
    from codexbro.exec.run import ExecArgs, run_exec

    fields = {k: v for k, v in vars(ns).items() if k in ExecArgs.__dataclass_fields__}
    return run_exec(ExecArgs(resume=resume, fork=fork, **fields))


if __name__ == "__main__":
    raise SystemExit(main())

"""``codexbro routes``, ``codexbro debug request``, ``codexbro trace show``: inspection — which
route, bucket, model, provider and decision, and why — without reading code."""

from __future__ import annotations

import argparse
from typing import Any

from codexbro.cli.commands import subcommands
from codexbro.cli.commands.options import LOCAL_PROVIDERS, SANDBOX_MODES, add_config_options


def register(sub: Any) -> None:
    routes = sub.add_parser("routes", help="print the route map: every request codexbro can make, by bucket")
    routes.add_argument("--json", action="store_true")
    add_config_options(routes)
    routes.set_defaults(run=run_routes)

    debug = sub.add_parser("debug", help="inspection helpers")
    debug.set_defaults(run=lambda ns: _help(debug))
    dreq = subcommands(debug, "debug_command").add_parser(
        "request",
        help="build the first request `codexbro exec` would send for this config, and print it (never sent)",
    )
    dreq.add_argument("prompt", nargs="?", default="Hello", help="the user message (default: Hello)")
    dreq.add_argument(
        "--json", action="store_true", help="print everything, including the full body, as JSON"
    )
    dreq.add_argument("-m", "--model", help="model slug")
    dreq.add_argument("-s", "--sandbox", choices=SANDBOX_MODES)
    dreq.add_argument("-C", "--cd", metavar="DIR")
    dreq.add_argument("--oss", action="store_true")
    dreq.add_argument("--local-provider", choices=LOCAL_PROVIDERS)
    add_config_options(dreq)
    dreq.set_defaults(run=run_debug_request)

    trace = sub.add_parser("trace", help="read a --trace file")
    trace.set_defaults(run=lambda ns: _help(trace))
    show = subcommands(trace, "trace_command").add_parser(
        "show", help="render a trace as a timeline (or an HTML page with --html)"
    )
    show.add_argument("file")
    show.add_argument("--html", metavar="OUT", help="write one self-contained HTML page instead")
    show.set_defaults(run=run_trace_show)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def run_routes(ns: argparse.Namespace) -> int:
    from codexbro.config.loader import Overrides, load_config
    from codexbro.inspection.routes import render

    print(render(load_config(Overrides(cli_overrides=ns.config_overrides, profile=ns.profile)), ns.json))
    return 0


def run_debug_request(ns: argparse.Namespace) -> int:
    import asyncio
    import json
    from pathlib import Path

    from codexbro.config.loader import Overrides, load_config
    from codexbro.inspection import debug_request

    # The request `codexbro exec` would send: exec always runs with approval policy never.
    flags: dict[str, object] = {"model": ns.model, "sandbox_mode": ns.sandbox}
    if ns.oss:
        from codexbro.exec.run import OSS_DEFAULT_MODELS

        provider = ns.local_provider or "ollama"
        flags["model_provider"] = provider
        flags["model"] = ns.model or OSS_DEFAULT_MODELS.get(provider)
    cwd = Path(ns.cd) if ns.cd else None
    config = load_config(
        Overrides(
            cli_overrides=ns.config_overrides,
            profile=ns.profile,
            flags=flags,
            cwd=cwd,
            command_defaults={"approval_policy": "never"},
        )
    )
    info = asyncio.run(debug_request.build(config, ns.prompt))
    print(json.dumps(info, indent=2, ensure_ascii=False) if ns.json else debug_request.render(info))
    return 0


def run_trace_show(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from codexbro.inspection.trace_view import show
    from codexbro.textsafe import for_terminal

    print(for_terminal(show(Path(ns.file), ns.html)))  # commands and messages the model chose
    return 0

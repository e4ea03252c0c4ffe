"""``codexbro sandbox linux -- CMD`` and ``codexbro sandbox doctor``."""

from __future__ import annotations

import argparse
from typing import Any

from codexbro.cli.commands import subcommands
from codexbro.cli.commands.options import SANDBOX_MODES


def register(sub: Any) -> None:
    box = sub.add_parser("sandbox", help="run a command in the sandbox, or diagnose the sandbox backends")
    box.set_defaults(run=lambda ns: box.print_help() or 0)
    nested = subcommands(box, "sandbox_command")
    lin = nested.add_parser("linux", help="run CMD under the Linux sandbox (codexbro sandbox linux -- CMD)")
    lin.add_argument("--policy", choices=SANDBOX_MODES, default="read-only")
    lin.add_argument("--writable-root", dest="roots", action="append", default=[], metavar="DIR",
                     help="extra writable root (workspace-write)")  # fmt: skip
    lin.add_argument("--network", action="store_true", help="allow network access (workspace-write)")
    lin.add_argument("--backend", choices=["auto", "namespaces", "bubblewrap", "landlock"], default="auto")
    lin.add_argument("-C", "--cd", metavar="DIR", help="working directory (the workspace root)")
    lin.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    lin.set_defaults(run=run_linux)
    doc = nested.add_parser("doctor", help="which sandbox backends work here, and why the others do not")
    doc.add_argument("--json", action="store_true")
    doc.set_defaults(run=run_doctor)


def run_linux(ns: argparse.Namespace) -> int:
    from codexbro.cli import sandbox as sandbox_cli

    cmd = ns.cmd[1:] if ns.cmd[:1] == ["--"] else ns.cmd
    return sandbox_cli.run_linux(ns.policy, ns.roots, ns.network, ns.backend, ns.cd, cmd)


def run_doctor(ns: argparse.Namespace) -> int:
    from codexbro.cli import sandbox as sandbox_cli

    return sandbox_cli.doctor(ns.json)

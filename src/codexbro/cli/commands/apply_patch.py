"""``codexbro apply-patch [PATCH]``: apply a patch in the apply_patch format (argument or stdin).
Its arguments go to the patch tool as they are (a patch may start with ``-``), past argparse."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("apply-patch", help="apply a patch in the apply_patch format (argument or stdin)")
    parser.add_argument("patch", nargs="?", help="the whole patch; read from stdin when absent")
    parser.set_defaults(run=run)


def run(ns: argparse.Namespace) -> int:
    return run_raw([ns.patch] if ns.patch is not None else [])


def run_raw(args: list[str]) -> int:
    from codexbro.apply_patch.cli import run as apply

    return apply(args)

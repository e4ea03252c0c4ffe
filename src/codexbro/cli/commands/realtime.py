"""``codexbro realtime --input FILE.wav``: one realtime voice exchange from a recording."""

from __future__ import annotations

import argparse
from typing import Any

from codexbro.cli.commands.options import add_config_options


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "realtime",
        help="a realtime voice exchange: send a WAV recording, print the transcripts, save the spoken answer",
    )
    parser.add_argument(
        "--input", "-i", required=True, metavar="FILE.wav", help="the recording (16-bit PCM WAV)"
    )
    parser.add_argument("--output", "-o", metavar="FILE.wav", help="where the answer audio goes (default: "
                        "INPUT-answer.wav in the current directory)")  # fmt: skip
    parser.add_argument(
        "--model", help="the realtime model (default: experimental_realtime_ws_model or gpt-realtime-1.5)"
    )
    parser.add_argument("--voice", default="marin", help="the answer's voice (default: marin)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_config_options(parser)
    parser.set_defaults(run=run)


def run(ns: argparse.Namespace) -> int:
    from codexbro.cli.realtime import run_realtime

    return run_realtime(ns)

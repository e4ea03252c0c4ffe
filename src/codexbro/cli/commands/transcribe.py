"""``codexbro transcribe FILE``: speech to text through the account's own route."""

from __future__ import annotations

import argparse
from typing import Any

from codexbro.cli.commands.options import add_config_options


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "transcribe",
        help="speech to text: an audio file's words on stdout (ChatGPT login → /transcribe, API key → "
        "/audio/transcriptions)",
    )
    parser.add_argument("file", metavar="FILE", help="the recording (wav, mp3, m4a, ogg, webm, flac, mp4)")
    parser.add_argument(
        "--model", default=None, help="API key mode: the transcription model (gpt-4o-transcribe)"
    )
    parser.add_argument(
        "--json", action="store_true", help='print {"text": …, "route": …} instead of the text'
    )
    add_config_options(parser)
    parser.set_defaults(run=run)


def run(ns: argparse.Namespace) -> int:
    from codexbro.cli.transcribe import transcribe_file

    return transcribe_file(ns.file, ns.model, ns.json, ns.config_overrides, ns.profile)

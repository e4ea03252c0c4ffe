"""``codexbro transcribe FILE``: a recording's words on stdout (``--json``: with the route and URL);
the work is ``composition/transcribe.py``'s."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from codexbro.errors import CodexbroError


def transcribe_file(
    file: str, model: str | None, as_json: bool, overrides: list[str], profile: str | None
) -> int:
    from codexbro.composition.transcribe import transcribe_path
    from codexbro.textsafe import for_terminal

    try:
        text, route_name, url = asyncio.run(transcribe_path(Path(file), model, overrides, profile))
    except CodexbroError as err:
        print(f"Error: {for_terminal(err.message)}", file=sys.stderr)
        return 1
    print(json.dumps({"text": text, "route": route_name, "url": url}) if as_json else for_terminal(text))
    return 0

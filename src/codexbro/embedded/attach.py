"""Small files that the user's request names, shown to the embedded model with the request.

A 1.5B model tends to act before it looks: asked to fix ``calc.py`` it runs a ``sed`` it guessed.
When the request names files that exist inside the workspace and are small UTF-8 text, their
contents are appended to the request *as the model reads it* — read once, at the turn's first
request, so every request of the turn renders the same bytes and the KV prefix stays valid. History
and rollouts keep the request as the user wrote it; ``codexbro debug request`` shows the attachment.
"""

from __future__ import annotations

import re
from pathlib import Path

# A relative path with an extension, not part of a longer word, URL or absolute path.
_NAME = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*[\w-]+\.[A-Za-z0-9]{1,8})(?![\w/-])")
MAX_FILE_BYTES = 1500
MAX_TOTAL_BYTES = 2500  # ~600 tokens: about 6 s of prompt evaluation on two cores
MAX_FILES = 2


def named_files(request: str, cwd: Path) -> list[tuple[str, str]]:
    """(name as written, text) of the small text files inside ``cwd`` that ``request`` names."""
    root = cwd.resolve()
    found: list[tuple[str, str]] = []
    total = 0
    for match in _NAME.finditer(request):
        name = match.group(1).rstrip(".")
        if any(name == seen for seen, _ in found):
            continue
        try:
            path = (root / name).resolve()
            path.relative_to(root)  # no way out of the workspace (``..``, symlinks)
            if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
                continue
            text = path.read_text(encoding="utf-8")
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if "\x00" in text or total + len(text) > MAX_TOTAL_BYTES:
            continue
        found.append((name, text))
        total += len(text)
        if len(found) == MAX_FILES:
            break
    return found


def attachment(files: list[tuple[str, str]]) -> str:
    """The text appended to the request (empty when no file qualifies)."""
    return "".join(f"\n\nContents of {name}:\n```\n{text.rstrip()}\n```" for name, text in files)

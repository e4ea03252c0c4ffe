"""Finding a piece of text that was copied with its whitespace changed, and keeping the file's.

A small model asked to copy ``def is_even(n):\\n    return n % 2 == 1`` from a file often writes
``def is_even(n): return n % 2 == 1``: the words are right, the line break and indentation are
gone. ``edit_file`` then refused, the model guessed again, and a fix a capable model would have
made failed (measured in ``bench/embedded.py``: most refused edits of the embedded model were
this). Upstream's ``apply_patch`` is lenient in the same spirit (its hunks match lines ignoring
trailing, then surrounding whitespace); this goes one step further, for ``edit_file`` only:

- ``find_loose`` matches ``old`` in ``text`` treating every run of whitespace in ``old`` as "any
  non-empty run of whitespace", and ``old``'s leading and trailing whitespace as absent. A match
  counts only when it is the only one; its span always starts and ends on non-whitespace.
- ``relayout`` writes the replacement in the file's layout: ``new``'s words are aligned with
  ``old``'s (a longest-common-subsequence alignment of the whitespace-separated words); between two
  words kept from ``old`` in the same order the file's own whitespace is used, elsewhere ``new``'s.
  So ``return n % 2 == 1`` → ``return n % 2 == 0`` keeps the line break and indentation the model
  dropped, and words the model added get the spacing it wrote.

Nothing here knows what the text means; a match that is not unique is reported as such.
"""

from __future__ import annotations

import difflib
import re

_WS = re.compile(r"\s+")


def find_loose(text: str, old: str) -> tuple[list[tuple[int, int]], list[str]]:
    """The spans of ``text`` that equal ``old`` up to whitespace (as described above), and the
    file's whitespace between ``old``'s words in the first of them."""
    words = old.split()
    if not words:
        return [], []
    pattern = re.compile(r"\s+".join(f"({re.escape(w)})" for w in words))
    spans: list[tuple[int, int]] = []
    gaps: list[str] = []
    for match in pattern.finditer(text):
        if not spans:
            gaps = [text[match.end(i) : match.start(i + 1)] for i in range(1, len(words))]
        spans.append(match.span())
    return spans, gaps


def relayout(old: str, new: str, gaps: list[str]) -> str:
    """``new`` with the file's whitespace (``gaps``, between ``old``'s words) wherever two of its
    words are consecutive words kept from ``old``; ``new``'s own whitespace elsewhere."""
    old_words = old.split()
    new_parts = _WS.split(new.strip())
    new_gaps = _WS.findall(new.strip())
    if not new.strip():
        return ""
    origin: list[int | None] = [None] * len(new_parts)  # the index in old of each kept word
    matcher = difflib.SequenceMatcher(a=old_words, b=new_parts, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            origin[block.b + k] = block.a + k
    out = [new_parts[0]]
    for j in range(1, len(new_parts)):
        left, right = origin[j - 1], origin[j]
        if left is not None and right == left + 1:
            out.append(gaps[left])
        else:
            out.append(new_gaps[j - 1])
        out.append(new_parts[j])
    return "".join(out)

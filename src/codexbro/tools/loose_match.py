"""Finding a piece of text that was copied with its layout or quotes changed, and keeping the file's.

A small model asked to copy ``def is_even(n):\\n    return n % 2 == 1`` from a file often writes
``def is_even(n): return n % 2 == 1``: the words are right, the line break and indentation are
gone; or it writes ``'total'`` where the file says ``"total"``. ``edit_file`` then refused, the
model guessed again, and a fix a capable model would have made failed (measured with
``bench/embedded.py``: nearly every refused edit of the embedded model was one of these two).
Upstream's ``apply_patch`` is lenient in the same spirit (its hunks match lines ignoring trailing,
then surrounding whitespace, then typographic punctuation); this goes further, for ``edit_file``
only:

- ``find_loose`` matches ``old`` in ``text`` treating every run of whitespace in ``old`` as "any
  non-empty run of whitespace" and its leading and trailing whitespace as absent; with
  ``quotes=True`` also ``'`` and ``"`` as the same character. A span always starts and ends on
  non-whitespace. The caller uses a match only when it is the only one (``edit_file`` tries the
  stricter rule first).
- ``relayout`` writes the replacement in the file's form: ``new``'s words are aligned with
  ``old``'s (a longest-common-subsequence alignment of the whitespace-separated words, quotes
  unified); a word of ``new`` equal to the word of ``old`` it is aligned with is written as the file
  has it, and between two words kept from ``old`` in the same order the file's own whitespace is
  used; elsewhere ``new``'s words and spacing are kept as written. So ``return n % 2 == 1`` →
  ``return n % 2 == 0`` keeps the line break and indentation the model dropped.

Nothing here knows what the text means.
"""

from __future__ import annotations

import bisect
import difflib
import re

from msgspec import Struct

_WS = re.compile(r"\s+")
_WORD = re.compile(r"\S+")
_QUOTES = str.maketrans({'"': "'"})


class Match(Struct, frozen=True):
    start: int
    end: int
    words: list[str]  # the file's form of each of ``old``'s words
    gaps: list[str]  # the file's whitespace between them


def find_loose(text: str, old: str, *, quotes: bool = False, limit: int = 2) -> list[Match]:
    """The spans of ``text`` that equal ``old`` up to whitespace (and quotes), leftmost first, not
    overlapping, at most ``limit`` of them (two tell "once" from "more than once"). Linear in the file's size whatever the model sends: both sides are reduced to
    their words joined by single spaces and searched with ``str.find``, then mapped back."""
    words = old.split()
    if not words:
        return []

    def fold(t: str) -> str:
        return t.translate(_QUOTES) if quotes else t

    spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    starts: list[int] = []  # where each of the file's words starts in ``joined``
    offset = 0
    for a, b in spans:
        starts.append(offset)
        offset += b - a + 1
    joined = fold(" ".join(text[a:b] for a, b in spans))
    needle = fold(" ".join(words))
    found: list[Match] = []
    at = joined.find(needle)
    while at != -1:
        first = bisect.bisect_right(starts, at) - 1
        last = first + len(words) - 1
        begin = spans[first][0] + (at - starts[first])
        finish = spans[last][0] + (at + len(needle) - starts[last])
        cut = [(begin if i == first else spans[i][0], finish if i == last else spans[i][1])
               for i in range(first, last + 1)]  # fmt: skip
        found.append(Match(begin, finish, [text[a:b] for a, b in cut],
                           [text[cut[i][1] : cut[i + 1][0]] for i in range(len(cut) - 1)]))  # fmt: skip
        at = joined.find(needle, at + len(needle)) if len(found) < limit else -1
    return found


def relayout(old: str, new: str, match: Match) -> str:
    """``new`` in the file's form, as described above."""
    if not new.strip():
        return ""
    old_words = old.split()
    new_parts = _WS.split(new.strip())
    new_gaps = _WS.findall(new.strip())
    origin: list[int | None] = [None] * len(new_parts)  # the word of old each word of new keeps
    matcher = difflib.SequenceMatcher(
        a=[w.translate(_QUOTES) for w in old_words],
        b=[w.translate(_QUOTES) for w in new_parts],
        autojunk=False,
    )
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            origin[block.b + k] = block.a + k
    out: list[str] = []
    for j, part in enumerate(new_parts):
        if j:
            left, right = origin[j - 1], origin[j]
            out.append(match.gaps[left] if left is not None and right == left + 1 else new_gaps[j - 1])
        here = origin[j]
        out.append(match.words[here] if here is not None and part == old_words[here] else part)
    return "".join(out)

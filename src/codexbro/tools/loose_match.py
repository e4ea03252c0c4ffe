"""``edit_file``'s second chance: text copied with its layout or quote marks changed.

A small model asked to copy ``def is_even(n):\\n    return n % 2 == 1`` from a file often writes
``def is_even(n): return n % 2 == 1`` (the words right, the line break and indentation gone), or
``'total'`` where the file says ``"total"``. ``edit_file`` refused, the model guessed again, and a
fix a capable model would have made failed: in ``bench/embedded.py`` nearly every refused edit of
the embedded model was one of these two. Upstream's ``apply_patch`` is lenient in the same spirit
(its hunks match ignoring trailing, then surrounding whitespace, then typographic punctuation);
this goes further, for ``edit_file`` only, and only where the exact text does not occur:

- **Finding** (``find_loose``): every run of whitespace in ``old`` matches any non-empty run in the
  file, ``old``'s leading and trailing whitespace do not count; failing that, ``'`` and ``"`` also
  count as one character. A match is used only when it is the only one, overlapping ones counted.
  Linear in the file's size whatever the model sends (both sides are reduced to their words joined
  by single spaces and searched with ``str.find``); files over ``MAX_TEXT`` characters and texts
  over ``MAX_WORDS`` words get no second chance.
- **Quote marks**: the model's quote characters are mapped to the file's as the match paired them;
  a mapping that is not one-to-one (``'`` standing for both ``'`` and ``"``) is refused, and the
  mapping is applied to ``new`` too, so a changed string keeps the file's quote style.
- **Layout** (``relayout``): ``new``'s words are aligned with ``old``'s (longest common
  subsequence). Between two consecutive words kept from ``old`` whose spacing the model did not
  change (the same in its ``old`` and ``new``), the file's whitespace is used — so the dropped line
  break and indentation come back. Where the model changed the spacing, or wrote new words, its
  spacing is used, with indentation re-based: a line the model indented by its ``old``'s first-line
  indentation plus N is indented by the file's plus N.
- A ``new`` that is empty deletes the whole lines the match covers when nothing else is on them.

Nothing here knows what the text means.
"""

from __future__ import annotations

import bisect
import difflib
import re

from msgspec import Struct

MAX_TEXT = 1_000_000
MAX_WORDS = 2_000
_WS = re.compile(r"\s+")
_WORD = re.compile(r"\S+")
_QUOTE_FOLD = str.maketrans({'"': "'"})


class Match(Struct, frozen=True):
    start: int
    end: int
    words: list[str]  # the file's form of each of ``old``'s words
    gaps: list[str]  # the file's whitespace between them


class Edit(Struct, frozen=True):
    start: int
    end: int
    replacement: str


def find_loose(text: str, old: str, *, quotes: bool = False, limit: int = 2) -> list[Match]:
    """The spans of ``text`` that equal ``old`` up to whitespace (and quotes), leftmost first,
    overlapping ones included, at most ``limit`` (two tell "once" from "more than once")."""
    words = old.split()
    if not words:
        return []

    def fold(t: str) -> str:
        return t.translate(_QUOTE_FOLD) if quotes else t

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
    while at != -1 and len(found) < limit:
        first = bisect.bisect_right(starts, at) - 1
        last = first + len(words) - 1
        begin = spans[first][0] + (at - starts[first])
        finish = spans[last][0] + (at + len(needle) - starts[last])
        cut = [(begin if i == first else spans[i][0], finish if i == last else spans[i][1])
               for i in range(first, last + 1)]  # fmt: skip
        found.append(Match(begin, finish, [text[a:b] for a, b in cut],
                           [text[cut[i][1] : cut[i + 1][0]] for i in range(len(cut) - 1)]))  # fmt: skip
        at = joined.find(needle, at + 1)
    return found


def loose_edit(text: str, old: str, new: str) -> Edit | str:
    """The edit, or why there is none: ``"absent"``, ``"ambiguous"``, ``"quotes"`` (the model's
    quote marks stand for more than one of the file's) or ``"unchanged"``."""
    if len(text) > MAX_TEXT or len(old.split()) > MAX_WORDS or len(new.split()) > MAX_WORDS:
        return "absent"
    matches = find_loose(text, old)
    if not matches:
        matches = find_loose(text, old, quotes=True)
        if len(matches) == 1:
            mapping = _quote_mapping(old.split(), matches[0].words)
            if mapping is None:
                return "quotes"
            old, new = old.translate(mapping), new.translate(mapping)
    if not matches:
        return "absent"
    if len(matches) > 1:
        return "ambiguous"
    match = matches[0]
    line_start = text.rfind("\n", 0, match.start) + 1
    line_end = text.find("\n", match.end)
    line_end = len(text) if line_end == -1 else line_end
    before, after = text[line_start : match.start], text[match.end : line_end]
    if not new.strip() and not before.strip() and not after.strip():  # whole lines deleted
        return Edit(line_start, min(line_end + 1, len(text)), "")
    file_indent = text[line_start : line_start + len(before) - len(before.lstrip())]
    replacement = relayout(old, new, match, file_indent)
    if replacement == text[match.start : match.end]:
        return "unchanged"
    return Edit(match.start, match.end, replacement)


def relayout(old: str, new: str, match: Match, file_indent: str = "") -> str:
    """``new`` in the file's layout, as described above (``old`` and ``new`` already in the file's
    quote marks)."""
    if not new.strip():
        return ""
    lead = old[: len(old) - len(old.lstrip())]
    model_indent = lead.rsplit("\n", 1)[-1]
    old_words, old_gaps = old.split(), _WS.findall(old.strip())
    new_words, new_gaps = _WS.split(new.strip()), _WS.findall(new.strip())
    origin: list[int | None] = [None] * len(new_words)  # the word of old each word of new keeps
    matcher = difflib.SequenceMatcher(a=old_words, b=new_words, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            origin[block.b + k] = block.a + k
    out = [new_words[0]]
    for j in range(1, len(new_words)):
        left, right, gap = origin[j - 1], origin[j], new_gaps[j - 1]
        if left is not None and right == left + 1 and gap == old_gaps[left]:
            gap = match.gaps[left]
        elif "\n" in gap:
            head, indent = gap.rsplit("\n", 1)
            if indent.startswith(model_indent):
                indent = file_indent + indent[len(model_indent) :]
            gap = f"{head}\n{indent}"
        out += [gap, new_words[j]]
    return "".join(out)


def _quote_mapping(model_words: list[str], file_words: list[str]) -> dict[int, str] | None:
    """The model's quote character → the file's, as the match paired them; None when one of the
    model's stands for two of the file's."""
    pairs: dict[str, str] = {}
    for mine, theirs in zip(model_words, file_words, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            if a in "'\"" and pairs.setdefault(a, b) != b:
                return None
    return str.maketrans(pairs)

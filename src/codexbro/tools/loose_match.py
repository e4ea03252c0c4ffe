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
  a mapping that is not one-to-one (``'`` standing for both ``'`` and ``"``) is refused. The
  mapping is applied to the words ``new`` changes, so a changed string keeps the file's style (see
  below for when it is not).
- **Layout** (``_relayout``): a collapsed copy has lost the file's line structure, so only changes whose place in
  it is certain are made. With as many words in ``new`` as in ``old`` they are taken one for one,
  in place, into the file's whitespace (``== 1`` → ``== 0``, ``y = x`` → ``z = x`` across a line
  break). Otherwise ``new``'s words are aligned with ``old``'s (longest common subsequence, at
  most ``MAX_WORDS`` words) and, region by region: kept words keep the file's words and
  whitespace; deleted words leave the line structure as it was (the line break before or after
  them stays), and at an end of the match they may only be deleted inside its line; words inserted,
  or a run replaced by a run of another length, are taken only inside one line of the file, with
  the model's spacing (no line break in it) — and not at an end of a match that spans lines (a new
  statement, or more of the line?). Where the model changed the spacing between kept words, its
  spacing is taken only inside a line and where its ``old`` had the file's. Anything else — new
  lines, re-indentation — is refused with a request for an exact copy: guessing the layout of
  lines a collapsed copy never showed writes broken code.
- **Quote marks** in changed words are mapped only when they cannot be misread: changed words
  holding both kinds, or a quote mark between two letters (``don't``), are refused.
- A ``new`` that is empty deletes the whole lines the match covers when nothing else is on them.

Nothing here knows what the text means.
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Sequence

from msgspec import Struct

MAX_TEXT = 1_000_000
MAX_WORDS = 300  # difflib's alignment is cubic in the worst case: ~0.3 s here
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
    quote marks cannot be mapped onto the file's with certainty), ``"layout"`` (where the change
    goes in the file's lines is not certain) or ``"unchanged"``."""
    if len(text) > MAX_TEXT or len(old.split()) > MAX_WORDS or len(new.split()) > MAX_WORDS:
        return "absent"
    mapping: dict[int, str] = {}
    matches = find_loose(text, old)
    if not matches:
        matches = find_loose(text, old, quotes=True)
        if len(matches) == 1:
            found = _quote_mapping(old.split(), matches[0].words)
            if found is None:
                return "quotes"
            mapping = found
    if not matches:
        return "absent"
    if len(matches) > 1:
        return "ambiguous"
    match = matches[0]
    line_start = text.rfind("\n", 0, match.start) + 1
    line_end = text.find("\n", match.end)
    line_end = len(text) if line_end == -1 else line_end
    before, after = text[line_start : match.start], text[match.end : line_end]
    if not new.strip():
        if before.strip() or after.strip():
            return Edit(match.start, match.end, "")
        return Edit(line_start, min(line_end + 1, len(text)), "")  # whole lines deleted
    try:
        replacement = _relayout(old, new, match, mapping)
    except _Refused as refusal:
        return str(refusal)
    if replacement == text[match.start : match.end]:
        return "unchanged"
    return Edit(match.start, match.end, replacement)


class _Refused(Exception):
    pass


def _relayout(old: str, new: str, match: Match, mapping: dict[int, str]) -> str:
    """``new`` written into the file's layout as described above; ``_Refused("layout"|"quotes")``."""
    old_words, new_words = old.split(), _WS.split(new.strip())
    old_gaps: list[str] = _WS.findall(old.strip())
    new_gaps: list[str] = _WS.findall(new.strip())
    file_gaps, n = match.gaps, len(old_words)
    out: list[str] = []  # words and the gaps between them
    changed: list[int] = []  # the places in ``out`` of words the model changed or added
    override: list[str] = []  # a gap the next word takes instead of its own (after a deletion)

    def emit(word: str, own_gap: str | None, *, is_changed: bool) -> None:
        if out:
            gap = override.pop() if override else own_gap
            if gap is None:
                raise _Refused("layout")
            out.append(gap)
        override.clear()
        if is_changed:
            changed.append(len(out))
        out.append(word)

    def kept_gap(i: int, j: int) -> str | None:
        """The gap before old word ``i`` / new word ``j``, both kept in place: the file's, unless the
        model changed it — then its own, only where its old_text had the file's and only inside a
        line (a line break it adds would be indented from its collapsed view)."""
        if not i:  # after words inserted before the first (only inside a one-line match)
            return new_gaps[j - 1]
        model_old, model_new, file = old_gaps[i - 1], new_gaps[j - 1], file_gaps[i - 1]
        if model_new in (model_old, file):
            return file
        return model_new if model_old == file and "\n" not in model_new + file else None

    if n == len(new_words):  # as many words: one for one, in place (no alignment to get wrong)
        opcodes: Sequence[tuple[str, int, int, int, int]] = [("equal", 0, n, 0, n)]
    else:
        opcodes = difflib.SequenceMatcher(a=old_words, b=new_words, autojunk=False).get_opcodes()
    multiline = any("\n" in g for g in file_gaps)
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            for k in range(i2 - i1):
                i, j = i1 + k, j1 + k
                same = old_words[i] == new_words[j]
                emit(
                    match.words[i] if same else new_words[j],
                    kept_gap(i, j) if j else None,
                    is_changed=not same,
                )
        elif tag == "delete":
            if i1 == 0 or i2 == n:  # at an end of the match: only inside its line
                if "\n" in file_gaps[i2 - 1 if i1 == 0 else i1 - 1]:
                    raise _Refused("layout")
            elif "\n" in file_gaps[i1 - 1] and "\n" not in file_gaps[i2 - 1]:
                override[:] = [file_gaps[i1 - 1]]  # the line break before the deleted words stays
            # otherwise the gap before the deleted words goes and the next word brings its own
        else:  # inserted, or replaced by a run of another length: inside one line of the file only
            around = file_gaps[max(i1 - 1, 0) : i2] + new_gaps[max(j1 - 1, 0) : j2]
            if ((i1 == 0 or i2 == n) and multiline) or any("\n" in g for g in around):
                raise _Refused("layout")
            for j in range(j1, j2):
                emit(new_words[j], new_gaps[j - 1] if j else None, is_changed=True)
    if any(mapping.get(q, chr(q)) != chr(q) for q in mapping):  # the model's quote marks differ
        marks = {c for place in changed for c in out[place] if c in "'\""}
        inside = any(re.search(r"\w['\"]\w", out[place]) for place in changed)  # it's, don't
        if len(marks) > 1 or inside:
            raise _Refused("quotes")
        for place in changed:
            out[place] = out[place].translate(mapping)
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

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
  mapping is applied to the words ``new`` changes, so a changed string keeps the file's style — but
  a changed word holding both kinds of quote mark (``"it's"``, ``'{"a": 1}'``) is refused rather
  than guessed at.
- **Layout**: a collapsed copy has lost the file's line structure, so only changes whose place in
  it is certain are made. ``new``'s words are aligned with ``old``'s (longest common subsequence,
  at most ``MAX_WORDS`` words); then, region by region: kept words keep the file's words and the
  file's whitespace; a run of words replaced by as many words takes the new words into the file's
  whitespace (``== 1`` → ``== 0``, ``y = x`` → ``z = x`` across a line break); deleted words go with
  the whitespace before them (after them at the start); words inserted, or a run replaced by a run
  of another length, are taken only inside one line of the file, with the model's spacing (no line
  break in it). Where the model changed the spacing between kept words, its spacing is taken only
  where its ``old`` had the file's. Anything else — new lines, re-indentation — is refused with a
  request for an exact copy: guessing the layout of lines a collapsed copy never showed writes
  broken code.
- A ``new`` that is empty deletes the whole lines the match covers when nothing else is on them.

Nothing here knows what the text means.
"""

from __future__ import annotations

import bisect
import difflib
import re

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
    replacement = relayout(old, new, match, mapping)
    if replacement in ("layout", "quotes"):
        return replacement
    if replacement == text[match.start : match.end]:
        return "unchanged"
    return Edit(match.start, match.end, replacement)


def relayout(old: str, new: str, match: Match, mapping: dict[int, str] | None = None) -> str:
    """``new`` written into the file's layout as described above, or ``"layout"``/``"quotes"``."""
    old_words, old_gaps = old.split(), _WS.findall(old.strip())
    new_words, new_gaps = _WS.split(new.strip()), _WS.findall(new.strip())
    file_gaps = match.gaps
    out: list[str] = []  # alternating words and gaps, starting with a word

    def gap(model_old: str, model_new: str, file: str) -> str | None:
        """Between two words kept in place: the file's, unless the model changed it on purpose."""
        if model_new == model_old:
            return file
        return model_new if model_old == file else None

    def word(w: str) -> str | None:
        if not mapping or not any(q in w for q in "'\""):
            return w
        if "'" in w and '"' in w:
            return None
        return w.translate(mapping)

    matcher = difflib.SequenceMatcher(a=old_words, b=new_words, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            for k in range(i2 - i1):
                i, j = i1 + k, j1 + k
                if out:  # the gap before old word i / new word j
                    if i:
                        between = gap(old_gaps[i - 1], new_gaps[j - 1], file_gaps[i - 1])
                    else:  # after words inserted before the first: the model's, inside the line
                        between = None if "\n" in new_gaps[j - 1] else new_gaps[j - 1]
                    if between is None:
                        return "layout"
                    out.append(between)
                if tag == "equal":
                    out.append(match.words[i])
                else:
                    changed = word(new_words[j])
                    if changed is None:
                        return "quotes"
                    out.append(changed)
        elif tag == "delete":
            continue  # the words go; so does the gap before them (the next word brings its own)
        else:  # insert, or replace by a run of another length: inside one line of the file only
            around = file_gaps[max(i1 - 1, 0) : i2] + new_gaps[max(j1 - 1, 0) : j2]
            if any("\n" in g for g in around):
                return "layout"
            for j in range(j1, j2):
                if out:
                    out.append(new_gaps[j - 1] if j else " ")
                changed = word(new_words[j])
                if changed is None:
                    return "quotes"
                out.append(changed)
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

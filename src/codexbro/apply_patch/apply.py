"""Apply parsed hunks to files.

Two entry points, as upstream:

- ``apply_hunks``: hunk by hunk, in patch order, *not* atomic across hunks (a failure in hunk k
  leaves hunks 1..k-1 applied) — the standalone ``apply_patch`` command, checked by the
  conformance scenarios.
- ``verify`` then ``commit``: the tool path computes every new file content first, so most errors
  (missing context, missing file) are reported with nothing written at all.

Beyond upstream: each file is written atomically (temp file + rename, mode preserved; a new file
gets the permissions the umask allows, as any editor's), and a file whose lines all end in CRLF
keeps CRLF endings. Writing to a symlink writes its target (the link stays), and a file with other
hard links is replaced, not written through — a link never carries a write somewhere else.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from msgspec import Struct, field

from codexbro.apply_patch.parser import AddFile, Chunk, DeleteFile, Hunk, PatchError, UpdateFile

_PUNCT = str.maketrans(
    {
        **{c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"},
        **{c: "'" for c in "\u2018\u2019\u201a\u201b"},
        **{c: '"' for c in "\u201c\u201d\u201e\u201f"},
        **{c: " " for c in "\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"},
    }
)


def seek_sequence(lines: list[str], pattern: list[str], start: int, eof: bool) -> int | None:
    """First index ≥ ``start`` where ``pattern`` matches, trying exact, then right-stripped, then
    stripped, then stripped with typographic punctuation normalised. With ``eof`` only the tail."""
    if not pattern:
        return start
    if len(pattern) > len(lines):
        return None
    first = len(lines) - len(pattern) if eof else start
    last = len(lines) - len(pattern)
    if first > last:
        return None
    n = len(pattern)
    for norm in (None, str.rstrip, str.strip, _loose):
        want = pattern if norm is None else [norm(p) for p in pattern]
        # Normalise each candidate line once per pass, and test the first line before slicing.
        hay = lines[first : last + n] if norm is None else [norm(x) for x in lines[first : last + n]]
        head = want[0]
        for offset in range(last - first + 1):
            if hay[offset] == head and hay[offset : offset + n] == want:
                return first + offset
    return None


def _loose(text: str) -> str:
    return text.strip().translate(_PUNCT)


def _io(exc: OSError) -> str:
    return f"{exc.strerror or exc} (os error {exc.errno})"


Reader = Callable[[Path], str]


def _read(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as fh:  # keep \r\n: no newline translation
        return fh.read()


def new_contents(path: Path, chunks: tuple[Chunk, ...], read: Reader = _read) -> str:
    """The file's content after applying ``chunks`` (raises PatchError with upstream's wording)."""
    return _apply_chunks(path, chunks, read)[1]


def _apply_chunks(path: Path, chunks: tuple[Chunk, ...], read: Reader) -> tuple[str, str]:
    """(original, new) contents of ``path``."""
    try:
        original = read(path)
    except OSError as exc:
        raise PatchError(f"Failed to read file to update {path}: {_io(exc)}") from None
    except UnicodeDecodeError:
        raise PatchError(
            f"Failed to read file to update {path}: stream did not contain valid UTF-8"
        ) from None
    untouched = original
    crlf = "\r\n" in original and "\n" not in original.replace("\r\n", "")
    if crlf:
        original = original.replace("\r\n", "\n")
    lines = original.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # A file with mixed line endings keeps each untouched line's; lines the patch writes end as the
    # file's first line does (as 0.169: tests/fixtures/codex-0.169/apply-patch-line-endings.json).
    eol = "\r" if not crlf and len(lines) > 1 and lines[0].endswith("\r") else ""

    replacements: list[tuple[int, int, list[str]]] = []
    cursor = 0
    for chunk in chunks:
        if chunk.change_context is not None:
            idx = seek_sequence(lines, [chunk.change_context], cursor, False)
            if idx is None:
                raise PatchError(f"Failed to find context '{chunk.change_context}' in {path}")
            cursor = idx + 1
        if not chunk.old_lines:
            # a pure addition goes at the end, after any trailing blank lines (as 0.169)
            replacements.append((len(lines), 0, [line + eol for line in chunk.new_lines]))
            continue
        pattern, new = list(chunk.old_lines), list(chunk.new_lines)
        pairs = _pairs(chunk) if chunk.ops else None
        found = seek_sequence(lines, pattern, cursor, chunk.is_end_of_file)
        if found is None and pattern[-1] == "":
            pattern = pattern[:-1]
            strip_new = bool(new) and new[-1] == ""
            if strip_new:
                new = new[:-1]
            if pairs is not None:
                pairs = _strip_trailing_blank(pairs, strip_new)
            found = seek_sequence(lines, pattern, cursor, chunk.is_end_of_file)
        if found is None:
            raise PatchError(f"Failed to find expected lines in {path}:\n" + "\n".join(chunk.old_lines))
        if pairs is not None:  # context lines keep the file's bytes; only - and + lines change anything
            new = _merge(lines[found : found + len(pattern)], pairs, eol)
        elif eol:
            new = [line + eol for line in new]
        replacements.append((found, len(pattern), new))
        cursor = found + len(pattern)

    replacements.sort(key=lambda r: r[0])
    for start, old_len, new in reversed(replacements):
        del lines[start : start + old_len]
        lines[start:start] = new
    lines.append("")  # the final newline popped above, or one added: trailing blank lines stay (as 0.169)
    text = "\n".join(lines)
    return untouched, text.replace("\n", "\r\n") if crlf else text


def umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _pairs(chunk: Chunk) -> list[tuple[str, str]]:
    """The chunk as (op, text) in patch order: "c" context, "-" removed, "+" added."""
    pairs, old_at, new_at = [], 0, 0
    for op in chunk.ops:
        if op == "+":
            pairs.append((op, chunk.new_lines[new_at]))
            new_at += 1
        else:
            pairs.append((op, chunk.old_lines[old_at]))
            old_at += 1
            new_at += op == "c"
    return pairs


def _strip_trailing_blank(pairs: list[tuple[str, str]], from_new: bool) -> list[tuple[str, str]]:
    """Drop the pattern's trailing empty line (and the new lines' last one, when it is empty)."""
    pairs = list(pairs)
    last_old = max(i for i, (op, _t) in enumerate(pairs) if op != "+")
    op, text = pairs[last_old]
    if op == "-":
        del pairs[last_old]
    else:
        pairs[last_old] = ("+", text)
    if from_new:
        last_new = max(i for i, (op, _t) in enumerate(pairs) if op != "-")
        op, text = pairs[last_new]
        if op == "+":
            del pairs[last_new]
        else:
            pairs[last_new] = ("-", text)
    return pairs


def _merge(original: list[str], pairs: list[tuple[str, str]], eol: str = "") -> list[str]:
    """The replacement for a matched region: the file's own line for each context line, the
    patch's line for each added line, nothing for each removed line."""
    out: list[str] = []
    old_at = 0
    for op, text in pairs:
        if op == "+":
            out.append(text + eol)
            continue
        if op == "c":
            out.append(original[old_at])
        old_at += 1
    return out


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and rename. A symlink's target is what gets
    written; an existing file keeps its mode, a new one gets 0666 less the umask."""
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _os_error(message: str, exc: OSError) -> PatchError:
    """Upstream's exact message; the OS reason rides along for callers that explain denials."""
    err = PatchError(message)
    err.errno = exc.errno
    err.reason = _io(exc)
    return err


class Affected(Struct):
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = ["Success. Updated the following files:"]
        lines += [f"A {p}" for p in self.added]
        lines += [f"M {p}" for p in self.modified]
        lines += [f"D {p}" for p in self.deleted]
        return "\n".join(lines) + "\n"


def _write_new(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(f"Failed to create parent directories for {path}", exc) from None
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise _os_error(f"Failed to write file {path}", exc) from None


def _delete(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            raise IsADirectoryError(path)
        path.unlink()
    except OSError as exc:
        raise _os_error(f"Failed to delete file {path}", exc) from None


def apply_hunks(hunks: list[Hunk], cwd: Path) -> Affected:
    """Hunk by hunk, in order (the standalone command's semantics)."""
    if not hunks:
        raise PatchError("No files were modified.")
    affected = Affected()
    for hunk in hunks:
        path = cwd / hunk.path
        if isinstance(hunk, AddFile):
            _write_new(path, hunk.contents)
            affected.added.append(hunk.path)
        elif isinstance(hunk, DeleteFile):
            _delete(path)
            affected.deleted.append(hunk.path)
        else:
            text = new_contents(path, hunk.chunks)
            _commit_update(hunk, path, text, cwd)
            affected.modified.append(hunk.move_to or hunk.path)
    return affected


def _commit_update(hunk: UpdateFile, path: Path, text: str, cwd: Path) -> None:
    if hunk.move_to:
        _write_new(cwd / hunk.move_to, text)
        try:
            path.unlink()
        except OSError as exc:
            raise _os_error(f"Failed to remove original {path}", exc) from None
    else:
        try:
            write_atomic(path, text)
        except OSError as exc:
            raise _os_error(f"Failed to write file {path}", exc) from None


class PlannedChange(Struct, frozen=True):
    """One verified change: ``kind`` is add | delete | update; ``new_text`` for add/update."""

    kind: str
    path: str
    abs_path: Path
    new_text: str | None = None
    move_to: str | None = None
    old_text: str | None = None


def verify(hunks: list[Hunk], cwd: Path, *, read: Reader = _read) -> list[PlannedChange]:
    """Compute every change before touching anything (the tool path). ``read`` is how files are
    read (the agent passes one that refuses what the model may not read)."""
    if not hunks:
        raise PatchError("No files were modified.")
    plan: list[PlannedChange] = []
    for hunk in hunks:
        path = cwd / hunk.path
        if isinstance(hunk, AddFile):
            plan.append(PlannedChange("add", hunk.path, path, hunk.contents))
        elif isinstance(hunk, DeleteFile):
            try:
                old = read(path)
            except UnicodeDecodeError:
                old = ""
            except OSError as exc:
                raise PatchError(f"Failed to read {path}: {_io(exc)}") from None
            plan.append(PlannedChange("delete", hunk.path, path, old_text=old))
        else:
            old, text = _apply_chunks(path, hunk.chunks, read)
            plan.append(PlannedChange("update", hunk.path, path, text, hunk.move_to, old_text=old))
    return plan


def commit(plan: list[PlannedChange], cwd: Path) -> Affected:
    affected = Affected()
    for change in plan:
        if change.kind == "add":
            _write_new(change.abs_path, change.new_text or "")
            affected.added.append(change.path)
        elif change.kind == "delete":
            _delete(change.abs_path)
            affected.deleted.append(change.path)
        else:
            hunk = UpdateFile(change.path, change.move_to)
            _commit_update(hunk, change.abs_path, change.new_text or "", cwd)
            affected.modified.append(change.move_to or change.path)
    return affected

"""Parse the apply_patch format (upstream's lenient parser).

::

    *** Begin Patch
    *** Add File: path          (then lines starting with "+")
    *** Delete File: path
    *** Update File: path
    *** Move to: new/path       (optional)
    @@ optional context line
     context / -removed / +added lines
    *** End of File             (optional: anchor the chunk at the end of the file)
    *** End Patch

Pure: no filesystem access. Errors carry upstream's wording so models recognise them.
"""

from __future__ import annotations

from msgspec import Struct, field

BEGIN = "*** Begin Patch"
END = "*** End Patch"
ADD = "*** Add File: "
DELETE = "*** Delete File: "
UPDATE = "*** Update File: "
MOVE = "*** Move to: "
EOF_MARKER = "*** End of File"
HEADERS_HELP = (
    "Valid hunk headers: '*** Add File: {path}', '*** Delete File: {path}', '*** Update File: {path}'"
)


class PatchError(Exception):
    """Any failure to parse or apply a patch; ``str()`` is the message for the model or user.
    ``errno`` is set when a write failed at the operating system (EROFS inside a sandbox, …)."""

    errno: int | None = None
    reason: str = ""


class InvalidPatch(PatchError):
    def __str__(self) -> str:
        return f"invalid patch: {self.args[0]}"


class InvalidHunk(PatchError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message

    def __str__(self) -> str:
        return f"invalid hunk at line {self.line}, {self.message}"


class Chunk(Struct, frozen=True):
    change_context: str | None
    old_lines: tuple[str, ...]
    new_lines: tuple[str, ...]
    is_end_of_file: bool = False
    # The patch's lines in order: "c" context (in old and new), "-" removed, "+" added. Applying
    # walks these so context lines keep the file's own bytes, however loosely they matched.
    ops: tuple[str, ...] = ()


class AddFile(Struct, frozen=True):
    path: str
    contents: str


class DeleteFile(Struct, frozen=True):
    path: str


class UpdateFile(Struct, frozen=True):
    path: str
    move_to: str | None
    chunks: tuple[Chunk, ...] = field(default_factory=tuple)


Hunk = AddFile | DeleteFile | UpdateFile


def split_lines(text: str) -> list[str]:
    """Rust ``str::lines``: split on ``\\n``, drop one trailing ``\\r`` per line, no final empty line."""
    if not text:
        return []
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
    return [p[:-1] if p.endswith("\r") else p for p in parts]


def parse_patch(text: str) -> list[Hunk]:
    lines = split_lines(text.strip())
    lines = _check_boundaries(lines)
    hunks: list[Hunk] = []
    body = lines[1:-1]
    i = 0
    while i < len(body):
        hunk, used = _parse_hunk(body, i, line_number=i + 2)
        hunks.append(hunk)
        i += used
    return hunks


def _check_boundaries(lines: list[str]) -> list[str]:
    try:
        _strict_boundaries(lines)
        return lines
    except InvalidPatch:
        # Lenient: a heredoc passed as one argv element (`<<'EOF'\n…\nEOF`), a gpt-4.1 habit.
        if len(lines) >= 4 and lines[0] in ("<<EOF", "<<'EOF'", '<<"EOF"') and lines[-1].endswith("EOF"):
            inner = lines[1:-1]
            _strict_boundaries(inner)
            return inner
        raise


def _strict_boundaries(lines: list[str]) -> None:
    if not lines or lines[0].strip() != BEGIN:
        raise InvalidPatch("The first line of the patch must be '*** Begin Patch'")
    if lines[-1].strip() != END or len(lines) < 2:
        raise InvalidPatch("The last line of the patch must be '*** End Patch'")


def _parse_hunk(lines: list[str], start: int, line_number: int) -> tuple[Hunk, int]:
    header = lines[start].strip()
    if header.startswith(ADD):
        contents = []
        i = start + 1
        while i < len(lines) and lines[i].startswith("+"):
            contents.append(lines[i][1:] + "\n")
            i += 1
        return AddFile(header[len(ADD) :], "".join(contents)), i - start
    if header.startswith(DELETE):
        return DeleteFile(header[len(DELETE) :]), 1
    if header.startswith(UPDATE):
        path = header[len(UPDATE) :]
        i = start + 1
        move_to = None
        if i < len(lines) and lines[i].startswith(MOVE):
            move_to = lines[i][len(MOVE) :]
            i += 1
        chunks: list[Chunk] = []
        while i < len(lines):
            if not lines[i].strip():
                i += 1  # blank lines between chunks
                continue
            if lines[i].startswith("*"):
                break
            chunk, used = _parse_chunk(lines[i:], line_number + (i - start), allow_missing_context=not chunks)
            chunks.append(chunk)
            i += used
        if not chunks:
            raise InvalidHunk(line_number, f"Update file hunk for path '{path}' is empty")
        return UpdateFile(path, move_to, tuple(chunks)), i - start
    raise InvalidHunk(line_number, f"'{header}' is not a valid hunk header. {HEADERS_HELP}")


def _parse_chunk(lines: list[str], line_number: int, *, allow_missing_context: bool) -> tuple[Chunk, int]:
    if lines[0] == "@@":
        context, body_start = None, 1
    elif lines[0].startswith("@@ "):
        context, body_start = lines[0][3:], 1
    else:
        if not allow_missing_context:
            raise InvalidHunk(
                line_number, f"Expected update hunk to start with a @@ context marker, got: '{lines[0]}'"
            )
        context, body_start = None, 0
    if body_start >= len(lines):
        raise InvalidHunk(line_number + 1, "Update hunk does not contain any lines")
    old: list[str] = []
    new: list[str] = []
    ops: list[str] = []
    eof = False
    parsed = 0
    for line in lines[body_start:]:
        if line == EOF_MARKER:
            if parsed == 0:
                raise InvalidHunk(line_number + 1, "Update hunk does not contain any lines")
            eof = True
            parsed += 1
            break
        marker = line[:1]
        if marker == "":
            old.append("")
            new.append("")
            ops.append("c")
        elif marker == " ":
            old.append(line[1:])
            new.append(line[1:])
            ops.append("c")
        elif marker == "+":
            new.append(line[1:])
            ops.append("+")
        elif marker == "-":
            old.append(line[1:])
            ops.append("-")
        else:
            if parsed == 0:
                raise InvalidHunk(
                    line_number + 1,
                    f"Unexpected line found in update hunk: '{line}'. Every line should start with ' ' "
                    "(context line), '+' (added line), or '-' (removed line)",
                )
            break  # the next hunk starts here
        parsed += 1
    return Chunk(context, tuple(old), tuple(new), eof, tuple(ops)), parsed + body_start

"""``read_file`` and ``list_dir``: upstream's experimental file tools.

Both take absolute paths, number their output from 1, and cap each line or name at 500 bytes.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from pathlib import Path
from typing import Any

from codexbro.tools.base import (
    FunctionTool,
    RespondToModel,
    ToolCall,
    ToolContext,
    ToolOutput,
    function_spec,
    int_arg,
)

MAX_LINE_BYTES = 500
TAB_WIDTH = 4
COMMENT_PREFIXES = ("#", "//", "--")


def _cap(raw: bytes) -> str:
    return (
        raw[:MAX_LINE_BYTES].decode("utf-8", "ignore")
        if len(raw) > MAX_LINE_BYTES
        else raw.decode("utf-8", "replace")
    )


def _absolute(value: str, name: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise RespondToModel(f"{name} must be an absolute path")
    return path


# ---- read_file --------------------------------------------------------------------------------

READ_FILE = function_spec(
    "read_file",
    "Reads a local file and returns its lines numbered from 1 (`L<n>: text`). Use `offset`/`limit` for a "
    'slice, or `mode: "indentation"` with an anchor line to get the enclosing code block.',
    {
        "file_path": {"type": "string", "description": "Absolute path of the file."},
        "offset": {"type": "number", "description": "First line to return, 1-based (default 1)."},
        "limit": {"type": "number", "description": "Maximum number of lines to return (default 2000)."},
        "mode": {"type": "string", "description": '"slice" (default) or "indentation".'},
        "indentation": {
            "type": "object",
            "properties": {
                "anchor_line": {
                    "type": "number",
                    "description": "Line the block is built around (default offset).",
                },
                "max_levels": {
                    "type": "number",
                    "description": "Parent levels to include; 0 = all (default 0).",
                },
                "include_siblings": {
                    "type": "boolean",
                    "description": "Include sibling blocks (default false).",
                },
                "include_header": {
                    "type": "boolean",
                    "description": "Include header comments (default true).",
                },
                "max_lines": {"type": "number", "description": "Hard cap on returned lines (default limit)."},
            },
            "additionalProperties": False,
        },
    },
    ["file_path"],
)


def _read_lines(path: Path, ctx: ToolContext) -> list[bytes]:
    from codexbro.tools.agent_reads import ReadRefused, read_bytes

    try:
        data = read_bytes(path, home=ctx.home, restricted=ctx.sandbox is not None)
    except IsADirectoryError:
        raise RespondToModel(f"failed to read file: {path} is a directory") from None
    except ReadRefused as exc:
        raise RespondToModel(f"failed to read file: {path}: {exc.strerror}") from None
    except OSError as exc:
        raise RespondToModel(f"failed to read file: {exc.strerror} (os error {exc.errno})") from None
    if b"\0" in data[:8192]:
        raise RespondToModel(f"failed to read file: {path} looks like a binary file, not text")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _indent(line: bytes) -> int | None:
    text = line.decode("utf-8", "replace")
    if not text.strip():
        return None
    width = 0
    for ch in text:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += TAB_WIDTH
        else:
            break
    return width


def read_slice(lines: list[bytes], offset: int, limit: int) -> list[int]:
    if offset > len(lines):
        raise RespondToModel("offset exceeds file length")
    return list(range(offset - 1, min(len(lines), offset - 1 + limit)))


def read_block(lines: list[bytes], anchor: int, limit: int, opts: dict[str, Any]) -> list[int]:
    """Indexes of the indentation block around ``anchor`` (1-based), as upstream's algorithm."""
    if anchor > len(lines):
        raise RespondToModel("anchor_line exceeds file length")
    max_levels = int(opts.get("max_levels") or 0)
    siblings = bool(opts.get("include_siblings", False))
    header = opts.get("include_header", True) is not False
    max_lines = opts.get("max_lines")
    if max_lines is not None and max_lines <= 0:
        raise RespondToModel("max_lines must be greater than zero")
    effective: list[int] = []
    previous = 0
    for line in lines:
        width = _indent(line)
        previous = previous if width is None else width
        effective.append(previous)
    a = anchor - 1
    min_indent = 0 if max_levels == 0 else max(0, effective[a] - max_levels * TAB_WIDTH)
    final_limit = min(limit, int(max_lines) if max_lines else limit, len(lines))
    if final_limit <= 1:
        return [a]
    chosen = deque([a])
    i, j = a - 1, a + 1
    up_at_min = down_at_min = 0
    up_open, down_open = True, True
    while len(chosen) < final_limit and (up_open or down_open):
        progressed = False
        if up_open and i >= 0 and effective[i] >= min_indent:
            accept = True
            if effective[i] == min_indent and not siblings:
                is_comment = lines[i].decode("utf-8", "replace").strip().startswith(COMMENT_PREFIXES)
                if up_at_min >= 1 and not (header and is_comment):
                    accept = False
                    up_open = False
                else:
                    up_at_min += 1
            if accept:
                chosen.appendleft(i)
                i -= 1
                progressed = True
        else:
            up_open = False
        if len(chosen) >= final_limit:
            break
        if down_open and j < len(lines) and effective[j] >= min_indent:
            accept = True
            if effective[j] == min_indent and not siblings:
                down_at_min += 1
                if down_at_min >= 2:
                    accept = False
                    down_open = False
            if accept:
                chosen.append(j)
                j += 1
                progressed = True
        else:
            down_open = False
        if not progressed:
            break
    out = list(chosen)
    while len(out) > 1 and not lines[out[0]].strip():
        out.pop(0)
    while len(out) > 1 and not lines[out[-1]].strip():
        out.pop()
    return out


class ReadFileHandler(FunctionTool):
    name = "read_file"
    SPEC = READ_FILE

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        args = self.args(call)
        path = _absolute(args["file_path"], "file_path")
        offset = int_arg(args, "offset", 1, zero_message="offset must be a 1-indexed line number")
        limit = int_arg(args, "limit", 2000, zero_message="limit must be greater than zero")
        mode = args.get("mode") or "slice"
        if mode not in ("slice", "indentation"):
            raise RespondToModel(
                'failed to parse function arguments: `mode` must be "slice" or "indentation"'
            )
        lines = await asyncio.to_thread(_read_lines, path, ctx)
        if mode == "slice":
            picked = read_slice(lines, offset, limit)
        else:
            opts = dict(args.get("indentation") or {})
            anchor = int(opts.get("anchor_line") or offset)
            if anchor <= 0:
                raise RespondToModel("anchor_line must be a 1-indexed line number")
            picked = read_block(lines, anchor, limit, opts)
        return ToolOutput("\n".join(f"L{i + 1}: {_cap(lines[i])}" for i in picked))


# ---- list_dir ---------------------------------------------------------------------------------

LIST_DIR = function_spec(
    "list_dir",
    "Lists a local directory breadth-first with numbered entries and type labels (`/` directory, `@` "
    "symlink, `?` other). Page with `offset`/`limit`; `depth` sets how many levels to descend.",
    {
        "dir_path": {"type": "string", "description": "Absolute path of the directory."},
        "offset": {"type": "number", "description": "First entry to return, 1-based (default 1)."},
        "limit": {"type": "number", "description": "Maximum entries to return (default 25)."},
        "depth": {"type": "number", "description": "Levels to descend (default 2)."},
    },
    ["dir_path"],
)


def _walk(root: Path, depth: int, ctx: ToolContext) -> list[tuple[str, int, str]]:
    """(relative path, level, suffix) in breadth-first order, sorted by path within each directory."""
    from codexbro.tools.agent_reads import scandir

    out: list[tuple[str, int, str]] = []
    queue: deque[tuple[Path, str, int]] = deque([(root, "", depth)])
    while queue:
        directory, prefix, remaining = queue.popleft()
        try:
            entries = sorted(
                scandir(directory, home=ctx.home, restricted=ctx.sandbox is not None), key=lambda e: e.name
            )
        except OSError:
            continue
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if entry.is_symlink():
                suffix = "@"
            elif entry.is_dir():
                suffix = "/"
                if remaining > 1:
                    queue.append((directory / entry.name, rel + "/", remaining - 1))
            elif entry.is_file():
                suffix = ""
            else:
                suffix = "?"
            out.append((rel, rel.count("/"), suffix))
    return out


class ListDirHandler(FunctionTool):
    name = "list_dir"
    SPEC = LIST_DIR

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        args = self.args(call)
        path = _absolute(args["dir_path"], "dir_path")
        offset = int_arg(args, "offset", 1, zero_message="offset must be a 1-indexed entry number")
        limit = int_arg(args, "limit", 25, zero_message="limit must be greater than zero")
        depth = int_arg(args, "depth", 2, zero_message="depth must be greater than zero")
        if not path.is_dir():
            raise RespondToModel(f"failed to read directory: {path} is not a directory")
        from codexbro.tools.agent_reads import ReadRefused, open_checked

        try:
            os.close(open_checked(path, home=ctx.home, restricted=ctx.sandbox is not None, directory=True))
        except ReadRefused as exc:
            raise RespondToModel(f"failed to read directory: {path}: {exc.strerror}") from None
        except OSError as exc:
            raise RespondToModel(f"failed to read directory: {exc.strerror} (os error {exc.errno})") from None
        entries = await asyncio.to_thread(_walk, path, depth, ctx)
        if offset > len(entries) and entries:
            raise RespondToModel("offset exceeds directory entry count")
        window = sorted(entries[offset - 1 : offset - 1 + limit], key=lambda e: e[0])
        lines = [f"Absolute path: {path}"]
        for rel, level, suffix in window:
            name = _cap(rel.rsplit("/", 1)[-1].encode("utf-8", "surrogateescape"))
            lines.append(f"{'  ' * level}{name}{suffix}")
        if offset - 1 + limit < len(entries):
            lines.append(f"More than {limit} entries found")
        return ToolOutput("\n".join(lines))

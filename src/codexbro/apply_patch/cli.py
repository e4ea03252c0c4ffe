"""``codexbro apply-patch [PATCH]`` and the ``apply_patch`` command (argv0 alias).

The patch comes from the single argument, or from stdin when there is none. Output as upstream's
standalone binary: a summary on stdout and exit 0, or the error on stderr and exit 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from codexbro.apply_patch.apply import apply_hunks
from codexbro.apply_patch.parser import InvalidHunk, InvalidPatch, PatchError, parse_patch


def run(argv: Sequence[str], cwd: Path | None = None) -> int:
    if len(argv) > 1:
        print(
            "Error: apply_patch takes exactly one argument: the patch (or none to read stdin)",
            file=sys.stderr,
        )
        return 2
    if argv:
        patch = argv[0]
    else:
        if sys.stdin.isatty():
            print("Error: pass the patch as an argument or on stdin", file=sys.stderr)
            return 2
        patch = sys.stdin.read()
    cwd = cwd or Path.cwd()
    try:
        hunks = parse_patch(patch)
    except InvalidHunk as exc:
        print(f"Invalid patch hunk on line {exc.line}: {exc.message}", file=sys.stderr)
        return 1
    except InvalidPatch as exc:
        print(f"Invalid patch: {exc.args[0]}", file=sys.stderr)
        return 1
    try:
        affected = apply_hunks(hunks, cwd)
    except PatchError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    sys.stdout.write(affected.summary())
    return 0


def main() -> int:
    """Entry point of the ``apply_patch`` console script."""
    return run(sys.argv[1:])


if __name__ == "__main__":  # `python -m codexbro.apply_patch.cli`: the helper commands use this
    sys.exit(main())

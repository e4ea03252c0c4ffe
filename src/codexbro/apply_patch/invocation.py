"""Recognise apply_patch invoked through a shell tool, so the runtime can apply it itself
: ``["apply_patch", PATCH]`` or a shell running exactly one statement
``[cd DIR &&] apply_patch <<'EOF' … EOF``. Anything else (pipes, ``;``, extra commands, arguments)
is an ordinary command.
"""

from __future__ import annotations

import re
import shlex
from pathlib import PurePath

from msgspec import Struct

from codexbro.apply_patch.parser import BEGIN

NAMES = ("apply_patch", "applypatch")
SHELLS = ("bash", "zsh", "sh")

_HEREDOC = re.compile(
    r"""^\s*(?:cd\s+(?P<cd>'[^']*'|"[^"]*"|[^\s;&|'"]+)\s*&&\s*)?"""
    r"""(?:apply_patch|applypatch)\s*<<-?\s*(?P<q>['"]?)(?P<tag>\w+)(?P=q)[ \t]*\n"""
    r"""(?P<body>.*?)\n(?P=tag)[ \t]*\n?\s*$""",
    re.DOTALL,
)


class ShellPatch(Struct, frozen=True):
    patch: str
    cd: str | None = None


class NotExplicit(Exception):
    """A bare patch body was run without calling apply_patch."""

    def __str__(self) -> str:
        return 'patch detected without explicit call to apply_patch. Rerun as ["apply_patch", "<patch>"]'


def parse_script(script: str) -> ShellPatch | None:
    match = _HEREDOC.match(script)
    if not match:
        return None
    cd = match.group("cd")
    if cd is not None:
        cd = shlex.split(cd)[0] if cd[:1] in "'\"" else cd
    return ShellPatch(match.group("body") + "\n", cd)


def maybe_shell_patch(argv: list[str]) -> ShellPatch | None:
    """The patch (and ``cd`` target) if ``argv`` is an apply_patch invocation, else None.

    Raises ``NotExplicit`` for a bare patch body given as the command.
    """
    if len(argv) == 2 and argv[0] in NAMES:
        return ShellPatch(argv[1])
    if len(argv) == 1 and argv[0].lstrip().startswith(BEGIN):
        raise NotExplicit()
    if len(argv) == 3 and PurePath(argv[0]).name in SHELLS and argv[1] in ("-c", "-lc"):
        script = argv[2]
        if script.lstrip().startswith(BEGIN):
            raise NotExplicit()
        return parse_script(script)
    return None

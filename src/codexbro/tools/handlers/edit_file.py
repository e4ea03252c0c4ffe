"""``edit_file``: replace one exact piece of text in a file (codexbro's addition, not an upstream tool).

Small models write wrong unified-diff hunks far more often than they copy a line exactly, so the
embedded profile offers this instead of making them patch; any model can have it with
``[tools] edit_file = true``. The edit is turned into an ``apply_patch`` hunk over the lines that hold
the text, so it goes through the same verification, sandbox policy, approvals and
``patch_apply_begin``/``end`` events (a ``file_change`` item in ``exec --json``) as a patch.
Text copied with its line breaks, indentation or quote marks changed is still edited when it
matches only once and the change's place is certain, in the file's layout (``tools/loose_match.py``).
"""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path
from typing import Any, ClassVar

from codexbro.tools.base import FunctionTool, RespondToModel, ToolCall, ToolContext, ToolOutput, function_spec
from codexbro.tools.loose_match import loose_edit
from codexbro.tools.output import exec_output_freeform


def hunk_patch(path: str, text: str, old: str, new: str, start: int | None = None) -> str:
    """An apply_patch that replaces the one occurrence of ``old`` in ``text`` (the file at ``path``;
    at ``start`` when given) by ``new``: an update hunk over exactly the lines the occurrence
    touches. Those lines contain ``old``, which occurs once, so they occur once too and the hunk
    cannot land elsewhere."""
    start = text.index(old) if start is None else start
    end = start + len(old)
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end == -1 else line_end
    before = text[line_start:line_end]
    after = text[line_start:start] + new + text[end:line_end]
    body = [f"-{line}" for line in before.split("\n")] + [f"+{line}" for line in after.split("\n")]
    if line_end == len(text):
        body.append("*** End of File")
    return "\n".join(["*** Begin Patch", f"*** Update File: {path}", "@@", *body, "*** End Patch"]) + "\n"


class EditFileHandler(FunctionTool):
    name = "edit_file"
    supports_parallel = False
    SPEC: ClassVar[dict[str, Any]] = function_spec(
        "edit_file",
        "Replaces one exact piece of text in an existing file with new text. `old_text` must occur "
        "exactly once in the file: copy it from the file, with enough of the line to be unique.",
        {
            "path": {"type": "string", "description": "The file, relative to the working directory."},
            "old_text": {"type": "string", "description": "The exact text to replace."},
            "new_text": {"type": "string", "description": "The text to put in its place."},
        },
        ["path", "old_text", "new_text"],
    )

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        from codexbro.tools.handlers.apply_patch import apply_patch_text

        args = self.args(call)
        name, old, new = str(args["path"]), str(args["old_text"]), str(args["new_text"])
        if not old:
            raise RespondToModel("edit_file: old_text is empty; give the exact text to replace")
        if old == new:
            raise RespondToModel(
                "edit_file: old_text and new_text are the same, so nothing was changed; new_text is "
                "the text that replaces old_text"
            )
        path = Path(name) if Path(name).is_absolute() else ctx.cwd / name
        from codexbro.tools.agent_reads import ReadRefused, read_text

        try:
            text = read_text(path, home=ctx.home, restricted=ctx.sandbox is not None).replace("\r\n", "\n")
        except FileNotFoundError:
            raise RespondToModel(f"edit_file: {name} does not exist") from None
        except ReadRefused as exc:
            raise RespondToModel(f"edit_file: cannot read {name}: {exc.strerror}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RespondToModel(f"edit_file: cannot read {name}: {exc}") from None
        first = text.find(old)
        start: int | None = first
        if first == -1:  # copied with its layout or quote marks changed? (loose_match.py)
            edit = await asyncio.to_thread(loose_edit, text, old, new)
            if isinstance(edit, str):
                raise RespondToModel(_LOOSE_REFUSALS[edit].format(name=name) + _shown(name, text))
            start, old, new = edit.start, text[edit.start : edit.end], edit.replacement
        elif text.find(old, first + 1) != -1:
            refusal = await asyncio.to_thread(_repeated, name, text, old, new, symlink=path.is_symlink())
            raise RespondToModel(refusal)
        result = await apply_patch_text(hunk_patch(name, text, old, new, start), ctx.cwd, call.call_id, ctx)
        output = exec_output_freeform(
            result.output, result.exit_code, result.seconds, ctx.truncation_mode, ctx.truncation_limit
        )
        return ToolOutput(output, success=result.exit_code == 0)


_LOOSE_REFUSALS = {
    "absent": "edit_file: old_text was not found in {name}; copy it exactly from the file (spaces and "
    "quotes included)",
    "ambiguous": "edit_file: old_text was not found exactly in {name}, and ignoring spaces, line breaks "
    "and quote marks it occurs more than once; copy it exactly from the file, with enough of the line "
    "to be unique",
    "quotes": "edit_file: old_text was not found in {name}; its quote marks differ from the file's and "
    "cannot be matched with certainty: copy it exactly from the file (spaces and quotes included)",
    "layout": "edit_file: old_text was not found exactly in {name}; it matches once ignoring spaces and "
    "line breaks, but where new_text's lines go in the file is not certain: copy old_text exactly "
    "from the file, line breaks and indentation included",
    "unchanged": "edit_file: old_text was not found exactly in {name}, and where it matches ignoring "
    "spaces, line breaks and quote marks new_text would change nothing; copy old_text exactly from the "
    "file",
}


def _repeated(name: str, text: str, old: str, new: str, *, symlink: bool = False) -> str:
    """The refusal of an ``old_text`` that occurs more than once: where it occurs, and both ways on —
    one occurrence (more of its line) or every one (a ``sed`` command that replaces exactly
    ``old_text`` everywhere, written out when both texts are short, fit on a line and need no shell
    quoting of their own). Renames ran into this: a small model retried ever longer pieces of the
    same line. Linear in the file: occurrences are found left to right without overlap (as
    ``str.count`` and ``sed`` count them), and an overlapping one is looked for only within the
    span of each."""
    lines: set[int] = set()  # the lines occurrences start on
    no_command = False  # occurrences overlap ("every one" means nothing), or not all were seen
    line, seen, at, scanned = 1, 0, text.find(old), 0
    while at != -1:
        if scanned == _SCAN_LIMIT:  # the rest is not looked at (nor offered to sed)
            no_command = True
            break
        scanned += 1
        line += text.count("\n", seen, at)
        lines.add(line)
        end = at + len(old)
        inner = text.find(old, at + 1, end + len(old) - 1)
        if inner != -1:  # "end\nend" in "end\nend\nend": replacing "every one" means nothing
            no_command = True
            lines.add(line + text.count("\n", at, inner))
        seen, at = at, text.find(old, end)
    shown = sorted(lines)
    where = ", ".join(map(str, shown[:_LINES_SHOWN]))
    if len(shown) > _LINES_SHOWN:
        where += f" and {'' if at == -1 else 'over '}{len(shown) - _LINES_SHOWN} more lines"
    message = (
        f"edit_file: old_text occurs {max(2, text.count(old))} times in {name} "
        f"(line{'s' if len(shown) > 1 else ''} {where}); to change one of them, include more of its "
        "line so it is unique"
    )
    if not no_command and (command := sed_replace_all(name, old, new, follow_symlink=symlink)):
        message += f"; to change every one, run: {command}"
    return message


_LINES_SHOWN = 6
_SCAN_LIMIT = 10_000  # occurrences looked at: a 2 MB file of one repeated letter took a second
# Longer texts get no command: not one a model copies, and GNU sed's matcher needs memory growing
# with the square of a long repetitive pattern's length (a 20,000-character one took 3 GB).
SED_TEXT_LIMIT = 200


def sed_replace_all(path: str, old: str, new: str, *, follow_symlink: bool = False) -> str | None:
    """A GNU ``sed -i`` command replacing every occurrence of the literal ``old`` in ``path`` by
    ``new`` (non-overlapping, left to right, as ``str.replace``), or None when either text is
    longer than ``SED_TEXT_LIMIT``, spans lines or holds a single quote (the command would not be
    one a model can copy reliably). ``follow_symlink``: ``path`` is a link, whose target is to be
    edited (as edit_file would) — plain ``sed -i`` replaces the link with an edited copy."""
    # a lone surrogate (the range below) no file or shell command can hold
    if max(len(old), len(new)) > SED_TEXT_LIMIT or any(
        c in "\n\r'\x00" or "\ud800" <= c <= "\udfff" for c in old + new
    ):
        return None
    pattern = "".join("\\" + c if c in _BRE_SPECIAL else c for c in old)
    replacement = "".join("\\" + c if c in "\\/&" else c for c in new)
    target = f"./{path}" if path.startswith("-") else path  # not read as an option
    follow = " --follow-symlinks" if follow_symlink else ""
    return f"sed -i{follow} 's/{pattern}/{replacement}/g' {shlex.quote(target)}"


# Special in a GNU sed basic regular expression, or the delimiter; with ``[`` escaped no bracket
# expression can start, so a ``]`` is literal as it stands.
_BRE_SPECIAL = frozenset("\\/.*[^$")


# A file this small is shown in the not-found error: what the model needs to copy from is then in
# front of it (a small model otherwise guesses the text again, or gives up).
SHOW_LIMIT = 2000


def _shown(name: str, text: str) -> str:
    if len(text) > SHOW_LIMIT or "\x00" in text:
        return ""
    return f". {name} is:\n{text.rstrip()}"

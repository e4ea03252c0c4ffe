"""The ``apply_patch`` tool: freeform (a custom tool with a Lark grammar) or JSON function
(one ``input`` string), as the model's catalog entry asks. Shell calls that are really
``apply_patch <<'EOF' …`` heredocs are routed here too (see ``shell.py``).

Flow: parse → verify (compute every new file; nothing written on error) → patch safety
(sandbox policy / approval) → ``patch_apply_begin`` → write → ``patch_apply_end``.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec import Struct

from codexbro.protocol import ApplyPatchApprovalRequest, PatchApplyBegin, PatchApplyEnd
from codexbro.tools.base import (
    RespondToModel,
    ToolCall,
    ToolContext,
    ToolOutput,
    function_spec,
    parse_arguments,
)
from codexbro.tools.output import exec_output_freeform
from codexbro.tools.patch_writer import Written, write_approved

if TYPE_CHECKING:
    from codexbro.apply_patch.apply import PlannedChange
    from codexbro.sandbox.linux import Prepared

# The parser, applier and policy load on the first patch, not at start-up.

GRAMMAR = """start: begin_patch hunk+ end_patch
begin_patch: "*** Begin Patch" LF
end_patch: "*** End Patch" LF?

hunk: add_hunk | delete_hunk | update_hunk
add_hunk: "*** Add File: " filename LF add_line+
delete_hunk: "*** Delete File: " filename LF
update_hunk: "*** Update File: " filename LF change_move? change?

filename: /(.+)/
add_line: "+" /(.*)/ LF -> line

change_move: "*** Move to: " filename LF
change: (change_context | change_line)+ eof_line?
change_context: ("@@" | "@@ " /(.+)/) LF
change_line: ("+" | "-" | " ") /(.*)/ LF
eof_line: "*** End of File" LF

%import common.LF
"""

FREEFORM_DESCRIPTION = (
    "Edit files by applying a patch. This is a FREEFORM tool: send the patch text itself, not JSON."
)

FUNCTION_DESCRIPTION = """Edit files by applying a patch. `input` is the whole patch:

*** Begin Patch
[one or more file sections]
*** End Patch

A file section starts with one of three headers:
*** Add File: <path>      then every line of the new file, each prefixed with +
*** Delete File: <path>   nothing follows
*** Update File: <path>   optionally followed by *** Move to: <new path>, then one or more hunks

Each hunk of an update starts with @@ (optionally followed by a line that locates it, such as a class
or function signature) and lists lines prefixed with a space (unchanged context), - (removed) or
+ (added). Show about three lines of context above and below each change; use more @@ lines to
disambiguate repeated code. End a hunk with *** End of File when it must match the end of the file.
Paths are relative to the working directory; never use absolute paths."""


def freeform_spec() -> dict[str, Any]:
    return {
        "type": "custom",
        "name": "apply_patch",
        "description": FREEFORM_DESCRIPTION,
        "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR},
    }


_FUNCTION = function_spec(
    "apply_patch",
    FUNCTION_DESCRIPTION,
    {"input": {"type": "string", "description": "The entire patch, from *** Begin Patch to *** End Patch."}},
    ["input"],
)


def _changes(plan: list[PlannedChange]) -> dict[str, dict[str, Any]]:
    import difflib

    out: dict[str, dict[str, Any]] = {}
    for change in plan:
        key = str(change.abs_path)
        if change.kind == "add":
            out[key] = {"type": "add", "content": change.new_text or ""}
        elif change.kind == "delete":
            out[key] = {"type": "delete", "content": change.old_text or ""}
        else:
            old = change.old_text or ""
            diff = "".join(
                difflib.unified_diff(
                    old.splitlines(keepends=True), (change.new_text or "").splitlines(keepends=True), n=1
                )
            )
            out[key] = {"type": "update", "unified_diff": diff, "move_path": change.move_to}
    return out


class PatchResult(Struct, frozen=True):
    output: str
    exit_code: int
    seconds: float


async def apply_patch_text(patch: str, cwd: Path, call_id: str, ctx: ToolContext) -> PatchResult:
    """Apply ``patch`` relative to ``cwd``. Verification and policy failures raise RespondToModel."""
    from codexbro.apply_patch.apply import verify
    from codexbro.apply_patch.parser import PatchError, parse_patch
    from codexbro.sandbox.policy import assess_patch, is_writable, physical, writable_roots
    from codexbro.tools.agent_reads import read_text

    started = time.monotonic()
    home = ctx.home
    restricted = ctx.sandbox is not None
    try:
        plan = verify(parse_patch(patch), cwd, read=lambda p: read_text(p, home=home, restricted=restricted))
    except PatchError as exc:
        raise RespondToModel(f"apply_patch verification failed: {exc}") from None
    paths = [c.abs_path for c in plan] + [cwd / c.move_to for c in plan if c.move_to]
    roots = writable_roots(ctx.sandbox_mode, ctx.sandbox_workspace_write, ctx.cwd)
    decision = assess_patch(
        paths, mode=ctx.sandbox_mode, approval=ctx.approval_policy, roots=roots, home=home
    )
    if decision.verdict == "reject":
        raise RespondToModel(decision.reason)
    changes = _changes(plan)
    resolved = {str(p): physical(p) for p in paths}  # where each path leads now, as approved
    keys = {str(r) for r in resolved.values()}
    # Writing outside the sandbox is only for paths the sandbox would refuse, once the user said yes.
    outside = ctx.sandbox is not None and any(not is_writable(p, roots, home) for p in paths)
    unsandboxed = False
    if decision.verdict == "ask":
        reason = decision.reason
        moved = sorted(str(r) for p, r in resolved.items() if str(r) != p)
        if moved:  # show where a link really leads
            reason += " — resolves to " + ", ".join(moved)
        remembered = ctx.approvals is not None and keys <= ctx.approvals.approved_paths
        if not remembered:
            if ctx.request_approval is None:
                raise RespondToModel(
                    f"patch rejected: it needs approval ({decision.reason}) and nobody can approve it here"
                )
            answer = await ctx.request_approval(
                ApplyPatchApprovalRequest(call_id, ctx.turn_id, changes, reason)
            )
            if answer not in ("approved", "approved_for_session", "approved_for_workspace"):
                raise RespondToModel("patch rejected by user")
            if answer != "approved" and ctx.approvals is not None:
                ctx.approvals.approved_paths |= keys
        unsandboxed = outside
    ctx.emit(PatchApplyBegin(call_id, changes))
    if unsandboxed and {str(physical(p)) for p in paths} != keys:
        written = Written(
            False, "patch rejected: a path it writes changed (a link was replaced) after it was approved"
        )
    elif unsandboxed:
        written = write_approved(plan, cwd, resolved)
    else:
        written = await _write(patch, plan, cwd, call_id, ctx, sandboxed=ctx.sandbox is not None)
    ctx.emit(PatchApplyEnd(call_id, written.ok, written.text if written.ok else "", "" if written.ok else written.text,
                           changes))  # fmt: skip
    return PatchResult(written.text, 0 if written.ok else 1, time.monotonic() - started)


_DENIED = (errno.EROFS, errno.EACCES, errno.EPERM, errno.EXDEV)


async def _write(
    patch: str, plan: list[PlannedChange], cwd: Path, call_id: str, ctx: ToolContext, *, sandboxed: bool
) -> Written:
    from codexbro.tools.patch_writer import write_here, write_in_sandbox

    if not sandboxed:
        return write_here(patch, cwd)
    from codexbro.tools.exec_gate import offer_retry, sandbox_for

    try:
        written = await write_in_sandbox(patch, cwd, _prepared(await sandbox_for(ctx, True)))
    except RespondToModel as exc:
        return Written(False, str(exc))
    except OSError as exc:
        return Written(False, f"apply_patch could not run in the sandbox: {exc.strerror or exc}")
    if written.ok or written.errno not in _DENIED:
        return written
    note = f" ({written.reason}: blocked by the {ctx.sandbox_mode} sandbox)"
    from codexbro.sandbox.policy import physical

    lexical = [c.abs_path for c in plan] + [cwd / c.move_to for c in plan if c.move_to]
    resolved = {str(p): physical(p) for p in lexical}
    if await offer_retry(ctx, call_id, ["apply_patch", *dict.fromkeys(map(str, resolved.values()))], cwd):
        return write_approved(plan, cwd, resolved)
    return Written(False, written.text + note, written.errno, written.reason)


def _prepared(prepared: Prepared | None) -> Prepared:
    assert prepared is not None  # sandbox_for returns None only when not sandboxed
    return prepared


class ApplyPatchHandler:
    """``apply_patch`` (freeform or JSON): verified against the policy, written in the sandbox."""

    name = "apply_patch"
    supports_parallel = False

    def __init__(self, kind: str = "freeform") -> None:
        self.kind = kind

    def spec(self) -> dict[str, Any]:
        return freeform_spec() if self.kind == "freeform" else _FUNCTION

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        if call.kind == "custom":
            patch = call.input
        elif call.kind == "function":
            patch = parse_arguments(call, _FUNCTION["parameters"])["input"]
        else:
            raise RespondToModel("apply_patch handler received unsupported payload")
        if not patch.strip():
            raise RespondToModel("apply_patch handler received invalid patch input")
        result = await apply_patch_text(patch, ctx.cwd, call.call_id, ctx)
        text = exec_output_freeform(
            result.output, result.exit_code, result.seconds, ctx.truncation_mode, ctx.truncation_limit
        )
        return ToolOutput(text, success=result.exit_code == 0)

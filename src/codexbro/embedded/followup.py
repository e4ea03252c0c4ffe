"""An answer given while the turn's own check still fails is sent back once, with what failed.

Counted over the benchmark's fix tasks, a 1.5B model often runs the check the user named, reads a
little, and answers — "found `mean` in stats.py" — or edits, runs the check again, sees it fail and
still writes "passes now". What it has not done is visible in the turn itself, without reading
the request: the turn's **first command** exited non-zero with output (a check that printed its
failure; a ``grep`` that matched nothing prints nothing), and the **last run** of that command still
did. ``failing_check`` finds that; the provider then shows the model its own answer as not sent,
with the command and its exit code, and lets it go on (``note``) — once per turn, so it costs at
most one more generation. When the model ran the check again and it still fails, an answer it is
made to give (its calls used up, or a repeated call refused) starts with that fact, written into
the answer before the model goes on (``lead``): measured, such answers claimed "passes now" over a
check that still failed, even after a note saying not to. (Only after a second run: a first
command that answers with a non-zero exit — ``grep -c`` printing ``0``, ``diff`` — is no check,
and "still fails" would be false there; it gets at most the one follow-up, whose note says to
answer again when no change was asked for.)

Only exit codes, command texts and the order of calls are read, never the request's words.
"""

from __future__ import annotations

import re

from msgspec import Struct

from codexbro.api import events as ev
from codexbro.embedded.render import call_arguments

# ``exec_output_freeform``: "Exit code: N" first, the command's output after "Output:".
_EXIT = re.compile(r"\AExit code: (-?\d{1,9})\n")
_OUTPUT = "\nOutput:\n"


class Check(Struct, frozen=True):
    command: str
    exit_code: int
    runs: int = 1  # how many times it ran this turn


def failing_check(items: list[ev.ResponseItem]) -> Check | None:
    """The turn's first shell command, when it failed with output and its last run (the same
    command text) failed too; None otherwise."""
    first: str | None = None
    commands: dict[str, str] = {}  # call id → command
    last: dict[str, tuple[int, str]] = {}  # command → (exit code, output) of its latest run
    runs: dict[str, set[str]] = {}  # command → the call ids it ran under
    for item in items:
        kind = item.get("type")
        if kind == "message" and item.get("role") == "user":
            first, commands, last, runs = None, {}, {}, {}
        elif kind == "function_call" and item.get("name") == "shell_command":
            command = _command(item)
            if command is not None:
                commands[str(item.get("call_id"))] = command
                first = command if first is None else first
        elif kind == "function_call_output" and (command := commands.get(str(item.get("call_id")))):
            output = item.get("output")
            if isinstance(output, str) and (head := _EXIT.match(output)):
                last[command] = (int(head.group(1)), output.partition(_OUTPUT)[2])
                runs.setdefault(command, set()).add(str(item.get("call_id")))
    if first is None or first not in last:
        return None
    code, printed = last[first]
    return Check(first, code, len(runs[first])) if code != 0 and printed.strip() else None


def note(check: Check) -> str:
    """What the model reads as the result of its answer: not sent, and why."""
    command = _shown(check.command)
    return (
        f"Not sent yet: {command} exited with code {check.exit_code} the last time it ran. "
        "If the user asked you to make it pass or to fix what it shows, you are not done: read the "
        f"code it runs, change that code with edit_file, and run {command} again. "
        f"If no change was asked for, reply with answer again, saying what {command} printed."
    )


def lead(check: Check) -> str:
    """How an answer the model must give starts, when it ran the check again and it still fails
    (written, not sampled)."""
    return f"{_shown(check.command)} still fails (exit code {check.exit_code})."


def _shown(command: str) -> str:
    """A command as the note and the answer quote it: a Markdown code span (its fence longer than
    any run of backticks inside), its first line, at most 80 characters; "…" where it was cut."""
    lines = command.splitlines()
    line = lines[0] if lines else command
    if len(line) > 80:
        line = line[:77].rstrip() + "…"
    elif line != command:
        line += " …"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", line)), default=0) + 1)
    return f"{fence} {line} {fence}" if len(fence) > 1 else f"`{line}`"


def _command(item: ev.ResponseItem) -> str | None:
    command = call_arguments(item).get("command")
    return command.strip() if isinstance(command, str) and command.strip() else None

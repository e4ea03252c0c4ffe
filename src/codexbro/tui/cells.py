"""What the transcript shows: one widget per message, tool call, patch, plan or notice. Agent text
is Markdown, streamed as it arrives; command output is folded to its head and tail."""

from __future__ import annotations

import json
from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Collapsible, Markdown, Static

from codexbro.protocol.display import display_command
from codexbro.textsafe import for_terminal

FOLD_LINES = 6  # output lines shown at each end of a folded command output


FOLD_CHARS = 2_000  # characters shown at each end of a very long output (one huge line included)


def fold(output: str, keep: int = FOLD_LINES) -> str:
    """``output`` with its middle left out when it is long: head, a count, tail — by lines, and by
    characters for output that is long without being many lines."""
    if len(output) > 2 * FOLD_CHARS:
        output = (
            f"{output[:FOLD_CHARS]}\n… {len(output) - 2 * FOLD_CHARS} characters …\n{output[-FOLD_CHARS:]}"
        )
    lines = output.rstrip("\n").splitlines()
    if len(lines) <= 2 * keep + 1:
        return "\n".join(lines)
    hidden = len(lines) - 2 * keep
    return "\n".join([*lines[:keep], f"… {hidden} lines …", *lines[-keep:]])


class UserCell(Static):
    DEFAULT_CSS = "UserCell { color: $text; background: $boost; padding: 0 1; margin: 1 0 0 0; }"

    def __init__(self, text: str) -> None:
        super().__init__(Text("› " + for_terminal(text)))
        self.text = text


class AgentCell(Markdown):
    """The agent's answer, Markdown (code blocks highlighted), appended to as deltas arrive."""

    DEFAULT_CSS = "AgentCell { margin: 1 0 0 0; padding: 0 1; }"

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self.text = text

    def add(self, delta: str) -> None:
        self.text += delta
        self.append(for_terminal(delta))

    def replace(self, text: str) -> None:
        self.text = text
        self.update(for_terminal(text))


class PlainAnswerCell(Static):
    """An older answer of a resumed conversation: plain text, cheap to keep."""

    DEFAULT_CSS = "PlainAnswerCell { margin: 1 0 0 0; padding: 0 1; }"

    def __init__(self, text: str) -> None:
        super().__init__(Text(for_terminal(text)))
        self.text = text


class ReasoningCell(Collapsible):
    """A reasoning summary, folded by default."""

    def __init__(self, text: str) -> None:
        super().__init__(
            Static(Text(for_terminal(text), style="italic dim")), title="thinking", collapsed=True
        )


class ToolCell(Vertical):
    """One command: what ran, then its exit code, duration and folded output."""

    DEFAULT_CSS = """
    ToolCell { height: auto; margin: 1 0 0 0; padding: 0 1; border-left: thick $accent; }
    ToolCell .head { color: $accent; }
    ToolCell .out { color: $text-muted; }
    """

    def __init__(self, call_id: str, command: list[str]) -> None:
        super().__init__()
        self.call_id = call_id
        self.head = Static(Text("$ " + for_terminal(display_command(command))), classes="head")
        self.out = Static("running…", classes="out")
        self.exit_code: int | None = None

    def compose(self) -> Any:
        yield self.head
        yield self.out

    def finish(self, exit_code: int, duration_ms: int, output: str, status: str) -> None:
        self.exit_code = exit_code
        mark = (
            "✓"
            if exit_code == 0
            else (status if status in ("declined", "interrupted") else f"exit {exit_code}")
        )
        body = fold(for_terminal(output)) if output.strip() else "(no output)"
        self.out.update(Text(f"{mark} · {duration_ms / 1000:.1f} s\n{body}"))


class McpCell(ToolCell):
    """One MCP tool call: server/tool and its arguments, then how it ended and its (folded) result."""

    def __init__(self, call_id: str, invocation: dict[str, Any]) -> None:
        super().__init__(call_id, [])
        args = json.dumps(invocation.get("arguments") or {}, ensure_ascii=False)
        self.head = Static(Text(f"mcp {for_terminal(str(invocation.get('server')))}/"
                                f"{for_terminal(str(invocation.get('tool')))} {for_terminal(args[:200])}"), classes="head")  # fmt: skip

    def finish_mcp(self, result: dict[str, Any], duration: dict[str, int]) -> None:
        ms = duration.get("secs", 0) * 1000 + duration.get("nanos", 0) // 1_000_000
        ok = result.get("Ok")
        if isinstance(ok, dict):
            texts = [str(b.get("text", "")) if b.get("type") == "text" else f"<{b.get('type')}>"
                     for b in ok.get("content") or [] if isinstance(b, dict)]  # fmt: skip
            if ok.get("structuredContent") is not None and not texts:
                texts = [json.dumps(ok["structuredContent"], ensure_ascii=False)]
            failed = bool(ok.get("isError"))
            body = "\n".join(texts) or "(no content)"
        else:
            failed, body = True, str(result.get("Err"))
        self.exit_code = 1 if failed else 0
        self.out.update(
            Text(f"{'failed' if failed else '✓'} · {ms / 1000:.1f} s\n{fold(for_terminal(body))}")
        )


class PatchCell(Static):
    """A patch's changes as coloured unified diffs."""

    DEFAULT_CSS = "PatchCell { margin: 1 0 0 0; padding: 0 1; }"

    def __init__(self, changes: dict[str, dict[str, Any]], title: str = "edited") -> None:
        super().__init__(render_changes(changes, title))
        self.changes = changes


class DiffTextCell(Static):
    """A unified diff as text (a cloud task's), highlighted."""

    DEFAULT_CSS = "DiffTextCell { margin: 1 0 0 0; padding: 0 1; }"

    def __init__(self, diff: str) -> None:
        from rich.syntax import Syntax

        from codexbro.textsafe import for_terminal

        # the server's text: its own escape sequences (a clipboard write, a title) are shown, not run
        self.syntax = Syntax(for_terminal(diff), "diff", theme="ansi_dark", word_wrap=True)
        super().__init__(self.syntax)
        self.diff = diff


def render_changes(changes: dict[str, dict[str, Any]], title: str) -> Any:
    """Each file's change as a coloured unified diff (an added or deleted file as all + or -)."""
    if True:  # one body for the cell and the approval dialog
        from rich.console import Group

        parts: list[Any] = []
        for path, change in changes.items():
            kind = change.get("type", "update")
            parts.append(Text(f"{title}: {kind} {for_terminal(path)}", style="bold"))
            if kind == "update":
                diff = str(change.get("unified_diff") or "")
            else:
                sign = "+" if kind == "add" else "-"
                diff = "".join(f"{sign}{line}\n" for line in str(change.get("content") or "").splitlines())
            if diff:
                parts.append(
                    Syntax(
                        for_terminal(fold(diff, 20)), "diff", theme="ansi_dark", background_color="default"
                    )
                )
        return Group(*parts)


class PlanCell(Static):
    DEFAULT_CSS = "PlanCell { margin: 1 0 0 0; padding: 0 1; }"

    def __init__(self, plan: list[dict[str, str]], explanation: str | None) -> None:
        marks = {"completed": "☑", "in_progress": "◐", "pending": "☐"}
        lines = [
            f"{marks.get(step.get('status', ''), '☐')} {for_terminal(step.get('step', ''))}" for step in plan
        ]
        if explanation:
            lines.insert(0, for_terminal(explanation))
        super().__init__(Text("\n".join(["plan", *lines])))


class NoteCell(Static):
    """An error, a warning or a reconnect notice, inline."""

    DEFAULT_CSS = """
    NoteCell { margin: 1 0 0 0; padding: 0 1; }
    NoteCell.error { color: $error; }
    NoteCell.warning { color: $warning; }
    """

    def __init__(self, text: str, kind: str = "warning") -> None:
        super().__init__(Text(for_terminal(text)), classes=kind)

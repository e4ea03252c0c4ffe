"""Modal dialogs: approving a command or a patch, answering the model's questions."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from codexbro.protocol.display import display_command
from codexbro.textsafe import for_terminal

CHOICES = (
    ("y", "approved", "yes, this once"),
    ("a", "approved_for_session", "yes, and don't ask again for this in this session"),
    ("w", "approved_for_workspace", "yes, and don't ask again in this workspace (saved as a rule)"),
    ("n", "denied", "no (the model is told)"),
    ("x", "abort", "no, and stop the turn"),
    ("d", "abort:feedback", "no, and tell the agent what to do instead (stops the turn; type it below)"),
)


class ApprovalScreen(ModalScreen[str]):
    """A command or a patch waiting for the user's decision; dismissed with the decision."""

    DEFAULT_CSS = """
    ApprovalScreen { align: center middle; }
    ApprovalScreen > Vertical { width: 90%; max-width: 110; height: auto; border: thick $warning;
                                background: $surface; padding: 1 2; }
    ApprovalScreen .what { margin: 1 0; height: auto; max-height: 12; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(key, f"decide('{decision}')", label, show=False) for key, decision, label in CHOICES),
        Binding("escape", "decide('denied')", "deny", show=False),
    ]

    def __init__(self, title: str, what: Any, reason: str | None) -> None:
        super().__init__()
        self.title_text, self.what, self.reason = title, what, reason

    def compose(self) -> Any:
        with Vertical():
            yield Static(Text(self.title_text, style="bold"))
            with VerticalScroll(classes="what"):  # a long command scrolls; the choices stay in view
                yield Static(self.what)
            if self.reason:
                yield Static(Text("why: " + for_terminal(self.reason), style="italic"))
            yield Static(Text("\n".join(f"[{key}] {label}" for key, _d, label in CHOICES) + "\n[esc] no"))

    def action_decide(self, decision: str) -> None:
        self.dismiss(decision)


def command_approval(command: list[str], cwd: str, reason: str | None) -> ApprovalScreen:
    what = Text(f"$ {for_terminal(display_command(command))}\nin {for_terminal(cwd)}")
    return ApprovalScreen("Run this command?", what, reason)


def patch_approval(changes: dict[str, dict[str, Any]], reason: str | None) -> ApprovalScreen:
    from codexbro.tui.cells import render_changes

    return ApprovalScreen("Apply this patch?", render_changes(changes, "change"), reason)


class QuestionScreen(ModalScreen[dict[str, str]]):
    """The model's questions (``request_user_input``), one at a time: a digit picks an option."""

    DEFAULT_CSS = """
    QuestionScreen { align: center middle; }
    QuestionScreen > Vertical { width: 80%; height: auto; border: thick $accent; background: $surface;
                                padding: 1 2; }
    """

    def __init__(self, questions: list[dict[str, Any]]) -> None:
        super().__init__()
        self.questions = questions
        self.index = 0
        self.answers: dict[str, str] = {}
        self.body = Static()

    def compose(self) -> Any:
        with Vertical():
            yield self.body

    def on_mount(self) -> None:
        self._show()

    def _show(self) -> None:
        q = self.questions[self.index]
        options = q.get("options") or []
        lines = [f"{for_terminal(str(q.get('header', '')))}: {for_terminal(str(q.get('question', '')))}", ""]
        lines += [f"[{n}] {for_terminal(str(o.get('label')))} — {for_terminal(str(o.get('description', '')))}"
                  for n, o in enumerate(options, 1)]  # fmt: skip
        self.body.update(Text("\n".join(lines)))

    def on_key(self, event: Any) -> None:
        options = self.questions[self.index].get("options") or []
        if event.character and event.character.isdigit() and 1 <= int(event.character) <= len(options):
            event.stop()
            self.answers[str(self.questions[self.index].get("id"))] = str(
                options[int(event.character) - 1]["label"]
            )
            self.index += 1
            if self.index == len(self.questions):
                self.dismiss(self.answers)
            else:
                self._show()


class ElicitationScreen(ModalScreen[tuple[str, dict[str, Any] | None]]):
    """An MCP server asks the user something (``elicitation/create``): its message, one field per
    property of its schema; Enter accepts with the fields' values, Esc declines, Ctrl+X cancels."""

    DEFAULT_CSS = """
    ElicitationScreen { align: center middle; }
    ElicitationScreen > Vertical { width: 80%; height: auto; border: thick $accent; background: $surface;
                                   padding: 1 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "answer('decline')", "decline", show=False),
        Binding("ctrl+x", "answer('cancel')", "cancel", show=False),
    ]

    def __init__(self, server: str, message: str, schema: dict[str, Any] | None) -> None:
        super().__init__()
        self.server, self.message = server, message
        props = (schema or {}).get("properties")
        self.fields: dict[str, dict[str, Any]] = props if isinstance(props, dict) else {}

    def compose(self) -> Any:
        from textual.widgets import Input

        with Vertical():
            yield Static(Text(f"MCP server {for_terminal(self.server)} asks:", style="bold"))
            yield Static(Text(for_terminal(self.message)))
            for n, (name, spec) in enumerate(self.fields.items()):  # ids by position: names are the server's
                kind = spec.get("type", "string") if isinstance(spec, dict) else "string"
                yield Input(
                    placeholder=f"{for_terminal(str(name))} ({for_terminal(str(kind))})", id=f"field-{n}"
                )
            yield Static(Text("[enter] accept    [esc] decline    [ctrl+x] cancel"))

    def on_mount(self) -> None:
        from textual.widgets import Input

        inputs = list(self.query(Input))
        if inputs:
            inputs[0].focus()

    def on_key(self, event: Any) -> None:
        if event.key == "enter":
            event.stop()
            self.action_answer("accept")

    def action_answer(self, action: str) -> None:
        from textual.widgets import Input

        content: dict[str, Any] | None = None
        if action == "accept":
            content = {}
            for n, (name, spec) in enumerate(self.fields.items()):
                raw = self.query_one(f"#field-{n}", Input).value
                kind = spec.get("type") if isinstance(spec, dict) else "string"
                content[name] = _field_value(raw, kind)
        self.dismiss((action, content))


def _field_value(raw: str, kind: Any) -> Any:
    if kind == "boolean":
        return raw.strip().lower() in ("y", "yes", "true", "1", "on")
    if kind in ("number", "integer"):
        try:
            return int(raw) if kind == "integer" else float(raw)
        except ValueError:
            return raw
    return raw

"""A modal list to pick one thing from (``/model``, its reasoning effort, ``/approvals``)."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

APPROVAL_PRESETS = (
    ("read-only", "read-only", "on-request", "read files; ask before any change or network use"),
    ("auto", "workspace-write", "on-request", "edit the workspace and run commands; ask for more"),
    ("full access", "danger-full-access", "never", "no sandbox, never ask (only in an external sandbox)"),
)


class ChoiceScreen(ModalScreen[str | None]):
    """Dismissed with the chosen option's id, or None (Esc)."""

    DEFAULT_CSS = """
    ChoiceScreen { align: center middle; }
    ChoiceScreen > Vertical { width: 80%; max-width: 100; height: auto; max-height: 80%;
                              border: thick $accent; background: $surface; padding: 1 2; }
    ChoiceScreen OptionList { height: auto; max-height: 20; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "leave", "leave")]

    def __init__(self, title: str, options: list[tuple[str, str]], current: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.options = options  # (id, label)
        self.current = current

    def compose(self) -> Any:
        with Vertical():
            yield Static(Text(self.title_text, style="bold"))
            yield OptionList(*(Option(("● " if oid == self.current else "  ") + label, id=oid)
                               for oid, label in self.options))  # fmt: skip

    def on_mount(self) -> None:
        ids = [oid for oid, _label in self.options]
        if self.current in ids:  # the highlight starts on what is in use, not on the first row
            self.query_one(OptionList).highlighted = ids.index(self.current)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_leave(self) -> None:
        self.dismiss(None)

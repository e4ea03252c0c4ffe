"""``codexbro resume`` / ``codexbro fork`` without an id: this workspace's sessions, newest first,
with their first message and age; Enter picks one, Esc leaves."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from codexbro.core.rollout import SessionSummary
from codexbro.textsafe import for_terminal


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


def session_line(session: SessionSummary, now: float) -> str:
    """One session in a picker: its age and first message."""
    first = session.first_message.splitlines()[0] if session.first_message else "(no message)"
    return f"{age(now - session.modified):>9}  {for_terminal(first)[:90]}"


class SessionPicker(App[Path | None]):
    """Picks a session file (or None)."""

    CSS = "OptionList { height: 1fr; } #title { padding: 0 1; color: $text-muted; }"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "leave", "leave")]

    def __init__(self, sessions: list[SessionSummary], kind: str) -> None:
        super().__init__()
        self.sessions = sessions
        self.kind = kind

    def compose(self) -> Any:
        yield Static(f"{self.kind} which session? (enter: choose, esc: leave)", id="title")
        now = time.time()
        yield OptionList(*(Option(session_line(s, now), id=str(i)) for i, s in enumerate(self.sessions)))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.exit(self.sessions[int(event.option.id or 0)].path)

    def action_leave(self) -> None:
        self.exit(None)

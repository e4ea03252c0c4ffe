"""The composer (multi-line input, history, @ mentions) and the transcript that hands it stray keys."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import TextArea


class Composer(TextArea):
    """Multi-line input: Enter sends, Ctrl+J adds a line; Up/Down on the first/last line walk the
    history of what was sent."""

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Mention(Message):
        """The word being typed starts with ``@`` (``query`` without it), or stopped (None)."""

        def __init__(self, query: str | None) -> None:
            super().__init__()
            self.query = query

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, **kwargs)
        self.sent: list[str] = []
        self._browse = 0  # the history entry shown (len(sent): the draft)
        self._draft = ""  # what was typed before walking the history
        self._shown: str | None = None  # the text the walk last put there
        self.suggestions: list[str] = []  # set by the app while an @ mention is being typed

    def mention_query(self) -> str | None:
        row, col = self.cursor_location
        before = self.document.get_line(row)[:col]
        word = before.rsplit(maxsplit=1)[-1] if before.strip() and not before.endswith(" ") else ""
        return word[1:] if word.startswith("@") else None

    def accept(self, path: str) -> None:
        query = self.mention_query()
        if query is None:
            return
        row, col = self.cursor_location
        self.replace(path + " ", (row, col - len(query) - 1), (row, col))

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if self.text != self._shown:  # typed or pasted: the history walk starts again from the draft
            self._browse = len(self.sent)
        self.post_message(self.Mention(self.mention_query()))

    def show_text(self, text: str) -> None:
        """Put ``text`` in the composer, the cursor at its end (recall, history)."""
        self._shown = text  # the Changed message arrives later: it must not end the walk
        self.text = text
        self.move_cursor(self.document.end)

    def _walk(self, key: str) -> bool:
        """Up on the first line / Down on the last: the previous / next sent message; past the
        newest, the draft typed before the walk began comes back. False: not a history key here."""
        row = self.cursor_location[0]
        if not ((key == "up" and row == 0) or (key == "down" and row == self.document.line_count - 1)):
            return False
        if key == "up":
            if self._browse == 0:
                return True
            if self._browse == len(self.sent):
                self._draft = self.text
            self._browse -= 1
            self.show_text(self.sent[self._browse])
        else:
            if self._browse >= len(self.sent):
                return False  # at the draft already: Down moves nothing
            self._browse += 1
            self.show_text(self.sent[self._browse] if self._browse < len(self.sent) else self._draft)
        return True

    async def _on_key(self, event: events.Key) -> None:
        if event.key in ("tab", "enter") and self.suggestions and self.mention_query() is not None:
            event.stop()
            event.prevent_default()
            self.accept(self.suggestions[0])
            return
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text.strip()
            if text:
                self.sent.append(self.text)
                self._browse = len(self.sent)
                self.clear()
                self.post_message(self.Submitted(text))
            return
        if event.key in ("ctrl+j", "shift+enter"):
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        if event.key in ("up", "down") and self.mention_query() is not None:
            event.stop()  # the suggestions are showing: the history stays where it is
            event.prevent_default()
            return
        if event.key in ("up", "down") and self.sent and self._walk(event.key):
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)


class Transcript(VerticalScroll):
    """The conversation; focusable so the keyboard can scroll it, and a letter typed while it has
    the focus goes to the composer instead of being lost."""

    def on_key(self, event: events.Key) -> None:
        if event.is_printable and event.character:
            event.stop()
            composer = self.app.query_one(Composer)
            composer.focus()
            composer.insert(event.character)

"""The first start in a directory that is not a git workspace: do you trust it? Trusting lets the
agent write there (workspace-write, asking on request) and is remembered in config.toml as
upstream does (``[projects."PATH"] trust_level = "trusted"``); not trusting keeps it read-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App
from textual.binding import Binding, BindingType
from textual.widgets import Static

from codexbro.textsafe import for_terminal


class TrustPrompt(App[bool]):
    """Asks once; ``y`` trusts, ``n`` / Esc does not."""

    CSS = "Static { padding: 1 2; }"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "trust"),
        Binding("n", "answer(False)", "do not trust"),
        Binding("escape", "answer(False)", "do not trust"),
    ]

    def __init__(self, cwd: Path) -> None:
        super().__init__()
        self.cwd = cwd

    def compose(self) -> Any:
        yield Static(Text(
            f"You are in {for_terminal(str(self.cwd))}, which is not a git workspace.\n\n"
            "Do you trust the files in this folder? Trusting lets the agent edit files here (it still asks\n"
            "before anything risky); not trusting keeps it read-only. The answer is remembered.\n\n"
            "[y] trust this folder    [n] no (also remembered; -s workspace-write overrides it once)"
        ))  # fmt: skip

    def action_answer(self, trusted: bool) -> None:
        self.exit(trusted)


def remember(config_path: Path, cwd: Path, level: str) -> None:
    """Add ``[projects."CWD"] trust_level = LEVEL`` to config.toml (written atomically; an entry
    for the directory already there is left alone)."""
    import os

    text = config_path.read_text(encoding="utf-8") if config_path.exists() else ""
    quoted = str(cwd).replace("\\", "\\\\").replace('"', '\\"')
    header = f'[projects."{quoted}"]'
    if header in text:
        return
    text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + f'{header}\ntrust_level = "{level}"\n'
    config_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = config_path.with_name(f".{config_path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, config_path)

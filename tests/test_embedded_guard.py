"""The embedded model's answer guard (issue 20.3): an answer that starts saying the same sentences
again is stopped and ends before the repetition — by the answer's shape, never by its words.
Unit level: no model needed (the generation is stubbed; the real engine is in test_local_model)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from codexbro.api import events as ev
from codexbro.api.model_client import Prompt
from codexbro.embedded.engine import EmbeddedModel
from codexbro.embedded.guards import repeated_at

BABBLE = (
    "This project is a Python command-line tool. It has tests in the tests directory. "
    "This project is a Python command-line tool. It has tests in the tests directory. "
    "This project is a Python command-line tool. It has tests in the tests directory. "
)


def test_repetition_is_found_where_it_starts() -> None:
    cut = repeated_at(BABBLE)
    assert cut is not None
    assert (
        BABBLE[:cut].strip()
        == "This project is a Python command-line tool. It has tests in the tests directory."
    )
    line = "The configuration loader merges the user file, the project file and the flags.\n"
    assert repeated_at("Intro.\n" + line * 3) == len("Intro.\n") + len(line)
    assert repeated_at("Intro.\n" + line * 2) is None  # twice may be a quote; three times in a row is a loop


def test_ordinary_answers_are_left_alone() -> None:
    listing = "Files:\n- a.py\n- b.py\n- c.py\n- ok\n- ok\n- ok\n"  # short lines repeat legitimately
    git_log = "".join(
        f"commit {h * 40}\nAuthor: bench <bench@example.com>\nDate:   Wed Dec 2 20:31:4{i} 2026\n\n    change {i}\n\n"
        for i, h in enumerate("abc")
    )  # the same Author line in every commit: not a loop
    prose = "The build passes. The linter passes. The tests pass. Everything is green."
    table = "| name | ok |\n| a | yes |\n| b | yes |\n| c | yes |\n"
    for text in (
        listing,
        prose,
        table,
        git_log,
        "",
        "no punctuation at all but quite a long line of text here",
    ):
        assert repeated_at(text) is None, text


async def test_the_engine_stops_and_trims_a_babbling_answer(tmp_path: Path) -> None:
    model = EmbeddedModel(tmp_path / "none.gguf")
    model.native = True
    pieces = [
        '<tool_call>\n{"name": "answer", "arguments": {"text": "',
        *BABBLE.split(" "),
        '"}}\n</tool_call>',
    ]

    def fake_generate(prompt: Prompt, instructions: str, require_tool: bool, answer_only: bool,
                      attachments: Any, emit: Any, cancel: threading.Event, lead: str = "") -> None:  # fmt: skip
        for i, piece in enumerate(pieces):
            emit(piece if i in (0, len(pieces) - 1) else piece + ("" if i == len(pieces) - 2 else " "))

    model._generate = fake_generate  # type: ignore[method-assign]
    events = [e async for e in model.stream(Prompt(input=[], tools=[]))]
    (done,) = [e.item for e in events if isinstance(e, ev.OutputItemDone)]
    text = done["content"][0]["text"]
    assert text.count("This project is a Python command-line tool.") == 1, json.dumps(text)
    assert text.endswith("tests directory.")

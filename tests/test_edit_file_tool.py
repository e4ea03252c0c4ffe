"""The edit_file tool (codexbro's exact-text replacement) in real exec turns: it goes through
apply_patch's verification, sandbox policy and file_change events; bad calls get specific messages."""

from __future__ import annotations

import json
from pathlib import Path

from codexbro.tools.handlers.edit_file import hunk_patch
from codexbro.tools.loose_match import find_loose, relayout
from tests.conftest import run_cli, write_config
from tests.fakes.events import check_invariants, ev_completed, ev_created, ev_function_call, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply


def call(call_id: str, **args: str) -> Reply:
    return Reply([ev_created(), ev_function_call(call_id, "edit_file", json.dumps(args)), ev_completed()])


def outputs(body: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {i["call_id"]: i["output"] for i in body["input"] if i["type"] == "function_call_output"}


def test_hunk_covers_exactly_the_lines_of_the_text() -> None:
    text = "a = 1\ndef add(a, b):\n    return a - b\nz = 2"
    assert hunk_patch("calc.py", text, "a - b", "a + b") == (
        "*** Begin Patch\n*** Update File: calc.py\n@@\n-    return a - b\n+    return a + b\n*** End Patch\n"
    )
    assert hunk_patch("calc.py", text, "b):\n    return", "b, c):\n    return") == (
        "*** Begin Patch\n*** Update File: calc.py\n@@\n-def add(a, b):\n-    return a - b\n"
        "+def add(a, b, c):\n+    return a - b\n*** End Patch\n"
    )
    assert hunk_patch("calc.py", text, "z = 2", "z = 3").endswith(
        "-z = 2\n+z = 3\n*** End of File\n*** End Patch\n"
    )


def test_edit_file_in_an_exec_turn(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url, extra="[tools]\nedit_file = true")
    calc = workspace / "calc.py"
    calc.write_text("def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n")
    fake.add(
        call("e1", path="calc.py", old_text="return a - b", new_text="return a + b"),  # twice in the file
        call("e2", path="calc.py", old_text="return a * b", new_text="x"),  # not there
        call("e3", path="nope.py", old_text="x", new_text="y"),
        call(
            "e4",
            path="calc.py",
            old_text="add(a, b):\n    return a - b",
            new_text="add(a, b):\n    return a + b",
        ),
        Reply(message_turn("fixed")),
    )
    res = run_cli("exec", "--json", "-s", "workspace-write", "fix add", cwd=workspace)
    assert res.code == 0, res.stderr
    assert calc.read_text() == "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
    body = fake.bodies()[-1]
    check_invariants(body)
    assert "edit_file" in [t.get("name") for t in body["tools"]]
    out = outputs(body)
    assert (
        out["e1"] == "edit_file: old_text occurs 2 times in calc.py; include more of the line so it is unique"
    )
    # A small file is shown with the not-found error: the text to copy is then in front of the model.
    assert out["e2"] == (
        "edit_file: old_text was not found in calc.py; copy it exactly from the file (spaces and quotes "
        "included). calc.py is:\ndef add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b"
    )
    assert out["e3"] == "edit_file: nope.py does not exist"
    assert out["e4"].startswith("Exit code: 0\n") and out["e4"].endswith("M calc.py\n")
    changes = [
        e["item"]
        for e in res.events()
        if e["type"] == "item.completed" and e["item"]["type"] == "file_change"
    ]
    assert changes == [{"id": changes[0]["id"], "type": "file_change", "status": "completed",
                        "changes": [{"path": str(calc), "kind": "update"}]}]  # fmt: skip


def test_edit_file_respects_the_sandbox(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url, extra="[tools]\nedit_file = true")
    (workspace / "a.txt").write_text("one\n")
    fake.add(call("e1", path="a.txt", old_text="one", new_text="two"), Reply(message_turn("could not")))
    res = run_cli("exec", "--json", "fix", cwd=workspace)  # read-only by default
    assert res.code == 0, res.stderr
    assert (workspace / "a.txt").read_text() == "one\n"
    assert "read-only" in outputs(fake.bodies()[-1])["e1"]


def test_edit_file_is_off_unless_asked(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("ok")))
    assert run_cli("exec", "hi", cwd=workspace).code == 0
    assert "edit_file" not in [t.get("name") for t in fake.bodies()[0]["tools"]]


MATHUTIL = "def is_even(n):\n    return n % 2 == 1\n\n\ndef double(n):\n    return n + n\n"


def test_text_copied_with_its_layout_or_quotes_changed_still_matches() -> None:
    # The embedded model's commonest refused edit: the line break and indentation collapsed.
    old = "def is_even(n): return n % 2 == 1"
    [match] = find_loose(MATHUTIL, old)
    assert (match.start, match.end) == (0, len("def is_even(n):\n    return n % 2 == 1"))
    assert match.gaps[1] == "\n    "
    # The replacement keeps the file's layout between words kept from old_text...
    assert (
        relayout(old, "def is_even(n): return n % 2 == 0", match) == "def is_even(n):\n    return n % 2 == 0"
    )
    # ...and uses new_text's own spacing around what it adds or changes.
    assert relayout(old, "def is_even(n):  # ok\n  return (n % 2) == 0", match) == (
        "def is_even(n):  # ok\n  return (n % 2) == 0"
    )
    # Leading and trailing whitespace of old_text do not count; every whitespace run must be one.
    assert [(m.start, m.end) for m in find_loose(MATHUTIL, "\n  return n %  2 == 1 \n")] == [(20, 37)]
    assert find_loose(MATHUTIL, "returnn % 2") == []
    assert len(find_loose(MATHUTIL, "return n")) == 2  # twice: not unique
    assert find_loose(MATHUTIL, " \n ") == []
    assert len(find_loose("x " * 1000, "x", limit=5)) == 5
    # The other commonest: quote marks swapped. Only with quotes=True; kept words take the file's form.
    text = 'print(f"total {x}")\nname = "b"\n'
    assert find_loose(text, "name = 'b'") == []
    [match] = find_loose(text, "name = 'b'", quotes=True)
    assert match.words == ["name", "=", '"b"']
    assert relayout("name = 'b'", "name = 'c'", match) == "name = 'c'"  # the changed word as written
    assert relayout("name = 'b' ", "name = 'b' or 'c'", match) == "name = \"b\" or 'c'"
    assert len(find_loose("a = 'x'\nb = \"x\"\n", "'x'", quotes=True)) == 2


def test_a_collapsed_copy_is_applied_in_the_files_layout(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url, extra="[tools]\nedit_file = true")
    target = workspace / "mathutil.py"
    target.write_text(MATHUTIL)
    (workspace / "greet.py").write_text('print("hi", end="")\n')
    fake.add(
        call("e1", path="mathutil.py", old_text="n):    return n", new_text="x"),  # loosely twice
        call("e3", path="greet.py", old_text="print('hi', end='')", new_text="print('hello', end='')"),
        call(
            "e2",
            path="mathutil.py",
            old_text="def is_even(n): return n % 2 == 1",
            new_text="def is_even(n): return n % 2 == 0",
        ),
        Reply(message_turn("fixed")),
    )
    res = run_cli("exec", "--json", "-s", "workspace-write", "fix is_even", cwd=workspace)
    assert res.code == 0, res.stderr
    assert target.read_text() == MATHUTIL.replace("== 1", "== 0")
    greet = (workspace / "greet.py").read_text()
    assert greet == "print('hello', end=\"\")\n"  # the unchanged word as the file has it
    out = outputs(fake.bodies()[-1])
    assert out["e1"].startswith(
        "edit_file: old_text was not found exactly in mathutil.py, and ignoring spaces, line breaks and "
        "quote marks it occurs more than once; copy it exactly from the file, with enough of the line "
        "to be unique. mathutil.py is:\n"
    )
    assert out["e2"].startswith("Exit code: 0\n") and out["e2"].endswith("M mathutil.py\n")
    assert out["e3"].startswith("Exit code: 0\n")
    completed = [e["item"]["type"] for e in res.events() if e["type"] == "item.completed"]
    assert completed.count("file_change") == 2


def test_loose_matching_agrees_with_its_definition_and_stays_linear() -> None:
    """find_loose is the regex "old's words, escaped, joined by \\s+" (non-overlapping, leftmost),
    computed without a regex a hostile old_text could make slow."""
    import random
    import re
    import time

    def by_definition(text: str, old: str) -> list[tuple[int, int]]:
        words = old.split()
        if not words:
            return []
        pattern = re.compile(r"\s+".join(re.escape(w) for w in words))
        return [m.span() for m in pattern.finditer(text)]

    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice("ab'\" \n\t") for _ in range(rng.randint(0, 40)))
        old = "".join(rng.choice("ab' \n") for _ in range(rng.randint(0, 8)))
        assert [(m.start, m.end) for m in find_loose(text, old, limit=99)] == by_definition(text, old)[:99]
        folded = [(m.start, m.end) for m in find_loose(text, old, quotes=True, limit=99)]
        assert folded == by_definition(text.replace('"', "'"), old.replace('"', "'"))[:99]
    started = time.perf_counter()
    assert find_loose("a " * 500_000, "a " * 5_000 + "b") == []  # quadratic for a backtracking regex
    assert time.perf_counter() - started < 5

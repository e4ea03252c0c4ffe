"""The edit_file tool (codexbro's exact-text replacement) in real exec turns: it goes through
apply_patch's verification, sandbox policy and file_change events; bad calls get specific messages."""

from __future__ import annotations

import json
from pathlib import Path

from codexbro.tools.handlers.edit_file import SED_TEXT_LIMIT, _repeated, hunk_patch, sed_replace_all
from codexbro.tools.loose_match import MAX_TEXT, MAX_WORDS, find_loose, loose_edit
from tests.conftest import CliResult, run_cli, write_config
from tests.fakes.events import check_invariants, ev_completed, ev_created, ev_function_call, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply


def call(call_id: str, **args: str) -> Reply:
    return Reply([ev_created(), ev_function_call(call_id, "edit_file", json.dumps(args)), ev_completed()])


def outputs(body: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {i["call_id"]: i["output"] for i in body["input"] if i["type"] == "function_call_output"}


def edit_turn(
    home: Path, fake: FakeResponsesServer, workspace: Path, prompt: str, *edits: Reply
) -> CliResult:
    """A real exec turn (workspace-write) in which the model makes ``edits``, then answers."""
    write_config(home, fake.base_url, extra="[tools]\nedit_file = true")
    fake.add(*edits, Reply(message_turn("done")))
    res = run_cli("exec", "--json", "-s", "workspace-write", prompt, cwd=workspace)
    assert res.code == 0, res.stderr
    return res


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
    calc = workspace / "calc.py"
    calc.write_text("def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n")
    res = edit_turn(
        home,
        fake,
        workspace,
        "fix add",
        call("e1", path="calc.py", old_text="return a - b", new_text="return a + b"),  # twice in the file
        call("e2", path="calc.py", old_text="return a * b", new_text="x"),  # not there
        call("e3", path="nope.py", old_text="x", new_text="y"),
        call(
            "e4",
            path="calc.py",
            old_text="add(a, b):\n    return a - b",
            new_text="add(a, b):\n    return a + b",
        ),
    )
    assert calc.read_text() == "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
    body = fake.bodies()[-1]
    check_invariants(body)
    assert "edit_file" in [t.get("name") for t in body["tools"]]
    out = outputs(body)
    assert (
        out["e1"]
        == "edit_file: old_text occurs 2 times in calc.py (lines 2, 6); to change one of them, include "
        "more of its line so it is unique; to change every one, run: sed -i 's/return a - b/return a + b/g' calc.py"
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


def edited(text: str, old: str, new: str) -> str:
    """The file after ``loose_edit``, or its refusal."""
    edit = loose_edit(text, old, new)
    return edit if isinstance(edit, str) else text[: edit.start] + edit.replacement + text[edit.end :]


def test_text_copied_with_its_layout_changed_still_matches_once() -> None:
    # The embedded model's commonest refused edit: the line break and indentation collapsed.
    old = "def is_even(n): return n % 2 == 1"
    [match] = find_loose(MATHUTIL, old)
    assert (match.start, match.end) == (0, len("def is_even(n):\n    return n % 2 == 1"))
    assert match.gaps[1] == "\n    "
    # Words changed in place keep the file's layout, across its line breaks too.
    assert edited(MATHUTIL, old, "def is_even(n): return n % 2 == 0") == MATHUTIL.replace("== 1", "== 0")
    text = "def f(x):\n    y = x\n    return y\n"
    assert edited(text, "def f(x): y = x return y", "def f(x): z = x return z") == text.replace("y", "z")
    # Deleted words: the line structure stays.
    text = "def f():\n    a()\n    print(x)\n    c()\n"
    assert edited(text, "a() print(x) c()", "a() c()") == "def f():\n    a()\n    c()\n"
    text = "async def f():\n    r = foo()\n    await bar()\n"
    assert edited(text, "r = foo() await bar()", "r = foo() bar()") == text.replace("await ", "")
    assert edited("if a:\n    return x\n", "if a: return x", "if a: x") == "if a:\n    x\n"
    text = "def f():\n    x = 1\n    return x\n    y()\ndef g():\n    pass\n"
    assert edited(text, "x = 1 return x y() def g():", "x = 1 y() def g():") == text.replace(
        "    return x\n", ""
    )
    assert edited(text, "x = 1 return x y() def g():", "x = 1 return x def g():") == text.replace(
        "    y()\n", ""
    )
    assert edited(text, "return x y()", "return y()") == text.replace("return x\n", "return\n")  # lines kept
    # ...except at an end of the match, where what surrounds the line is not in view.
    assert edited("    x = 1  # TODO\n    return x\n", "# TODO return x", "return x") == "layout"
    text = "def f():\n    x = 1\n    return x\ndef g():\n    pass\n"
    assert edited(text, "return x def g():", "def g():") == "layout"
    assert edited("a b c\n", "a  b c", "a b") == "a b\n"
    # Words inserted inside one line of the file, with the model's spacing.
    assert edited(MATHUTIL, old, "def is_even(n): return (n % 2) == 0") == MATHUTIL.replace(
        "n % 2 == 1", "(n % 2) == 0"
    )
    assert (
        edited("x = n % 2  == 1\n", "x = n % 2 == 1", "x = n % 2 == 1 and n > 0")
        == "x = n % 2  == 1 and n > 0\n"  # the file keeps its spacing
    )
    # Words added at an end of a match that spans lines: a new statement, or more of the line?
    assert edited(MATHUTIL, old, "def is_even(n): return n % 2 == 0 and n > 0") == "layout"
    assert edited("def f():\n    x = 1\n", "def f(): x = 1", "def f(): x = 1 y = 2") == "layout"
    assert edited("def f():\n    x = 1\n", "def f(): x = 1", "w = 0 def f(): x = 1") == "layout"
    # Where new lines would go, or how they are indented, a collapsed copy cannot say: refused.
    assert edited("if x:\n    foo()\n    bar()\n", "if x: foo() bar()", "if x: foo() baz() bar()") == "layout"
    assert edited(MATHUTIL, old, "def is_even(n):  # ok\n  return (n % 2) == 0") == "layout"
    assert (
        edited("def g():\n    foo()\n    bar()\n", "foo()\nbar()", "if x:\n    foo()\n    bar()") == "layout"
    )
    assert edited(
        "def g():\n    foo()  \n    bar()\n", "foo()\n    bar()", "foo()\n    baz()\n    bar()"
    ) == ("layout")
    assert edited("all:\n\tgcc a.c\n\tgcc b.c\n", "all:\n    gcc a.c", "all:\n    gcc a.c\n    gcc c.c") == (
        "layout"
    )
    # Spacing changed on purpose is taken only where the model's old_text had the file's.
    assert edited("if x:\nfoo()\n", "if x: foo()", "if x:\n    foo()") == "layout"
    assert edited("a = 1\nif x:\nfoo()\n", "a = 1  if x:\nfoo()", "a = 1  if x:\n    foo()") == "layout"
    assert edited("a =  1\n", "a = 1", "a  =  1") == "a  =  1\n"  # inside the line, where it had the file's
    assert edited("def f(x):\n    if x: y()\n    z()\n", "if x: y() z()", "if x:\n    y() z()") == "layout"
    assert edited("if x:\nfoo()\n", "if x:  foo()", "if x:  foo()") == "unchanged"
    # Leading and trailing whitespace of old_text do not count; every whitespace run must be one.
    assert [(m.start, m.end) for m in find_loose(MATHUTIL, "\n  return n %  2 == 1 \n")] == [(20, 37)]
    assert find_loose(MATHUTIL, "returnn % 2") == []
    assert edited(MATHUTIL, "n):    return n", "x") == "ambiguous"
    assert find_loose(MATHUTIL, " \n ") == [] and edited(MATHUTIL, "  ", "x") == "absent"
    assert len(find_loose("x " * 1000, "x", limit=5)) == 5
    # Overlapping places count: "end end" fits lines 1-2 and 2-3.
    assert edited("end\nend\nend\n", "end end", "end\nputs 1\nend") == "ambiguous"
    # An empty new_text deletes the whole lines, not just their words.
    assert edited("a()\n    b()\nc()\n", "\tb()\n", "") == "a()\nc()\n"
    assert edited("a()\n    b()", "\tb()", "") == "a()\n"
    assert edited("a(); b()\n", "a();  b()", "") == ""  # nothing else on the line: it goes
    assert edited("x = a(); b()\n", "a();  b()", "") == "x = \n"


def test_quote_marks_are_mapped_to_the_files() -> None:
    text = 'print("Hello world")\nname = "b"\n'
    assert find_loose(text, "name = 'b'") == []
    [match] = find_loose(text, "name = 'b'", quotes=True)
    assert match.words == ["name", "=", '"b"']
    # A changed string keeps the file's quote style: no unterminated literal.
    assert edited(text, "print('Hello world')", "print('Hello there')") == (
        'print("Hello there")\nname = "b"\n'
    )
    assert edited(text, "name = 'b' ", "name = 'b' or 'c'") == 'print("Hello world")\nname = "b" or "c"\n'
    # One model quote standing for two of the file's: refused, not guessed.
    assert edited('msg = "it\'s ok"\n', "msg = 'it's ok'", "msg = 'fine'") == "quotes"
    assert edited("a = 'x'\nb = \"x\"\n", '"x" b', "'y' b") == "a = 'y'\nb = \"x\"\n"  # unique once folded
    # A changed word holding both kinds of quote mark is not guessed at.
    assert edited("x = 'a'\n", 'x = "a"', 'x = "it\'s"') == "quotes"
    assert edited("d = f('{}')\n", 'd = f("{}")', "d = f('{\"a\": 1}')") == "quotes"
    assert edited('msg = "hello"; n = 1\n', "msg = 'hello'; n", "msg = 'say \"hello\" now'; n") == "quotes"
    assert edited('x = "a"  # fix\ny = 1\n', "x = 'a' # fix", "x = 'a' # don't fix") == "quotes"
    assert len(find_loose("a = 'x'\nb = \"x\"\n", "'x'", quotes=True)) == 2


def test_big_inputs_get_no_second_chance() -> None:
    assert edited("x\n" * (MAX_TEXT // 2 + 1), "x  y", "z") == "absent"
    assert edited("a b\n", "a  b " + "w " * MAX_WORDS, "z") == "absent"


def test_a_collapsed_copy_is_applied_in_the_files_layout(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    target = workspace / "mathutil.py"
    target.write_text(MATHUTIL)
    (workspace / "greet.py").write_text('print("hi", end="")\n')
    (workspace / "blocks.rb").write_text("end\nend\nend\n")
    res = edit_turn(
        home,
        fake,
        workspace,
        "fix is_even",
        call("e4", path="blocks.rb", old_text="end\nend", new_text="end\nputs 1\nend"),  # exact, overlapping
        call("e1", path="mathutil.py", old_text="n):    return n", new_text="x"),  # loosely twice
        call("e3", path="greet.py", old_text="print('hi', end='')", new_text="print('hello', end='')"),
        call(
            "e2",
            path="mathutil.py",
            old_text="def is_even(n): return n % 2 == 1",
            new_text="def is_even(n): return n % 2 == 0",
        ),
    )
    assert target.read_text() == MATHUTIL.replace("== 1", "== 0")
    greet = (workspace / "greet.py").read_text()
    assert greet == 'print("hello", end="")\n'  # in the file's quote marks
    out = outputs(fake.bodies()[-1])
    assert out["e1"].startswith(
        "edit_file: old_text was not found exactly in mathutil.py, and ignoring spaces, line breaks and "
        "quote marks it occurs more than once; copy it exactly from the file, with enough of the line "
        "to be unique. mathutil.py is:\n"
    )
    assert out["e2"].startswith("Exit code: 0\n") and out["e2"].endswith("M mathutil.py\n")
    assert out["e3"].startswith("Exit code: 0\n")
    assert (
        out["e4"]
        == "edit_file: old_text occurs 2 times in blocks.rb (lines 1, 2); to change one of them, include more "
        "of its line so it is unique"
    )
    assert (workspace / "blocks.rb").read_text() == "end\nend\nend\n"
    completed = [e["item"]["type"] for e in res.events() if e["type"] == "item.completed"]
    assert completed.count("file_change") == 2


def test_loose_matching_agrees_with_its_definition_and_stays_linear() -> None:
    """find_loose is the regex "old's words, escaped, joined by \\s+" (at every start, overlapping),
    computed without a regex a hostile old_text could make slow."""
    import random
    import re
    import time

    def by_definition(text: str, old: str) -> list[tuple[int, int]]:
        words = old.split()
        if not words:
            return []
        pattern = re.compile("(?=(" + r"\s+".join(re.escape(w) for w in words) + "))")
        return [(m.start(), m.start() + len(m.group(1))) for m in pattern.finditer(text)]

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


def test_the_replace_every_command_equals_str_replace_under_real_sed(tmp_path: Path) -> None:
    """The ``sed`` command a repeated old_text's refusal offers replaces exactly what
    ``str.replace`` would, whatever the texts hold (regex and replacement metacharacters, the
    delimiter, backslashes, non-ASCII), in the C and UTF-8 locales; texts it cannot say on one
    copyable line get no command. Control: the texts unescaped break sed's result."""
    import os
    import random
    import subprocess

    alphabet = list('ab.*[]^$\\/&-+?|(){}~`"#!%@ \tñé€😀')
    rng = random.Random(11)
    target = tmp_path / "-notes.txt"  # a name sed would otherwise read as an option
    naive_broke = 0
    for i in range(300):
        old = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
        new = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4)))
        text = "".join(rng.choice([*alphabet, "\n"]) for _ in range(50)) + old + "x" + old + "\n"
        command = sed_replace_all(target.name, old, new)
        assert command is not None
        env = {**os.environ, "LC_ALL": ("C", "C.UTF-8")[i % 2]}
        target.write_text(text, encoding="utf-8")
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stderr)
        assert target.read_text(encoding="utf-8") == text.replace(old, new), command
        target.write_text(text, encoding="utf-8")
        naive = f"sed -i 's/{old}/{new}/g' ./{target.name}"
        subprocess.run(["bash", "-c", naive], cwd=tmp_path, env=env, capture_output=True)
        naive_broke += target.read_text(encoding="utf-8", errors="replace") != text.replace(old, new)
    assert naive_broke > 100
    for old, new in (
        ("a\nb", "c"),
        ("a", "b\nc"),
        ("it's", "its"),
        ("a", "'"),
        ("a\r", "b"),
        ("a", "\ud800"),
    ):
        assert sed_replace_all("f.txt", old, new) is None
    # long texts are no line to copy, and sed's matcher needs memory growing with the square of a
    # long repetitive pattern
    assert sed_replace_all("f.txt", "x" * SED_TEXT_LIMIT, "y") is not None
    assert sed_replace_all("f.txt", "x" * (SED_TEXT_LIMIT + 1), "y") is None
    assert sed_replace_all("f.txt", "x", "y" * (SED_TEXT_LIMIT + 1)) is None


def test_the_repeated_text_refusal_counts_as_sed_does_and_stays_bounded() -> None:
    # overlapping occurrences: counted as str.count does, their lines shown, no "every one"
    assert _repeated("f", "aaaa\nx aa\n", "aa", "b") == (
        "edit_file: old_text occurs 3 times in f (lines 1, 2); to change one of them, include more of "
        "its line so it is unique"
    )
    assert "run:" not in _repeated("f", "end\nend\nend\n", "end\nend", "x")
    assert _repeated("f", "x\n" * 20, "x", "y").endswith(
        "(lines 1, 2, 3, 4, 5, 6 and 14 more lines); to change one of them, include more of its line so it "
        "is unique; to change every one, run: sed -i 's/x/y/g' f"
    )
    # a huge file of one repeated letter: the lines past the first 10,000 occurrences are not
    # looked at, and no command is offered for what was not looked at
    huge = _repeated("f", "a\n" * 200_000, "a", "b")
    assert "occurs 200000 times" in huge and "and over 9994 more lines" in huge and "run:" not in huge


def test_a_repeated_old_text_is_refused_with_a_command_that_changes_every_one(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    """A rename through edit_file (old_text a name used on many lines) is refused with the lines it
    is on and a command that changes every occurrence; run as the model copies it, it does."""
    scale = workspace / "scale.py"
    original = (
        "ML_PER = 1000\n\n\ndef to_ml(litres):\n    return litres * ML_PER\n\n\nprint(ML_PER, to_ml(2))\n"
    )
    scale.write_text(original)
    fake.add(call("e1", path="scale.py", old_text="ML_PER", new_text="ML_IN_L"))
    res = edit_turn(home, fake, workspace, "rename ML_PER")
    refusal = outputs(fake.bodies()[-1])["e1"]
    command = "sed -i 's/ML_PER/ML_IN_L/g' scale.py"
    assert refusal == (
        "edit_file: old_text occurs 3 times in scale.py (lines 1, 5, 8); to change one of them, include "
        f"more of its line so it is unique; to change every one, run: {command}"
    )
    assert scale.read_text() == original and res.code == 0
    shell = Reply([ev_created(), ev_function_call("s1", "shell_command", json.dumps({"command": command})),
                   ev_completed()])  # fmt: skip
    edit_turn(home, fake, workspace, "run it", shell)
    assert scale.read_text() == original.replace("ML_PER", "ML_IN_L")


def test_the_replace_every_command_edits_a_linked_files_target(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    """edit_file edits a symlink's target (as apply_patch writes one); the command it offers does the
    same. Control: plain ``sed -i`` would replace the link with an edited copy, the target unchanged."""
    import subprocess

    real = workspace / "real.txt"
    real.write_text("foo\nfoo\n")
    (workspace / "link.txt").symlink_to("real.txt")
    fake.add(call("e1", path="link.txt", old_text="foo", new_text="bar"))
    edit_turn(home, fake, workspace, "rename foo")
    refusal = outputs(fake.bodies()[-1])["e1"]
    command = "sed -i --follow-symlinks 's/foo/bar/g' link.txt"
    assert refusal.endswith(f"to change every one, run: {command}")
    subprocess.run(["bash", "-c", command], cwd=workspace, check=True)
    assert (workspace / "link.txt").is_symlink() and real.read_text() == "bar\nbar\n"
    real.write_text("foo\nfoo\n")
    subprocess.run(["bash", "-c", "sed -i 's/foo/bar/g' link.txt"], cwd=workspace, check=True)
    assert not (workspace / "link.txt").is_symlink() and real.read_text() == "foo\nfoo\n"

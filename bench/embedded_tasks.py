"""The agent tasks of ``bench/embedded.py``: small projects, a prompt, and a check of the state the
task leaves (files, the answer's text, the commands run), by category.

``DEV`` is the set the embedded profile was tuned on; ``HELDOUT`` was written at the same time, in
the same categories, and is only ever measured — never used to change the profile, the
instructions or the decoding. A rule that helps one set only must not be added.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Outcome:
    final: str
    commands: list[str]
    requests: list[dict[str, object]]
    wall_s: float
    exit_code: int


Check = Callable[[Path, Outcome], bool]

PROJECT = {
    "README.md": "# Widget Factory\n\nA tiny demo project that builds widgets.\n",
    "main.py": 'def greet(name):\n    return f"Hello, {name}!"\n\n\nprint(greet("world"))\n',
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": "from calc import add\n\nassert add(2, 3) == 5, 'add is broken'\nprint('ok')\n",
    "data.txt": "".join(f"row {i}\n" for i in range(1, 8)),
    "tmp.txt": "scratch\n",
    "src/app.py": "# TODO: handle errors\nvalue = 1\n",
    "src/util.py": "def helper():\n    pass  # TODO: write the helper\n",
}

INVENTORY = {
    "README.md": "# stockroom\n\nTracks items in a small shop's stockroom.\n",
    "inventory.py": (
        "MAX_ITEMS = 50\n\n\ndef can_add(count):\n    return count < MAX_ITEMS\n\n\n"
        "def room_left(count):\n    return MAX_ITEMS - count\n"
    ),
    "mathutil.py": "def is_even(n):\n    return n % 2 == 1\n\n\ndef double(n):\n    return n + n\n",
    "test_mathutil.py": "from mathutil import is_even\n\nassert is_even(4) and not is_even(3), 'is_even is wrong'\nprint('ok')\n",
    "shop.py": "from inventory import can_add\n\nprint(can_add(3))\n",
    "notes.md": "The colour of the shelf is grey.\nPick a colour for the sign.\n",
    "items.csv": "name,qty\nbolt,10\nnut,20\nscrew,5\nwasher,8\n",
}


def text_has(*words: str) -> Check:
    return lambda ws, out: all(w.lower() in out.final.lower() for w in words)


def text_has_any(*words: str) -> Check:
    return lambda ws, out: any(w.lower() in out.final.lower() for w in words)


def ran(fragment: str) -> Check:
    return lambda ws, out: any(fragment in c for c in out.commands)


def both(*checks: Check) -> Check:
    return lambda ws, out: all(check(ws, out) for check in checks)


def file_is(name: str, text: str) -> Check:
    def check(ws: Path, out: Outcome) -> bool:
        path = ws / name
        return path.is_file() and path.read_text().strip() == text

    return check


def script_passes(*argv: str, prints: str | None = None) -> Check:
    def check(ws: Path, out: Outcome) -> bool:
        probe = subprocess.run([sys.executable, *argv], cwd=ws, capture_output=True, text=True, timeout=30)
        return probe.returncode == 0 and (prints is None or probe.stdout.strip() == prints)

    return check


def file_lacks_has(name: str, gone: str, present: str) -> Check:
    def check(ws: Path, out: Outcome) -> bool:
        path = ws / name
        return path.is_file() and gone not in path.read_text() and present in path.read_text()

    return check


@dataclass
class Task:
    category: str
    prompt: str
    check: Check
    touches: tuple[str, ...] = ()  # the files the task may change or create
    files: dict[str, str] = field(default_factory=lambda: PROJECT)


def python_defines(name: str, call: str, expected: str) -> Check:
    return script_passes("-c", f"from {name} import *; print({call})", prints=expected)


DEV: list[Task] = [
    Task("explain", "List the files in the current directory.", text_has("main.py", "calc.py")),
    Task("explain", "Show me what is in README.md.", text_has("Widget Factory")),
    Task("explain", "What does the greet function in main.py return?", text_has("hello")),
    Task("explain", "What is this project? Answer in one or two sentences.", text_has("widget")),
    Task("create", "Create a file hello.txt that contains the line: hello world",
         file_is("hello.txt", "hello world"), ("hello.txt",)),
    Task("create", "Create a directory named docs.", lambda ws, out: (ws / "docs").is_dir()),
    Task("create", "Write a Python file square.py that defines a function square(x) returning x * x.",
         python_defines("square", "square(4)", "16"), ("square.py",)),
    Task("count", "How many lines does data.txt have?", text_has("7")),
    Task("count", "How many rows of items are in items.csv, not counting the header?", text_has("4"),
         files=INVENTORY),
    Task("count", "How many TODO comments are there in the src directory?", text_has_any("2", "two")),
    Task("find", "Find all TODO comments in the src directory.", text_has("handle errors", "write the helper")),
    Task("find", "Which file defines the function helper?", text_has("util.py")),
    Task("find", "Which file imports can_add?", text_has("shop.py"), files=INVENTORY),
    Task("rename", "In main.py, rename the function greet to welcome everywhere in that file.",
         both(file_lacks_has("main.py", "greet", "def welcome"), script_passes("main.py", prints="Hello, world!")),
         ("main.py",)),
    Task("rename", "Replace every occurrence of the word colour with color in notes.md.",
         file_lacks_has("notes.md", "colour", "color"), ("notes.md",), files=INVENTORY),
    Task("fix", "Fix the bug in calc.py: add() subtracts instead of adding.", script_passes("test_calc.py"),
         ("calc.py",)),
    Task("fix", "python3 test_mathutil.py fails. Fix mathutil.py so that it passes.",
         script_passes("test_mathutil.py"), ("mathutil.py",), files=INVENTORY),
    Task("fix", "Run test_calc.py with python3 and tell me whether it passes.",
         both(ran("test_calc.py"), text_has("fail"))),
]  # fmt: skip

HELDOUT: list[Task] = [
    Task("explain", "Briefly, what does this repository contain?", text_has_any("stock", "shop", "inventory"),
         files=INVENTORY),
    Task("explain", "What does the function room_left in inventory.py compute?", text_has_any("MAX_ITEMS", "50"),
         files=INVENTORY),
    Task("create", "Create a file version.txt containing 1.0.0", file_is("version.txt", "1.0.0"), ("version.txt",)),
    Task("create", "Add a file named CHANGELOG.md whose first line is: # Changelog",
         lambda ws, out: (ws / "CHANGELOG.md").is_file()
         and (ws / "CHANGELOG.md").read_text().splitlines()[:1] == ["# Changelog"], ("CHANGELOG.md",)),
    Task("count", "How many Python files are there in this project, including subdirectories?",
         text_has_any("5", "five")),
    Task("count", "How many commits does this git repository have?", text_has_any("3", "three")),
    Task("find", "In which file is the variable value assigned?", text_has("app.py")),
    Task("find", "Which files mention MAX_ITEMS?", text_has("inventory.py"), files=INVENTORY),
    Task("rename", "In inventory.py, rename the constant MAX_ITEMS to CAPACITY everywhere in that file.",
         both(file_lacks_has("inventory.py", "MAX_ITEMS", "CAPACITY"),
              script_passes("-c", "import inventory; print(inventory.room_left(5))", prints="45")),
         ("inventory.py",), files=INVENTORY),
    Task("rename", "Rename the variable value to total in src/app.py.",
         file_lacks_has("src/app.py", "value", "total = 1"), ("src/app.py",)),
    Task("fix", "shop.py should print True. Run it, and if it does not, fix the cause.",
         script_passes("shop.py", prints="True"), ("inventory.py", "shop.py"), files=INVENTORY),
    Task("fix", "test_calc.py fails. Make it pass by fixing calc.py.", script_passes("test_calc.py"),
         ("calc.py",)),
]  # fmt: skip


def make_workspace(path: Path, files: dict[str, str]) -> None:
    """A small git project: the files committed in three commits."""
    path.mkdir(parents=True)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=path, check=True)
    names = list(files)
    cuts = [len(names) // 3, 2 * len(names) // 3, len(names)]
    start = 0
    for n, cut in enumerate(cuts, 1):
        for name in names[start:cut]:
            target = path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(files[name])
        subprocess.run([*git, "add", "-A"], cwd=path, check=True)
        subprocess.run([*git, "commit", "-qm", f"Add part {n}"], cwd=path, check=True)
        start = cut


def untouched_except(files: dict[str, str], *allowed: str) -> Check:
    """No collateral damage: every other workspace file is as it was, and nothing else was added
    (directories and caches aside)."""

    def check(ws: Path, out: Outcome) -> bool:
        for name, text in files.items():
            if name not in allowed and ((ws / name).read_text() if (ws / name).is_file() else None) != text:
                return False
        present = {
            str(p.relative_to(ws)) for p in ws.rglob("*")
            if ".git" not in p.parts and "__pycache__" not in p.parts and p.is_file()
        }  # fmt: skip
        return present <= set(files) | set(allowed)

    return check


def self_test(
    tasks: list[Task], solutions: dict[int, str], wrong: dict[int, str], *, show: bool = True
) -> int:
    """Each task's check fails on the untouched workspace (and on a plausible wrong answer, when
    ``wrong`` has one) and passes after the correct solution, with no other file changed. No model.
    ``show=False`` keeps the prompts out of the output (the blind set)."""
    import tempfile

    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, task in enumerate(tasks):
            ws = Path(tmp) / f"t{i:02}"
            make_workspace(ws, task.files)
            before = task.check(ws, Outcome("", [], [], 0.0, 0))
            refused = task.check(ws, Outcome(wrong[i], [], [], 0.0, 0)) if i in wrong else None
            proc = subprocess.run(["bash", "-c", solutions[i]], cwd=ws, capture_output=True, text=True)
            out = Outcome(proc.stdout, [solutions[i]], [], 0.0, 0)
            after = task.check(ws, out) and untouched_except(task.files, *task.touches)(ws, out)
            ok = not before and not refused and after
            bad += not ok
            shown = "-" if refused is None else refused
            print(f"{i + 1:2} {task.category:7} before {before!s:5} wrong {shown!s:5} after {after!s:5} "
                  f"{'ok' if ok else 'BAD'}  {task.prompt if show else ''}")  # fmt: skip
    print(f"{len(tasks) - bad}/{len(tasks)} checks behave as intended")
    return 1 if bad else 0

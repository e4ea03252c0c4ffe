"""A second blind held-out set of agent tasks for ``bench/embedded.py``: its author never saw the
embedded profile's instructions nor its worked examples, and whoever tunes them must not see these
tasks. Three small projects unlike ``PROJECT``, ``INVENTORY``, ``TIDEWATCH`` and ``PAWPAL``, and two
tasks per category.

    python bench/embedded_tasks_blind.py    # self-test: each check fails before and passes after a
                                            # correct solution (``SOLUTIONS``), no model involved
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from embedded_tasks import (
    Check,
    Outcome,
    Task,
    both,
    script_passes,
    self_test,
    text_has,
    text_has_any,
)

# A recipe scaler: recipes with comment lines and a [steps] section after the ingredients, a
# parameter name also used in another module, and a check script that fails on a wrong conversion
# factor in units.py (not in the module it imports first).
HALFBATCH = {
    "README.md": (
        "# halfbatch\n\nScales a recipe up or down to another number of servings and converts\n"
        "spoon and cup measures to millilitres.\n\nUsage: `python3 scale.py recipes/pancakes.txt 2`\n"
    ),
    "units.py": (
        'ML_PER = {"tsp": 5, "tbsp": 5, "cup": 240}\n\n\ndef to_ml(qty, unit):\n'
        '    """Convert a spoon or cup measure to millilitres."""\n    return qty * ML_PER[unit]\n'
    ),
    "scale.py": (
        "import sys\n\nfrom units import ML_PER, to_ml\n\n\ndef read_recipe(path):\n"
        '    """Return (servings, [(name, qty, unit), ...]) from a recipe file."""\n'
        "    servings, ingredients, section = 1, [], None\n    with open(path) as f:\n"
        "        for line in f:\n            line = line.strip()\n"
        '            if not line or line.startswith("#"):\n                continue\n'
        '            if line.startswith("serves:"):\n                servings = int(line.split(":")[1])\n'
        '            elif line.startswith("["):\n                section = line.strip("[]")\n'
        '            elif section == "ingredients":\n'
        '                name, qty, unit = [part.strip() for part in line.split(",")]\n'
        "                ingredients.append((name, float(qty), unit))\n    return servings, ingredients\n\n\n"
        "def scale_amount(qty, from_servings, to_servings):\n    return qty * to_servings / from_servings\n\n\n"
        "def main(path, servings):\n    base, ingredients = read_recipe(path)\n"
        "    for name, qty, unit in ingredients:\n        qty = scale_amount(qty, base, servings)\n"
        "        if unit in ML_PER:\n"
        '            print(f"{name}: {qty:g} {unit} ({to_ml(qty, unit):g} ml)")\n        else:\n'
        '            print(f"{name}: {qty:g} {unit}".rstrip())\n\n\n'
        'if __name__ == "__main__":\n    main(sys.argv[1], int(sys.argv[2]))\n'
    ),
    "check_scale.py": (
        "from scale import read_recipe, scale_amount\nfrom units import to_ml\n\n"
        'servings, ingredients = read_recipe("recipes/flatbread.txt")\n'
        'assert servings == 4, f"servings: {servings}"\n'
        'assert len(ingredients) == 4, f"ingredients: {ingredients}"\n'
        "assert scale_amount(300, 4, 2) == 150\n"
        'assert to_ml(1, "tsp") == 5\n'
        'got = to_ml(2, "tbsp")\n'
        "assert got == 30, f\"to_ml(2, 'tbsp') gave {got}, expected 30\"\n"
        'print("scale ok")\n'
    ),
    "recipes/pancakes.txt": (
        "# Buttermilk pancakes\nserves: 6\n\n[ingredients]\n# dry\nflour, 250, g\nsugar, 2, tbsp\n"
        "baking powder, 2, tsp\nsalt, 1, pinch\n# wet\nbuttermilk, 400, ml\neggs, 2,\nbutter, 40, g\n"
        "# to serve\nblueberries, 150, g\nmaple syrup, 4, tbsp\n\n[steps]\n"
        "Whisk the dry ingredients together.\nBeat the eggs into the buttermilk, then stir in the melted butter.\n"
        "Fold the wet mix into the dry; a few lumps are fine.\n"
        "Cook 4 tbsp of batter per pancake, 2 minutes a side.\n"
    ),
    "recipes/flatbread.txt": (
        "serves: 4\n\n[ingredients]\nflour, 300, g\nyogurt, 200, g\nbaking powder, 1, tsp\nsalt, 1, pinch\n\n"
        "[steps]\nMix everything into a soft dough.\nRoll into 4 rounds and dry-fry 2 minutes a side.\n"
    ),
}

# A tiny todo CLI: where the list is stored is only said in store.py (the file does not exist yet),
# load_items has three callers besides its definition (one of them a check script whose name ends in
# todo.py), and the loader splits on the wrong separator.
TICKOFF = {
    "README.md": (
        "# tickoff\n\nA tiny command-line todo list.\n\n"
        '    python3 todo.py add "buy milk"\n    python3 todo.py list\n    python3 todo.py done 1\n'
        "    python3 todo.py clear\n    python3 export.py > todo.md\n"
    ),
    "todo.py": (
        "import sys\n\nfrom model import format_item\nfrom store import load_items, save_items\n\n\n"
        "def main(argv):\n    items = load_items()\n"
        '    command = argv[0] if argv else "list"\n    if command == "add":\n'
        '        items.append((False, " ".join(argv[1:])))\n        save_items(items)\n'
        '    elif command == "done":\n        n = int(argv[1])\n'
        "        items[n - 1] = (True, items[n - 1][1])\n        save_items(items)\n"
        '    elif command == "clear":\n        save_items([(d, t) for d, t in items if not d])\n'
        "    else:\n        for n, (done, text) in enumerate(items, 1):\n"
        "            print(format_item(n, done, text))\n\n\n"
        'if __name__ == "__main__":\n    main(sys.argv[1:])\n'
    ),
    "store.py": (
        'import os\n\nSTORE_FILE = os.environ.get("TICKOFF_FILE", "tickoff.tsv")\n\n\n'
        "def load_items(path=STORE_FILE):\n"
        '    """Each line: a done flag (0 or 1), a tab, then the item\'s text."""\n'
        "    if not os.path.exists(path):\n        return []\n    items = []\n"
        "    with open(path) as f:\n        for line in f:\n"
        '            flag, text = line.rstrip("\\n").split(",", 1)\n'
        '            items.append((flag == "1", text))\n    return items\n\n\n'
        "def save_items(items, path=STORE_FILE):\n"
        '    with open(path, "w") as f:\n        for done, text in items:\n'
        '            f.write(f"{int(done)}\\t{text}\\n")\n'
    ),
    "model.py": (
        'def format_item(n, done, text):\n    box = "[x]" if done else "[ ]"\n'
        '    return f"{n:>2}. {box} {text}"\n\n\n'
        "def open_count(items):\n    return sum(1 for done, _ in items if not done)\n"
    ),
    "export.py": (
        "from store import load_items\n\n"
        'print("# Todo\\n")\nfor done, text in load_items():\n'
        "    print(f\"- [{'x' if done else ' '}] {text}\")\n"
    ),
    "check_todo.py": (
        "import os\nimport tempfile\n\nfrom store import load_items, save_items\n\n"
        'path = os.path.join(tempfile.mkdtemp(), "todo.tsv")\n'
        'items = [(False, "buy milk"), (True, "call mum, re: sunday")]\n'
        "save_items(items, path)\nassert load_items(path) == items, load_items(path)\n"
        'print("store ok")\n'
    ),
}

# A log summariser: three rotated logs (the phrase to find is in two of them), an INFO line that
# mentions ERROR in its message, and parse_line next to the longer parse_lines.
LOGSIFT = {
    "README.md": (
        "# logsift\n\nSummarises an application's log files: how many entries per level, and\n"
        "which hours saw the most errors.\n\nRun `python3 logsift.py logs/app.log`.\n"
    ),
    "parse.py": (
        '"""Parse log lines of the form: DATE TIME LEVEL message."""\n\n'
        "from collections import Counter\n\n\ndef parse_line(line):\n"
        '    """Split one line into (date, time, level, message); None if it is not an entry."""\n'
        "    parts = line.split(maxsplit=3)\n    if len(parts) < 4:\n        return None\n"
        "    return tuple(parts)\n\n\ndef parse_lines(lines):\n"
        "    entries = (parse_line(line) for line in lines)\n"
        "    return [entry for entry in entries if entry is not None]\n\n\n"
        "def count_levels(entries):\n    return Counter(entry[2] for entry in entries)\n"
    ),
    "logsift.py": (
        "import sys\nfrom collections import Counter\n\nfrom parse import count_levels, parse_lines\n\n"
        "with open(sys.argv[1]) as f:\n    entries = parse_lines(f)\n\n"
        "for level, n in sorted(count_levels(entries).items()):\n"
        '    print(f"{level:<8}{n}")\n\n'
        'errors_by_hour = Counter(e[1][:2] for e in entries if e[2] == "ERROR")\n'
        "for hour, n in errors_by_hour.most_common(3):\n"
        '    print(f"{hour}:00  {n} errors")\n'
    ),
    "test_parse.py": (
        "from parse import count_levels, parse_lines\n\n"
        'lines = ["2024-05-02 09:00:01 INFO up", "", "2024-05-02 09:00:02 ERROR db down"]\n'
        "entries = parse_lines(lines)\nassert len(entries) == 2, entries\n"
        'assert count_levels(entries)["ERROR"] == 1\nprint("parse ok")\n'
    ),
    "logs/app.log": (
        "2024-05-02 08:59:58 INFO starting worker pool (4 workers)\n"
        "2024-05-02 09:00:03 INFO connected to db\n"
        "2024-05-02 09:14:27 WARNING slow query took 1840 ms\n"
        "2024-05-02 09:15:02 ERROR db connection reset\n"
        "2024-05-02 09:15:04 INFO retrying after ERROR in db connection\n"
        "2024-05-02 09:15:09 INFO connected to db\n\n"
        "2024-05-02 10:02:44 ERROR payment provider timed out\n"
        "2024-05-02 10:30:00 DEBUG cache stats hits=812 misses=37\n"
        "2024-05-02 11:47:13 WARNING disk usage at 91%\n"
        "2024-05-02 11:52:40 ERROR upload failed: disk full\n"
        "2024-05-02 12:00:00 INFO nightly report sent\n"
    ),
    "logs/app.1.log": (
        "2024-05-01 07:00:00 INFO starting worker pool (4 workers)\n"
        "2024-05-01 13:22:09 ERROR payment provider timed out\n"
        "2024-05-01 18:45:51 WARNING slow query took 2210 ms\n"
    ),
    "logs/app.2.log": (
        "2024-04-30 06:58:12 INFO starting worker pool (4 workers)\n"
        "2024-04-30 22:10:05 ERROR log rotation failed: disk full\n"
        "2024-04-30 22:10:06 INFO retrying log rotation\n"
    ),
}


def says_number(n: int, word: str) -> Check:
    """The answer states ``n`` as a number of its own (not a piece of a time, date or larger number)
    or as a word."""
    pattern = re.compile(rf"(?<![\d.:/-]){n}(?![\d:/-]|\.\d)|\b{word}\b", re.IGNORECASE)
    return lambda ws, out: pattern.search(out.final) is not None


def names_files(*patterns: str) -> Check:
    """Every regex in ``patterns`` occurs in the answer (for file names that end another name)."""
    return lambda ws, out: all(re.search(p, out.final, re.IGNORECASE) for p in patterns)


def lines_are(name: str, expected: set[str]) -> Check:
    """The file's non-blank lines, stripped, are exactly ``expected`` in any order."""

    def check(ws: Path, out: Outcome) -> bool:
        path = ws / name
        if not path.is_file():
            return False
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        return len(lines) == len(expected) and set(lines) == expected

    return check


def identifier_renamed(name: str, old: str, new: str, *kept: str) -> Check:
    """No whole-word ``old`` is left in the file, ``new`` is there, and the longer names in
    ``kept`` (which contain ``old``) are untouched."""

    def check(ws: Path, out: Outcome) -> bool:
        path = ws / name
        if not path.is_file():
            return False
        text = path.read_text()
        return (
            re.search(rf"\b{old}\b", text) is None
            and re.search(rf"\b{new}\b", text) is not None
            and all(k in text for k in kept)
        )

    return check


FLATBREAD_HALVED = "flour: 150 g\nyogurt: 100 g\nbaking powder: 0.5 tsp (2.5 ml)\nsalt: 0.5 pinch"

BLIND: list[Task] = [
    Task("explain", "I just cloned this. What does it do?",
         text_has_any("recipe", "serving", "ingredient"), files=HALFBATCH),
    Task("explain", "Where does todo.py keep my list between runs?",
         text_has("tickoff.tsv"), files=TICKOFF),
    Task("create", "Make a .gitignore that ignores __pycache__/ and tickoff.tsv, one pattern per line.",
         lines_are(".gitignore", {"__pycache__/", "tickoff.tsv"}), (".gitignore",), files=TICKOFF),
    Task("create", "Add levels.py with a list LEVELS of the strings DEBUG, INFO, WARNING and ERROR, in that order.",
         script_passes("-c", "from levels import LEVELS; print(list(LEVELS))",
                       prints="['DEBUG', 'INFO', 'WARNING', 'ERROR']"),
         ("levels.py",), files=LOGSIFT),
    Task("count", "How many entries in logs/app.log have the level ERROR?",
         says_number(3, "three"), files=LOGSIFT),
    Task("count", "How many ingredients go into the pancakes in recipes/pancakes.txt?",
         says_number(9, "nine"), files=HALFBATCH),
    Task("find", "Which files call load_items, not counting store.py where it is defined?",
         names_files(r"(?<!check_)todo\.py", r"export\.py", r"check_todo\.py"), files=TICKOFF),
    Task("find", "Which of the logs under logs/ contain the words disk full?",
         names_files(r"(?<![\w.])app\.log", r"app\.2\.log"), files=LOGSIFT),
    Task("rename", "Rename the function parse_line to parse_entry in parse.py, updating every use of it in that file.",
         both(identifier_renamed("parse.py", "parse_line", "parse_entry", "def parse_entry(", "def parse_lines("),
              script_passes("test_parse.py", prints="parse ok")),
         ("parse.py",), files=LOGSIFT),
    Task("rename", "In scale.py, rename qty to amount everywhere it appears in that file.",
         both(identifier_renamed("scale.py", "qty", "amount"),
              script_passes("-c", "from scale import scale_amount; "
                            "print(scale_amount(amount=100, from_servings=4, to_servings=6))", prints="150.0"),
              script_passes("scale.py", "recipes/flatbread.txt", "2", prints=FLATBREAD_HALVED)),
         ("scale.py",), files=HALFBATCH),
    Task("fix", "check_scale.py fails. The check is right; fix the code so it passes.",
         script_passes("check_scale.py", prints="scale ok"), ("units.py",), files=HALFBATCH),
    Task("fix", "Make python3 check_todo.py pass.",
         script_passes("check_todo.py", prints="store ok"), ("store.py",), files=TICKOFF),
]  # fmt: skip

# A correct solution per task (index in BLIND), run with bash in the workspace; for the tasks judged
# by the answer, its output stands in for the answer.
SOLUTIONS: dict[int, str] = {
    0: "sed -n 3,4p README.md",
    1: "grep -n STORE_FILE store.py | head -n 1",
    2: "printf '__pycache__/\\ntickoff.tsv\\n' > .gitignore",
    3: """printf 'LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]\\n' > levels.py""",
    4: "awk '$3 == \"ERROR\"' logs/app.log | wc -l",
    5: "sed -n '/^\\[ingredients\\]/,/^\\[steps\\]/p' recipes/pancakes.txt | grep -c ,",
    6: "grep -lw load_items *.py | grep -vx store.py",
    7: "grep -l 'disk full' logs/*",
    8: "sed -i -E 's/\\bparse_line\\b/parse_entry/g' parse.py",
    9: "sed -i -E 's/\\bqty\\b/amount/g' scale.py",
    10: 'sed -i \'s/"tbsp": 5/"tbsp": 15/\' units.py',
    11: 'sed -i \'s/split(",", 1)/split("\\\\t", 1)/\' store.py',
}

# Plausible wrong answers that the answer checks must reject.
WRONG: dict[int, str] = {
    0: "It is a small Python command-line tool with a few scripts.",
    1: "It keeps the list in memory, and export.py writes it to todo.md.",
    4: "grep finds ERROR on 4 lines of logs/app.log (09:15:02, 09:15:04, 10:02:44, 11:52:40).",
    5: "recipes/pancakes.txt has 23 lines; 14 of them in the ingredients section.",
    6: "load_items is called in todo.py and export.py.",
    7: "Only logs/app.2.log mentions disk full.",
}


def _self_test() -> int:
    for files in (HALFBATCH, TICKOFF, LOGSIFT):
        assert 3 <= len(files) <= 7
        for name, text in files.items():
            assert len(text.encode()) < 1500, name
    for task in BLIND:
        if task.category == "rename":
            assert task.touches[0] in task.files
    assert "tickoff.tsv" not in TICKOFF["README.md"] and "tickoff.tsv" not in TICKOFF
    assert LOGSIFT["parse.py"].count("parse_line(") >= 2 and "parse_lines" in LOGSIFT["parse.py"]
    assert HALFBATCH["scale.py"].count("qty") >= 5 and "qty" in HALFBATCH["units.py"]
    assert LOGSIFT["logs/app.log"].count("ERROR") == 4
    categories = [task.category for task in BLIND]
    assert all(categories.count(c) == 2 for c in ("explain", "create", "count", "find", "rename", "fix"))
    return self_test(BLIND, SOLUTIONS, WRONG, show=False)


if __name__ == "__main__":
    sys.exit(_self_test())

"""Worked examples the native profile shows the embedded model before the conversation.

A 1.5B model copies the shape of what it has seen far better than it follows a described rule.
These short finished turns show the habits the instructions describe, on a made-up project
(``tidy``, a TOML formatter): read the README before describing a project; create a file with a
shell command; let a command compute exactly the number asked for; tell where a name is used from
where it is defined, quoting the lines; rename with ``sed`` across a file and look at the result;
run a failing check, read the code, change it with ``edit_file``, run the check again. They are
rendered in the template's own roles (``tool_calls``, ``tool`` results carrying the same reminder
as real ones, the ``answer`` call) right after the system turn.

Everything in them is what the real pipeline would produce: a request naming a small file carries
it as ``attach.py`` attaches it, tool results are formatted by the tools' own formatter, and every
command's output is what the command prints on ``PROJECT`` (``tests/test_local_examples.py`` runs
them). They never name the user's workspace, so they belong to the prefix shared by every
workspace (``kvcache.py``): evaluated once per machine, then restored from disk. The project and
the requests are unlike the benchmark's (``bench/embedded_tasks.py``); figures in
docs/embedded.md.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from codexbro.embedded.attach import attachment


class Step(Struct, frozen=True):
    tool: str
    arguments: dict[str, Any]
    output: str  # what the command prints, or what the patch applier reports
    code: int = 0

    @property
    def result(self) -> str:
        """The tool result as the model reads it (``shell_command`` and ``edit_file`` both answer
        in this format: ``tools.output.exec_output_freeform``, which this layer may not import; a
        test holds the two equal)."""
        return f"Exit code: {self.code}\nWall time: 0.1 seconds\nOutput:\n{self.output}"


class Example(Struct, frozen=True):
    request: str  # as typed
    steps: tuple[Step, ...]
    answer: str

    @property
    def shown(self) -> str:
        """The request as the model reads it: with the small files it names (``attach.py``)."""
        from pathlib import PurePosixPath

        named = [n for n in PROJECT if n in self.request and PurePosixPath(n).suffix]
        return self.request + attachment([(n, PROJECT[n]) for n in named][:2])

    @property
    def tools(self) -> set[str]:
        return {step.tool for step in self.steps}


def _shell(command: str, output: str, code: int = 0) -> Step:
    return Step("shell_command", {"command": command}, output, code)


# The made-up project the examples work on (the test builds it and runs every command).
PROJECT: dict[str, str] = {
    "README.md": "# tidy\n\nSorts the keys of TOML files and normalises their spacing.\n\n## Usage\n\n"
    "    tidy config.toml\n",
    "tidy/cli.py": "import sys\n\nfrom tidy.parser import parse_table\n\n\ndef _read(path):\n"
    "    with open(path) as f:\n        return f.read()\n\n\ndef _write(path, text):\n"
    "    with open(path, 'w') as f:\n        f.write(text)\n\n\ndef main():\n"
    "    table = parse_table(_read(sys.argv[1]))\n    _write(sys.argv[1], table.dump())\n",
    "tidy/parser.py": "from tidy.table import Table\n\n\ndef parse_table(text):\n    return Table(text)\n",
    "tidy/config.py": "max_width = 88\n\n\ndef wrap(text):\n    if len(text) > max_width:\n"
    "        return text[:max_width]\n    return text\n",
    "tidy/sort.py": "def sort_keys(keys):\n    return sorted(keys, reverse=True)\n",
    "tests/check_sort.py": "import sys\n\nsys.path.insert(0, '.')\nfrom tidy.sort import sort_keys\n\n"
    "result = sort_keys(['b', 'a'])\nif result != ['a', 'b']:\n    sys.exit(f'wrong order: {result}')\n"
    "print('all good')\n",
}

EXAMPLES: tuple[Example, ...] = (
    Example(
        "Give me a quick overview of this codebase.",
        (_shell("cat README.md", PROJECT["README.md"]),),
        "tidy is a command-line tool that sorts the keys of TOML files and normalises their spacing "
        "(README.md); you run it as `tidy config.toml`.",
    ),
    Example(
        "Add a .gitignore that ignores the build directory.",
        (_shell("echo 'build/' > .gitignore", ""),),
        "Added .gitignore with the line: build/",
    ),
    Example(
        "How many of the functions in tidy/cli.py are private, i.e. start with an underscore?",
        (_shell("grep -c '^def _' tidy/cli.py", "2\n"),),
        "2: _read and _write are private; main is not.",
    ),
    Example(
        "Where is parse_table used?",
        (
            _shell(
                "grep -rn parse_table .",
                "./tidy/cli.py:3:from tidy.parser import parse_table\n"
                "./tidy/cli.py:17:    table = parse_table(_read(sys.argv[1]))\n"
                "./tidy/parser.py:4:def parse_table(text):\n",
            ),
        ),
        "In tidy/cli.py: imported on line 3 and called on line 17 (`table = parse_table(_read(sys.argv[1]))`). "
        "tidy/parser.py line 4 is where it is defined.",
    ),
    Example(
        "Change the setting name max_width to line_length throughout tidy/config.py.",
        (
            _shell("sed -i 's/\\bmax_width\\b/line_length/g' tidy/config.py", ""),
            _shell(
                "grep -n 'line_length\\|max_width' tidy/config.py",
                "1:line_length = 88\n5:    if len(text) > line_length:\n6:        return text[:line_length]\n",
            ),
        ),
        "Renamed max_width to line_length in tidy/config.py, on lines 1, 5 and 6; no max_width is left.",
    ),
    Example(
        "sort_keys gives the wrong order; make python3 tests/check_sort.py pass.",
        (
            _shell("python3 tests/check_sort.py", "wrong order: ['b', 'a']\n", 1),
            _shell("cat tidy/sort.py", PROJECT["tidy/sort.py"]),
            Step(
                "edit_file",
                {
                    "path": "tidy/sort.py",
                    "old_text": "sorted(keys, reverse=True)",
                    "new_text": "sorted(keys)",
                },
                "Success. Updated the following files:\nM tidy/sort.py\n",
            ),
            _shell("python3 tests/check_sort.py", "all good\n"),
        ),
        "Fixed tidy/sort.py: sort_keys sorted in reverse; it now returns sorted(keys). "
        "python3 tests/check_sort.py passes now (it printed: all good).",
    ),
)


def examples_for(tools: set[str]) -> tuple[Example, ...]:
    """The examples whose calls are all on this menu (``answer`` is always there)."""
    return tuple(e for e in EXAMPLES if e.tools <= tools)

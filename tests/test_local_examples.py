"""The embedded model's worked examples (embedded/examples.py) show exactly what the real pipeline
would produce: every command prints what the example says on the example project, every request
carries the files the attachment rule would attach, and the examples are rendered after the
system turn, before anything of the workspace. No model is needed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codexbro.api.model_client import Prompt
from codexbro.embedded.attach import attachment, named_files
from codexbro.embedded.examples import EXAMPLES, PROJECT, examples_for
from codexbro.embedded.render import shared_count, to_native_messages
from codexbro.tools.output import exec_output_freeform

MENU = {"shell_command", "edit_file"}


def _project(root: Path) -> None:
    for name, text in PROJECT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.mark.parametrize("n", range(len(EXAMPLES)))
def test_every_step_prints_what_the_example_says(tmp_path: Path, n: int) -> None:
    example = EXAMPLES[n]
    _project(tmp_path)
    for step in example.steps:
        if step.tool == "shell_command":
            done = subprocess.run(["bash", "-c", step.arguments["command"]], cwd=tmp_path, capture_output=True,
                                  text=True, timeout=30)  # fmt: skip
            printed = done.stdout + done.stderr
            # grep -r lists files in directory order: compared as a set of lines.
            assert sorted(printed.splitlines()) == sorted(step.output.splitlines()), step
            assert done.returncode == step.code, step
        else:
            assert step.tool == "edit_file"
            path = tmp_path / step.arguments["path"]
            text = path.read_text()
            assert text.count(step.arguments["old_text"]) == 1  # what edit_file requires
            path.write_text(text.replace(step.arguments["old_text"], step.arguments["new_text"]))
            assert step.output == f"Success. Updated the following files:\nM {step.arguments['path']}\n"
    assert example.answer and example.answer.strip() == example.answer


@pytest.mark.parametrize("n", range(len(EXAMPLES)))
def test_requests_carry_the_files_the_attachment_rule_would(tmp_path: Path, n: int) -> None:
    _project(tmp_path)
    example = EXAMPLES[n]
    assert example.shown == example.request + attachment(named_files(example.request, tmp_path))


def test_results_are_formatted_as_the_tools_format_them() -> None:
    for example in EXAMPLES:
        for step in example.steps:
            assert step.result == exec_output_freeform(step.output, step.code, 0.1, "bytes", 10_000)
            assert step.result.startswith(f"Exit code: {step.code}\nWall time: 0.1 seconds\nOutput:\n")
            assert step.result.endswith(step.output)


def test_examples_follow_the_system_turn_and_never_name_a_workspace() -> None:
    env = ("<environment_context>\n  <cwd>/work/alpha</cwd>\n  <sandbox_mode>read-only</sandbox_mode>\n"
           "  <writable_roots>\n    <root>/work/alpha</root>\n    <root>/tmp/extra</root>\n  </writable_roots>\n"
           "</environment_context>")  # fmt: skip
    items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "dev notes"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": env}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list the files"}]},
    ]
    tools = [{"type": "function", "name": name, "parameters": {}} for name in sorted(MENU)]
    messages = to_native_messages(Prompt(input=items, tools=tools), "Be brief.", examples=True)  # type: ignore[arg-type]
    shared = shared_count(messages)
    head, rest = messages[:shared], messages[shared:]
    assert head[0]["role"] == "system" and all(m.get("example") for m in head[1:])
    assert sum(1 for m in head if m["role"] == "user") == len(EXAMPLES)
    assert [m["content"] for m in rest][0::2] == ["dev notes", "list the files"]
    assert "<root>/tmp/extra</root>" in rest[1]["content"] and "alpha" not in str(head)
    for marker in ("/tmp", "/home", "/work", "/srv"):
        assert marker not in str(head[1:])
    # Without edit_file on the menu, the examples that call it are left out; without examples, none.
    only_shell = examples_for({"shell_command"})
    assert (
        only_shell
        and all(e.tools == {"shell_command"} for e in only_shell)
        and len(only_shell) < len(EXAMPLES)
    )
    bare = to_native_messages(Prompt(input=items, tools=tools), "Be brief.")  # type: ignore[arg-type]
    assert shared_count(bare) == 1 and not any(m.get("example") for m in bare)


def test_examples_are_not_the_benchmarks_tasks() -> None:
    """The benchmark's held-out set is only ever measured: none of its projects' files, names or
    requests appear in the examples (nor the dev set's)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    try:
        from embedded_tasks import DEV, HELDOUT, INVENTORY
        from embedded_tasks import PROJECT as BENCH_PROJECT
    finally:
        sys.path.pop(0)
    text = " ".join([e.shown + e.answer + str([s.arguments for s in e.steps]) for e in EXAMPLES])
    for name in [*BENCH_PROJECT, *INVENTORY]:
        if name != "README.md":
            assert name not in text, name
    for word in ("widget", "stockroom", "greet", "calc", "MAX_ITEMS", "can_add", "TODO", "helper", "colour"):
        assert word.lower() not in text.lower(), word
    for task in [*DEV, *HELDOUT]:
        assert task.prompt not in text

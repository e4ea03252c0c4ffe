"""Every CLI command is robust: closed pipes, bad input, one error path, upstream's argument forms."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_config
from tests.fakes.events import message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)


@pytest.mark.parametrize("command", ["routes", "models", "models --json", "sandbox doctor"])
def test_a_closed_stdout_exits_141_without_a_traceback(command: str, home: Path) -> None:
    """`codexbro … | head -1` where head is gone before codexbro writes: the reader end is closed
    before the process starts, so every write meets a broken pipe."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "codexbro", *command.split()], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_a_bad_log_level_is_one_line(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("ok")))
    res = run_cli("exec", "hi", cwd=workspace, env={"CODEXBRO_LOG": "chatty"})
    assert res.code == 0, res.stderr
    assert "CODEXBRO_LOG='chatty' is not a log level" in res.stderr and "Traceback" not in res.stderr


def test_config_overrides_before_the_subcommand(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("ok")))
    res = run_cli("-c", 'model="gpt-5.4"', "exec", "hi", cwd=workspace)
    assert res.code == 0, res.stderr
    assert fake.bodies()[0]["model"] == "gpt-5.4"


def test_an_unknown_feature_names_the_known_ones(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    res = run_cli("exec", "--enable", "telepathy", "hi", cwd=workspace)
    assert res.code == 1 and "unknown feature `telepathy`" in res.stderr and "unified_exec" in res.stderr
    assert res.stderr.count("\n") == 1 and fake.requests == []


@pytest.mark.parametrize("form", ["spaces", "commas"])
def test_several_images(form: str, home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    for name in ("a.png", "b.png"):
        (workspace / name).write_bytes(PNG)
    fake.add(Reply(message_turn("two images")))
    images = ["-i", "a.png", "b.png"] if form == "spaces" else ["-i", "a.png,b.png"]
    res = (
        run_cli("exec", "look", *images, cwd=workspace)
        if form == "commas"
        else run_cli("exec", *images, "--", "look", cwd=workspace)
    )
    assert res.code == 0, res.stderr
    content = fake.bodies()[0]["input"][-1]["content"]
    assert sum(1 for part in content if part["type"] == "input_image") == 2, content


def test_exec_fork_and_review(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("first answer")), Reply(message_turn("forked answer")))
    assert run_cli("exec", "remember the word banana", cwd=workspace).code == 0
    (original,) = home.glob("sessions/*/*/*/rollout-*.jsonl")
    thread = original.stem[-36:]
    res = run_cli("exec", "fork", thread, "what was the word?", cwd=workspace)
    assert res.code == 0, res.stderr
    rollouts = sorted(home.glob("sessions/*/*/*/rollout-*.jsonl"))
    assert len(rollouts) == 2
    (copy,) = [p for p in rollouts if p != original]
    meta = json.loads(copy.read_text().splitlines()[0])["payload"]
    assert meta["forked_from_id"] == thread and meta["id"] != thread
    texts = json.dumps(fake.bodies()[-1]["input"])
    assert "remember the word banana" in texts and "first answer" in texts and "what was the word?" in texts
    assert "what was the word?" not in original.read_text()  # the original is untouched
    review = run_cli("exec", "review", cwd=workspace)
    assert (
        review.code == 2
        and "exec review needs --uncommitted, --base BRANCH, --commit SHA or a PROMPT" in review.stderr
    )
    assert len(fake.bodies()) == 2  # "review" was not taken as a prompt


def test_a_prompt_that_is_not_utf8_is_a_clear_error(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    env = {**os.environ}
    proc = subprocess.run([sys.executable.encode(), b"-m", b"codexbro", b"exec", b"caf\xe9"], cwd=workspace,
                          env=env, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 1 and b"the prompt argument is not valid UTF-8" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "codexbro", "exec", "-"], cwd=workspace, env=env,
                          input=b"caf\xe9\n", capture_output=True, timeout=30)  # fmt: skip
    assert proc.returncode == 1 and b"the input on stdin is not valid UTF-8" in proc.stderr
    assert fake.requests == []


def test_config_options_after_a_nested_subcommand_still_apply(home: Path) -> None:
    """`-c`/`-p` work before and after `models show` (the subcommands became nested parsers)."""
    shown = run_cli("models", "show", "gpt-5.1-codex", "-c", "model_verbosity=low")
    assert shown.code == 0 and "gpt-5.1-codex" in shown.stdout, shown.stderr
    missing = run_cli("models", "-c", "model_verbosity=low", "show", "gpt-5.1-codex", "-p", "nope")
    assert missing.code == 1 and "profile `nope` not found" in missing.stderr, missing.stderr
    bad = run_cli("models", "list", "-c", "sandbox_mode=read-onyl")
    assert bad.code == 1 and "`sandbox_mode` must be one of" in bad.stderr, bad.stderr


def test_the_command_table_names_every_command_each_module_registers() -> None:
    """`main` builds only the parser of the command given (COMMANDS says which module has it): the
    table must match what the modules register, or a command would fall through to the TUI."""
    import argparse
    import importlib

    from codexbro.cli.commands import COMMANDS, MODULES

    registered: dict[str, str] = {}
    sub = argparse.ArgumentParser().add_subparsers()
    for module in MODULES:
        before = set(sub.choices)
        importlib.import_module(f"codexbro.cli.commands.{module}").register(sub)
        registered.update(dict.fromkeys(set(sub.choices) - before, module))
    assert registered == COMMANDS


def test_a_command_alone_parses_as_in_the_whole_parser() -> None:
    from codexbro.cli.main import build_parser

    argv = ["exec", "--json", "-s", "read-only", "hi"]
    alone, whole = build_parser("exec").parse_args(argv), build_parser().parse_args(argv)
    assert {k: v for k, v in vars(alone).items() if k != "run"} == {
        k: v for k, v in vars(whole).items() if k != "run"
    }
    assert alone.prompt == "hi" and alone.json is True

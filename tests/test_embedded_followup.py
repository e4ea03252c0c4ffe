"""The embedded profile sends an answer back once when the turn's check still fails
(``embedded/followup.py``): the rule read from real tool outputs, and a real session — real shell
commands and edits in a temp workspace — whose engine is scripted (the model's choices are the only
thing scripted; the provider, the tools and the turn loop are the real ones)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from codexbro import protocol as p
from codexbro.api import events as ev
from codexbro.api.model_client import Prompt
from codexbro.api.scripted import calls, says
from codexbro.config.loader import Overrides, load_config
from codexbro.core.history import History
from codexbro.core.rollout import RolloutRecorder, new_thread_id
from codexbro.core.session import Session
from codexbro.embedded.engine import RequestStats
from codexbro.embedded.followup import Check, failing_check, lead, note
from codexbro.embedded.provider import MAX_TOOL_ROUNDS, EmbeddedClient, local_model_info
from tests.test_ops import events_until, turn

USER = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]}


def shell(call_id: str, command: str) -> dict[str, Any]:
    return {"type": "function_call", "name": "shell_command", "call_id": call_id,
            "arguments": json.dumps({"command": command})}  # fmt: skip


def ran(call_id: str, code: int, output: str) -> dict[str, Any]:
    text = f"Exit code: {code}\nWall time: 0.1 seconds\nOutput:\n{output}"
    return {"type": "function_call_output", "call_id": call_id, "output": text}


def test_the_check_is_the_turns_first_command_still_failing() -> None:
    failing = [USER, shell("a", "python3 check.py"), ran("a", 1, "AssertionError: 5 != 4\n")]
    assert failing_check(failing) == Check("python3 check.py", 1)  # type: ignore[arg-type]
    # Still failing after other commands; its last run is what counts.
    more = [*failing, shell("b", "cat calc.py"), ran("b", 0, "def add(a, b):\n")]
    assert failing_check(more) == Check("python3 check.py", 1)  # type: ignore[arg-type]
    assert failing_check([*more, shell("c", "python3 check.py"), ran("c", 0, "ok\n")]) is None  # type: ignore[arg-type]
    assert failing_check([*more, shell("c", "python3 check.py"), ran("c", 2, "x\n")]) == Check(  # type: ignore[arg-type]
        "python3 check.py", 2, runs=2
    )
    # A search that found nothing prints nothing: not a failing check.
    assert failing_check([USER, shell("a", "grep -rn foo ."), ran("a", 1, "")]) is None  # type: ignore[arg-type]
    # The first command succeeded; a later one failing is not the turn's check.
    later = [USER, shell("a", "ls"), ran("a", 0, "x\n"), shell("b", "python3 x.py"), ran("b", 1, "boom\n")]
    assert failing_check(later) is None  # type: ignore[arg-type]
    # Only this turn: a new request starts over; no command yet, or one still running, is nothing.
    assert failing_check([*failing, USER]) is None  # type: ignore[arg-type]
    assert failing_check([USER, shell("a", "python3 check.py")]) is None  # type: ignore[arg-type]
    # Outputs in another shape (a refused call's message) or odd arguments are not read as runs.
    odd = [USER, shell("a", "python3 check.py"), {"type": "function_call_output", "call_id": "a",
                                                  "output": "shell_command: bad arguments"}]  # fmt: skip
    assert failing_check(odd) is None  # type: ignore[arg-type]
    bad = {"type": "function_call", "name": "shell_command", "call_id": "z", "arguments": "{not json"}
    assert failing_check([USER, bad, ran("z", 1, "boom\n")]) is None  # type: ignore[arg-type]
    text = note(Check("python3 check.py", 1))
    assert "`python3 check.py` exited with code 1" in text and "reply with answer again" in text
    # Quoted on one line, at most 80 characters; doubled backticks around one that holds a backtick.
    assert lead(Check("python3 check.py", 1, 2)) == "`python3 check.py` still fails (exit code 1)."
    assert lead(Check("cat <<EOF > x\nline\nEOF", 1)).startswith("`cat <<EOF > x …` still fails")
    assert lead(Check("echo `date`", 2)).startswith("`` echo `date` `` still fails")
    assert lead(Check("echo ``x``", 2)).startswith("``` echo ``x`` ``` still fails")
    # One run whose output the history holds twice is one run.
    twice = [*failing, ran("a", 1, "AssertionError: 5 != 4\n")]
    assert failing_check(twice) == Check("python3 check.py", 1, runs=1)  # type: ignore[arg-type]
    long = lead(Check("python3 -c " + "x" * 200, 1))
    assert long.startswith("`python3 -c xxx") and len(long.split("`")[1]) == 78


class Engine:
    """The model's side, scripted: each generation takes the next item. Streams an answer the way
    the real engine does (item added, text deltas, item done) and records the prompts."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.prompts: list[Prompt] = []
        self.answer_only: list[bool] = []
        self.leads: list[str] = []
        self.last_stats = RequestStats()

    async def stream(self, prompt: Prompt, instructions: str = "", *, require_tool: bool = False,
                     answer_only: bool = False, attachments: object = None,
                     lead: str = "") -> AsyncIterator[ev.ResponseEvent]:  # fmt: skip
        self.prompts.append(prompt)
        self.answer_only.append(answer_only)
        self.leads.append(lead)
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        if answer_only and lead:  # as the real engine writes it (tests/test_local_model.py)
            item = says(f"{lead} {item['content'][0]['text']}")
        yield ev.Created(f"resp_{len(self.prompts)}")
        if item["type"] == "message":
            yield ev.OutputItemAdded({**item, "content": []})
            yield ev.OutputTextDelta(item["content"][0]["text"], item_id="m")
        yield ev.OutputItemDone(item)
        yield ev.Completed(f"resp_{len(self.prompts)}", ev.TokenUsage(10, 0, 5, 0, 15))

    def close(self) -> None:
        pass


def session_with(workspace: Path, items: list[dict[str, Any]]) -> tuple[Session, Engine, list[Any]]:
    config = load_config(
        Overrides(cwd=workspace, flags={"approval_policy": "never", "sandbox_mode": "workspace-write"})
    )
    model = local_model_info("qwen2.5-coder-1.5b")
    records: list[Any] = []
    client = EmbeddedClient(
        config=config, model=model, model_path=workspace / "absent.gguf", request_log=records.append
    )
    engine = Engine(items)
    client.engine = engine  # type: ignore[assignment]
    thread_id = new_thread_id()
    recorder = RolloutRecorder(config.codexbro_home, thread_id)
    session = Session(config=config, model=model, client=client, thread_id=thread_id, recorder=recorder,
                      history=History(), resumed=False, warnings=[], can_ask_user=False)  # fmt: skip
    return session, engine, records


def answers(events: list[p.EventMsg]) -> list[str]:
    return [e.message for e in events if isinstance(e, p.AgentMessage)]


def shown_text(events: list[p.EventMsg]) -> str:
    return "".join(e.delta for e in events if isinstance(e, p.AgentMessageDelta))


async def test_an_answer_while_the_check_fails_is_sent_back_once(workspace: Path) -> None:
    (workspace / "calc.py").write_text("def add(a, b):\n    return a + b + 1\n")
    (workspace / "check.py").write_text(
        "from calc import add\nassert add(2, 2) == 4, f'add(2, 2) gave {add(2, 2)}'\nprint('all good')\n"
    )
    session, engine, records = session_with(workspace, [
        calls("shell_command", {"command": "python3 check.py"}, "c1"),
        says("add is defined in calc.py."),  # stops after a look: held back, sent back
        calls("edit_file", {"path": "calc.py", "old_text": "a + b + 1", "new_text": "a + b"}, "c2"),
        calls("shell_command", {"command": "python3 check.py"}, "c3"),
        says("Fixed calc.py; python3 check.py prints all good."),
    ])  # fmt: skip
    session.submit(turn("check.py fails; fix calc.py"))
    events = await asyncio.wait_for(events_until(session), 60)
    assert (workspace / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    # The held-back answer was never shown, not even as deltas; the last one was.
    assert answers(events) == ["Fixed calc.py; python3 check.py prints all good."]
    assert "add is defined" not in shown_text(events)
    # The follow-up generation read the answer as an unsent `answer` call, then the note, whose
    # exit code is the real run's.
    followup = engine.prompts[2].input
    assert followup[:-2] == engine.prompts[1].input
    sent_back, result = followup[-2:]
    assert sent_back["name"] == "answer" and json.loads(sent_back["arguments"]) == {
        "text": "add is defined in calc.py."
    }
    assert result["output"] == note(Check("python3 check.py", 1))
    # Nothing of it is in the history: the next request carries the call the model made instead.
    assert "Not sent yet" not in json.dumps(engine.prompts[3].input)
    # Traces show it, on the request it happened in.
    local = [r.extra["local"] for r in records]
    assert [bool(x.get("followed_up")) for x in local] == [False, True, False, False]
    assert (
        local[1]["followed_up"]["check"] == "python3 check.py" and local[1]["followed_up"]["exit_code"] == 1
    )
    await session.close()


async def test_once_per_turn_and_never_when_the_check_passes(workspace: Path) -> None:
    (workspace / "check.py").write_text("import sys\nsys.exit('still broken')\n")
    session, engine, _records = session_with(workspace, [
        calls("shell_command", {"command": "python3 check.py"}, "c1"),
        says("It fails."),  # sent back once
        says("python3 check.py prints: still broken."),  # the second answer stands
        calls("shell_command", {"command": "echo hi"}, "c2"),  # next turn: the first command passes
        says("It printed hi."),
    ])  # fmt: skip
    session.submit(turn("run check.py"))
    events = await asyncio.wait_for(events_until(session), 60)
    assert answers(events) == ["python3 check.py prints: still broken."]
    assert len(engine.prompts) == 3
    session.submit(turn("say hi"))
    events = await asyncio.wait_for(events_until(session), 60)
    assert answers(events) == ["It printed hi."] and shown_text(events) == "It printed hi."
    assert len(engine.prompts) == 5 and not engine.items
    await session.close()


async def test_an_answer_the_model_must_give_starts_with_the_failing_check(workspace: Path) -> None:
    """The check ran again and still fails, and the model must answer (calls used up, or a repeated
    call refused): the answer starts with that, written, not sampled (such answers claimed "passes
    now", even after a note saying not to). After one run only, nothing is written: a command that
    answers with a non-zero exit (``grep -c`` printing 0) is no check."""
    (workspace / "calc.py").write_text("TOTAL = 50\n")
    (workspace / "check.py").write_text(
        "import sys\nfrom calc import TOTAL\nsys.exit(f'wrong total: {TOTAL}')\n"
    )
    told = lead(Check("python3 check.py", 1, runs=2))
    wrong_fix = calls("edit_file", {"path": "calc.py", "old_text": "50", "new_text": "60"}, "e")
    check = [calls("shell_command", {"command": "python3 check.py"}, f"c{n}") for n in range(3)]
    others = [calls("shell_command", {"command": f"echo {n}"}, f"o{n}") for n in range(MAX_TOOL_ROUNDS - 3)]
    session, engine, records = session_with(workspace, [
        check[0], wrong_fix, check[1], *others,
        says("It passes now."),  # the forced answer (the grammar allows nothing else)
    ])  # fmt: skip
    session.submit(turn("make check.py pass"))
    events = await asyncio.wait_for(events_until(session), 60)
    assert engine.answer_only == [False] * MAX_TOOL_ROUNDS + [True]
    assert engine.leads[-1] == told and answers(events) == [f"{told} It passes now."]
    check_failing = [r.extra["local"].get("check_failing") for r in records]
    assert check_failing == [None] + [{"check": "python3 check.py", "exit_code": 1}] * MAX_TOOL_ROUNDS
    await session.close()

    # A repeated call is refused and redone as an answer: it starts the same way, and is not sent
    # back as well.
    (workspace / "calc.py").write_text("TOTAL = 50\n")
    session, engine, records = session_with(workspace, [
        check[0], wrong_fix, check[1], check[2],  # the same again, with no edit between: refused
        says("It printed: wrong total: 60."),
    ])  # fmt: skip
    session.submit(turn("make check.py pass"))
    events = await asyncio.wait_for(events_until(session), 60)
    assert engine.answer_only == [False, False, False, False, True] and engine.leads[-1] == told
    assert answers(events) == [f"{told} It printed: wrong total: 60."]
    assert records[-1].extra["local"]["refused"]["reason"] == "repeats a call already made this turn"
    await session.close()

    # One run of a failing first command: nothing is written into a forced answer.
    (workspace / "notes.txt").write_text("nothing to do here\n")
    count = calls("shell_command", {"command": "grep -c TODO notes.txt"}, "g")
    session, engine, records = session_with(workspace, [
        count, calls("shell_command", {"command": "grep -c TODO notes.txt"}, "g2"),  # refused
        says("There are no TODOs in notes.txt."),
    ])  # fmt: skip
    session.submit(turn("how many TODOs are in notes.txt?"))
    events = await asyncio.wait_for(events_until(session), 60)
    assert engine.leads == ["", "", ""] and answers(events) == ["There are no TODOs in notes.txt."]
    assert records[-1].extra["local"]["check_failing"] == {"check": "grep -c TODO notes.txt", "exit_code": 1}
    await session.close()


async def test_a_follow_up_that_fails_leaves_the_answer_it_would_have_replaced(workspace: Path) -> None:
    """The follow-up's prompt is longer (the answer and the note): should it not fit the context
    window, the answer held back is given, with the request's usage, and the trace says so."""
    from codexbro.errors import ContextWindowExceeded

    (workspace / "check.py").write_text("import sys\nsys.exit('still broken')\n")
    session, engine, records = session_with(workspace, [
        calls("shell_command", {"command": "python3 check.py"}, "c1"),
        says("check.py prints: still broken."),
        ContextWindowExceeded("the prompt (8200 tokens) does not fit"),  # type: ignore[list-item]
    ])  # fmt: skip
    session.submit(turn("run check.py"))
    events = await asyncio.wait_for(events_until(session), 60)
    assert len(engine.prompts) == 3 and answers(events) == ["check.py prints: still broken."]
    assert shown_text(events) == "check.py prints: still broken."
    assert (
        records[-1].status == 200
        and records[-1].extra["local"]["followed_up"]["error"] == "ContextWindowExceeded"
    )
    await session.close()


async def test_a_failure_after_the_follow_up_showed_text_is_raised(workspace: Path) -> None:
    """Once the follow-up has streamed anything, its failure is the request's: the answer held
    back is not added after text already shown."""
    (workspace / "check.py").write_text("import sys\nsys.exit('still broken')\n")
    session, engine, records = session_with(workspace, [
        calls("shell_command", {"command": "python3 check.py"}, "c1"),
        says("check.py prints: still broken."),
        says('{"name": "shell_command", "argu'),  # streamed, then refused as a call cut off
        RuntimeError("the engine went away"),  # type: ignore[list-item]
    ])  # fmt: skip
    session.submit(turn("run check.py"))
    events = await asyncio.wait_for(events_until(session), 60)
    assert len(engine.prompts) == 4 and "check.py prints: still broken." not in shown_text(events)
    assert "check.py prints: still broken." not in answers(events)
    assert records[-1].status is None and records[-1].error == "RuntimeError"
    await session.close()

"""Code mode under hostile scripts: each class of attack with a control that shows the script
works when it stays within bounds. Runtime-level tests drive ``runtime.start``/``run_until`` on the
real V8 host process; the end-to-end one goes through ``codexbro exec`` and the loopback fake."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from codexbro.tools.base import RespondToModel
from codexbro.tools.codemode import runtime
from codexbro.tools.codemode.handlers import answer, parse_pragma
from tests.conftest import run_cli, write_config
from tests.fakes.events import ev_completed, ev_created, ev_custom_tool_call, ev_function_call, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply

pytest.importorskip("py_mini_racer", reason="code mode needs mini-racer (a dependency of codexbro)")


async def run(
    code: str, yield_ms: int = 3000, stored: dict[str, Any] | None = None
) -> tuple[runtime.Cell, Any]:
    async def call_tool(name: str, args: Any) -> Any:
        await asyncio.sleep(0.05)
        return {"echo": args}

    cell = runtime.Cell("1")
    runtime.start(cell, code, call_tool=call_tool, names=["echo"], all_tools=[], stored=stored if stored is not None else {},
                  notify=lambda _t: None)  # fmt: skip
    seconds = await runtime.run_until(cell, yield_ms)
    out = answer(cell, seconds, 10_000).content
    await cell.terminate()
    return cell, out


async def test_a_busy_script_never_holds_the_session() -> None:
    """Output, a nested answer or yield_control followed by a loop that never awaits: the session's
    loop keeps running (a ticker advances), the cell yields on time and is killed on terminate."""
    for code in ('text("a"); while (true) {}', 'yield_control(); while (true) {}',
                 'tools.echo({}); await new Promise(r => setTimeout(r, 20)); while (true) {}'):  # fmt: skip
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        tick = asyncio.get_running_loop().create_task(ticker())
        started = time.monotonic()
        cell, _ = await run(code, yield_ms=1000)
        tick.cancel()
        assert time.monotonic() - started < 5, code
        assert ticks >= 10, (code, ticks)  # ~20 expected in 1 s: the loop was never held
        assert cell.status == "terminated"
    cell, out = await run('text("a"); let n = 0; while (n < 1e6) n++; text(n);')  # control: it ends
    assert cell.status == "completed" and "1000000" in json.dumps(out)


async def test_what_would_abort_v8_is_refused_in_the_script() -> None:
    cell, out = await run('store("k", "\\u00e9".repeat(2e6));')
    assert cell.status == "failed" and "RangeError: store: the value is larger than" in json.dumps(out)
    stored: dict[str, Any] = {}
    cell, _ = await run('store("k", "\\u00e9".repeat(1000)); text(load("k").length)', stored=stored)
    assert cell.status == "completed" and stored["k"] == "\u00e9" * 1000  # control


async def test_a_dead_host_is_a_failed_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory outside V8's heap (array buffers) past the bound kills the host; the cell fails and
    says why. Control: an allocation within the bound."""
    monkeypatch.setattr(runtime, "MAX_RSS", 300 << 20)
    cell, out = await run("const a = []; for (let i = 0; i < 8; i++) { const b = new Uint8Array(64 << 20);"
                          " b.fill(1); a.push(b); await new Promise(r => setTimeout(r, 300)); } text('kept');",
                          yield_ms=20_000)  # fmt: skip
    assert cell.status == "failed" and "more than 300 MiB of memory" in json.dumps(out), out
    cell, out = await run("const b = new Uint8Array(16 << 20); b.fill(1); text(b.length);")
    assert cell.status == "completed"


async def test_the_heap_limit_ends_the_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runtime.LIMITS, "heap", 64 << 20)
    cell, out = await run('const a = []; while (true) a.push("x".repeat(1000) + a.length);', yield_ms=20_000)
    assert cell.status == "failed" and "JavaScript heap" in json.dumps(out), out
    cell, _ = await run(
        'const a = []; for (let i = 0; i < 1000; i++) a.push("x".repeat(1000)); text(a.length)'
    )
    assert cell.status == "completed"


async def test_output_held_for_an_answer_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "MAX_HELD", 1 << 20)
    cell, out = await run('for (let i = 0; i < 8; i++) text("y".repeat(400000));')
    text = json.dumps(out)
    assert cell.status == "completed" and "bytes of output dropped" in text and len(text) < 1_300_000
    cell, out = await run('text("y".repeat(400000));')  # control
    assert "dropped" not in json.dumps(out)


def test_pragmas_that_are_not_numbers_are_refused() -> None:
    for bad in ('{"yield_time_ms": Infinity}', '{"yield_time_ms": NaN}', '{"max_output_tokens": -1}'):
        with pytest.raises(RespondToModel, match="pragma must be valid JSON"):
            parse_pragma(f"// @exec: {bad}\ntext(1)")
    assert parse_pragma('// @exec: {"yield_time_ms": 1e300}\ntext(1)')[0] == 3_600_000  # capped
    assert parse_pragma('// @exec: {"yield_time_ms": 500}\ntext(1)')[:2] == (500, 10_000)  # control


async def test_load_of_an_inherited_name_is_undefined() -> None:
    cell, out = await run(
        'text(load("toString")); text(load("constructor")); store("toString", 1); text(load("toString"))'
    )
    assert cell.status == "completed"
    assert [i["text"] for i in out[1:]] == ["undefined", "undefined", "1"]


def test_a_notify_after_the_call_answered_reaches_the_model(home: Path, fake: FakeResponsesServer,
                                                             workspace: Path) -> None:  # fmt: skip
    write_config(home, fake.base_url, model="gpt-5.6-luna")
    script = (
        '// @exec: {"yield_time_ms": 200}\nawait new Promise(r => setTimeout(r, 600));\nnotify("late-note");'
    )

    def wait(body: Any) -> list[dict[str, Any]]:
        return [ev_created("r2"), ev_function_call("w1", "wait", {"cell_id": "1", "yield_time_ms": 3000}),
                ev_completed("r2")]  # fmt: skip

    fake.add(Reply([ev_created(), ev_custom_tool_call("c1", "exec", script), ev_completed()]),
             Reply(dynamic=wait), Reply(message_turn("done")))  # fmt: skip
    res = run_cli("exec", "--skip-git-repo-check", "go", cwd=workspace)
    assert res.code == 0, res.stderr[-2000:]
    last = fake.bodies()[-1]["input"]
    notes = [i for i in last if i.get("type") == "custom_tool_call_output" and i.get("output") == "late-note"]
    assert notes and notes[0]["call_id"] == "c1"


async def test_a_nested_call_that_breaks_still_settles() -> None:
    """A handler failing in an unexpected way rejects the script's await (it used to hang it)."""

    async def broken(name: str, args: Any) -> Any:
        raise KeyError("gone")

    cell = runtime.Cell("1")
    runtime.start(cell, "try { await tools.echo({}); } catch (e) { text(String(e)); }", call_tool=broken,
                  names=["echo"], all_tools=[], stored={}, notify=lambda _t: None)  # fmt: skip
    seconds = await runtime.run_until(cell, 5000)
    out = json.dumps(answer(cell, seconds, 10_000).content)
    assert cell.status == "completed" and "tool echo failed: KeyError" in out


async def test_notify_is_bounded_per_script() -> None:
    notes: list[str] = []

    async def call_tool(name: str, args: Any) -> Any:
        return None

    cell = runtime.Cell("1")
    runtime.start(cell, "for (let i = 0; i < 100; i++) notify(i);", call_tool=call_tool, names=[],
                  all_tools=[], stored={}, notify=notes.append)  # fmt: skip
    seconds = await runtime.run_until(cell, 5000)
    out = json.dumps(answer(cell, seconds, 10_000).content)
    assert len(notes) == runtime.MAX_NOTES and "80 notify() calls dropped" in out
    assert notes[:3] == ["0", "1", "2"]  # control: the first ones arrive as sent


async def test_an_interrupted_turn_stops_its_scripts() -> None:
    from codexbro.tools.resources import ToolResources

    resources = ToolResources()
    state = resources.code_mode

    async def call_tool(name: str, args: Any) -> Any:
        return None

    cell = runtime.Cell(state.next_id())
    runtime.start(cell, "while (true) {}", call_tool=call_tool, names=[], all_tools=[], stored={},
                  notify=lambda _t: None)  # fmt: skip
    await runtime.run_until(cell, 300)
    state.cells[cell.cell_id] = cell
    resources.stop_scripts()
    await asyncio.wait_for(cell.done.wait(), 5)
    assert cell.status == "terminated" and cell.proc is not None and cell.proc.returncode is not None

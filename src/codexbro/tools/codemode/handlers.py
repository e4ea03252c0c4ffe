"""The ``exec`` and ``wait`` tools of code mode, and what a session keeps between their calls.

``exec`` (freeform): the input is JavaScript, optionally led by a pragma line
``// @exec: {"yield_time_ms": N, "max_output_tokens": N}``. It answers when the script ends or
after ``yield_time_ms`` (default 30 000) with what the script output so far; a script still running
is a *cell* the model resumes with ``wait {cell_id, yield_time_ms?, max_tokens?, terminate?}``.
Answers, as 0.169 words them::

    Script completed|failed|terminated|running with cell ID N
    Wall time 0.3 seconds
    Output:
    <one item per text()/image() call>[, "Script error:\n…"]

Nested calls (``tools.NAME(args)``) go to the same handlers as a direct call would, with the same
context (sandbox, approvals, events), under their own call ids; their answers reach the script as
0.169 types them (``exec_command``/``write_stdin`` as an object, ``view_image`` as
``{image_url}``, others as the text the model would have read).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Callable
from typing import Any, ClassVar

from codexbro.tools.base import (
    FunctionTool,
    RespondToModel,
    ToolCall,
    ToolContext,
    ToolHandler,
    ToolOutput,
    parse_arguments,
)
from codexbro.tools.codemode import runtime
from codexbro.tools.output import approx_tokens, formatted_truncate_text

DEFAULT_YIELD_MS = 30_000
DEFAULT_WAIT_MS = 10_000
DEFAULT_MAX_TOKENS = 10_000
MAX_MS = 3_600_000  # the longest yield_time_ms honoured (an hour)
_PRAGMA = re.compile(r"[ \t]*//[ \t]*@exec:(?P<json>[^\r\n]*)")
PRAGMA_ERROR = "exec pragma must be valid JSON with supported fields `yield_time_ms` and `max_output_tokens`"


class CodeModeState:
    """A session's cells (by id, numbered from 1 per session as 0.169) and ``store``d values."""

    def __init__(self) -> None:
        self.cells: dict[str, runtime.Cell] = {}
        self.stored: dict[str, Any] = {}
        self._ids = itertools.count(1)

    def next_id(self) -> str:
        return str(next(self._ids))

    async def aclose(self) -> None:
        for cell in list(self.cells.values()):
            await cell.terminate()
        self.cells.clear()


def js_name(name: str) -> str:
    """A tool name as a JavaScript identifier (``mcp__srv__get-item`` → ``mcp__srv__get_item``)."""
    ident = re.sub(r"[^A-Za-z0-9_$]", "_", name)
    return f"_{ident}" if ident[:1].isdigit() else ident


def parse_pragma(source: str) -> tuple[int, int, str]:
    """(yield_time_ms, max_output_tokens, code) from an ``exec`` input."""
    first, _, rest = source.partition("\n")
    m = _PRAGMA.fullmatch(first.rstrip("\r"))
    if m is None:
        return DEFAULT_YIELD_MS, DEFAULT_MAX_TOKENS, source
    try:
        options = json.loads(m.group("json"))
    except ValueError as exc:
        raise RespondToModel(f"{PRAGMA_ERROR}: {exc}") from None
    if not isinstance(options, dict) or set(options) - {"yield_time_ms", "max_output_tokens"}:
        raise RespondToModel(PRAGMA_ERROR)
    values = []
    for key, default in (("yield_time_ms", DEFAULT_YIELD_MS), ("max_output_tokens", DEFAULT_MAX_TOKENS)):
        value = options.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
            raise RespondToModel(f"{PRAGMA_ERROR}: `{key}` must be a non-negative number")
        values.append(min(int(value), MAX_MS if key == "yield_time_ms" else 1 << 30))
    return values[0], values[1], "\n" + rest  # the pragma line left empty: line numbers hold


def answer(cell: runtime.Cell, seconds: float, max_tokens: int) -> ToolOutput:
    """The model's view of a cell: status header, the items since the last answer, the error."""
    status = cell.status if cell.done.is_set() else f"running with cell ID {cell.cell_id}"
    header = f"Script {status}\nWall time {seconds:.1f} seconds\nOutput:\n"
    items = _budget(cell.take(), max_tokens)
    if cell.done.is_set() and cell.error is not None:
        error = formatted_truncate_text(cell.error, "tokens", max_tokens)
        items.append({"type": "input_text", "text": f"Script error:\n{error}"})
    if not items:
        return ToolOutput(header, success=cell.status != "failed")
    return ToolOutput([{"type": "input_text", "text": header}, *items], success=cell.status != "failed")


def _budget(items: list[dict[str, Any]], max_tokens: int) -> list[dict[str, Any]]:
    """Text items cut to ``max_tokens`` in all (0.169's warning header and middle cut)."""
    texts = [i for i in items if i.get("type") == "input_text"]
    if sum(approx_tokens(i["text"]) for i in texts) <= max_tokens:
        return items
    if len(texts) == 1:
        return [
            {"type": "input_text", "text": formatted_truncate_text(i["text"], "tokens", max_tokens)}
            if i is texts[0] else i
            for i in items
        ]  # fmt: skip
    joined = "\n".join(i["text"] for i in texts)
    rest = [i for i in items if i.get("type") != "input_text"]
    return [{"type": "input_text", "text": formatted_truncate_text(joined, "tokens", max_tokens)}, *rest]


_CHUNK = re.compile(
    r"Chunk ID: (?P<chunk>\S+)\nWall time: (?P<wall>[\d.]+) seconds\n"
    r"(?:Process exited with code (?P<code>-?\d+)\n|Process running with session ID (?P<session>\d+)\n)?"
    r"Original token count: (?P<tokens>\d+)\nOutput:\n(?P<output>.*)\Z",
    re.S,
)


def script_value(name: str, output: ToolOutput) -> Any:
    """A nested tool's answer as the script receives it."""
    content = output.content
    if isinstance(content, list):
        if name == "view_image":
            for part in content:
                if part.get("type") == "input_image":
                    return {"image_url": part.get("image_url")}
        return content
    if name in ("exec_command", "write_stdin") and (m := _CHUNK.match(content)):
        value: dict[str, Any] = {"chunk_id": m["chunk"], "wall_time_seconds": float(m["wall"])}
        if m["code"] is not None:
            value["exit_code"] = int(m["code"])
        if m["session"] is not None:
            value["session_id"] = int(m["session"])
        value["original_token_count"] = int(m["tokens"])
        value["output"] = m["output"]
        return value
    if name == "apply_patch" and output.success:
        return {}  # 0.169's answer to a script's successful patch (captured); a failure keeps its text
    if name == "clock__curr_time":
        return json.loads(content)
    return content


class ExecHandler:
    """``exec``: run a script with the session's other tools in reach (see the module doc)."""

    name = "exec"
    supports_parallel = True  # its nested calls take the router's lock themselves

    def __init__(self, state: CodeModeState, nested: dict[str, ToolHandler], spec: dict[str, Any],
                 all_tools: list[dict[str, str]], dispatch: Callable[..., Any]) -> None:  # fmt: skip
        self.state, self.nested, self._spec, self.all_tools = state, nested, spec, all_tools
        self.dispatch = dispatch  # the router's nested dispatch (lock, errors, events)

    def spec(self) -> dict[str, Any]:
        return self._spec

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        if call.kind != "custom":
            raise RespondToModel("exec handler received unsupported payload")
        if not runtime.available():
            raise RespondToModel(
                "exec is not available: the V8 binding (pip package mini-racer) is not installed"
            )
        yield_ms, max_tokens, code = parse_pragma(call.input)
        running = [c for c in self.state.cells.values() if not c.done.is_set()]
        if len(running) >= runtime.MAX_CELLS:
            raise RespondToModel(
                f"{len(running)} scripts are still running (cells "
                + ", ".join(c.cell_id for c in running)
                + "): wait for one to finish or stop one with `wait` and `terminate: true`"
            )
        cell = runtime.Cell(self.state.next_id())
        counter = itertools.count(1)

        async def call_tool(name: str, args: Any) -> Any:
            handler = self.nested.get(name)
            if handler is None:
                raise runtime.ToolError(f"unknown tool `{name}`")
            kind = "custom" if handler.spec().get("type") == "custom" else "function"
            if kind == "function" and not isinstance(args, dict):
                raise runtime.ToolError(f"tool `{name}` expects a JSON object for arguments")
            nested_id = f"{call.call_id}:{next(counter)}"
            if kind == "custom":
                text = args if isinstance(args, str) else json.dumps(args)
                nested = ToolCall(nested_id, name, "custom", input=text)
            else:
                nested = ToolCall(nested_id, name, "function", arguments=json.dumps(args))
            output, refused = await self.dispatch(nested, ctx)
            if refused:
                raise runtime.ToolError(str(output.content))
            return script_value(name, output)

        cell.call_id = call.call_id
        notify = notifier(ctx, call.call_id, max_tokens)
        runtime.start(cell, code, call_tool=call_tool, names=list(self.nested), all_tools=self.all_tools,
                      stored=self.state.stored, notify=notify)  # fmt: skip
        try:
            seconds = await runtime.run_until(cell, yield_ms)
        except BaseException:
            await cell.terminate()
            raise
        cell.notify = None  # from now on held for the next `wait`, whose turn gets them
        if not cell.done.is_set():
            self.state.cells[cell.cell_id] = cell
        return answer(cell, seconds, max_tokens)


class WaitHandler(FunctionTool):
    """``wait``: more output from a running cell, its end, or (``terminate``) its stop."""

    name = "wait"

    def __init__(self, state: CodeModeState, spec: dict[str, Any]) -> None:
        self.state, self._spec = state, spec

    def spec(self) -> dict[str, Any]:
        return self._spec

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        if call.kind != "function":
            raise RespondToModel("wait handler received unsupported payload")
        args = parse_arguments(call, self._spec["parameters"])
        cell_id = str(args["cell_id"])
        yield_ms = _number(args, "yield_time_ms", DEFAULT_WAIT_MS)
        max_tokens = _number(args, "max_tokens", DEFAULT_MAX_TOKENS)
        cell = self.state.cells.get(cell_id)
        if cell is None:
            missing = runtime.Cell(cell_id, status="failed", error=f"exec cell {cell_id} not found")
            missing.done.set()
            return answer(missing, 0.0, max_tokens)
        notify = notifier(ctx, cell.call_id, max_tokens)
        for text in cell.late_notes:
            notify(text)
        cell.late_notes.clear()
        if args.get("terminate") is True:
            await cell.terminate()
            cell.take()
            seconds = 0.0
        else:
            cell.notify = notify
            try:
                seconds = await runtime.run_until(cell, yield_ms)
            finally:
                cell.notify = None
        if cell.done.is_set():
            self.state.cells.pop(cell_id, None)
        return answer(cell, seconds, max_tokens)


def _number(args: dict[str, Any], key: str, default: int) -> int:
    value = args.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise RespondToModel(f"failed to parse function arguments: `{key}` must be a non-negative number")
    return min(int(value), MAX_MS if key == "yield_time_ms" else 1 << 30)


def notifier(ctx: ToolContext, call_id: str, max_tokens: int) -> Callable[[str], None]:
    """``notify()``: an extra ``custom_tool_call_output`` for the exec call, cut to the call's
    output budget, into the turn of the call that is running (the exec call, or a `wait`)."""

    def notify(text: str) -> None:
        if ctx.inject is not None:
            ctx.inject({"type": "custom_tool_call_output", "call_id": call_id, "name": "exec",
                        "output": formatted_truncate_text(text, "tokens", max_tokens)})  # fmt: skip

    return notify


class CurrTimeHandler(FunctionTool):
    """``clock__curr_time`` (nested only): the current UTC time."""

    name = "clock__curr_time"
    SPEC: ClassVar[dict[str, Any]] = {
        "type": "function", "name": "clock__curr_time", "description": "Return the current time in UTC.",
        "strict": False, "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
    }  # fmt: skip

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        self.args(call)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return ToolOutput(json.dumps({"current_time": now}))

"""One ``exec`` cell: a script running in a V8 isolate in a process of its own (``host.py``).

The script is the body of an async function, so top-level ``await`` works. What it sees besides
standard JavaScript (no Node, no file system, no network, no ``console``): ``tools.NAME(args)``,
``text``, ``image``, ``audio``, ``generatedImage``, ``store``, ``load``, ``notify``, ``exit``,
``setTimeout``/``clearTimeout``, ``ALL_TOOLS`` and ``yield_control``. Everything it hands back comes
as lines from the host process, read on the session's loop; the session never waits on the
isolate, and stops a script by killing its process — whatever the script is doing (a loop that never
yields, a heap or memory blow-up, a V8 abort all end as a failed or terminated cell, never as a hung
or dead session).

Bounds: the JavaScript heap (512 MiB), the host's resident memory (1 GiB, checked every 0.2 s), each
output item (1 MiB of text; images as ``view_image``'s 20 MiB), all output held for one answer
(8 MiB, the rest dropped with a note), stored values (1 MiB each, 8 MiB a session), an error's text
(64 KiB), a nested call's answer passed in (16 MiB).

Differences from 0.169, on purpose or unverified: a top-level ``return`` ends the script (0.169
evaluates a module, where it is a syntax error); stack traces name ``exec_main.mjs`` as 0.169's do,
with codexbro's own line numbers; ``audio`` and ``generatedImage`` items are said to be omitted
(codexbro does not send audio input).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Calls a nested tool: (name, decoded arguments or a plain string) -> the value. Raises
# ``ToolError`` with the text the script's promise is rejected with.
CallTool = Callable[[str, Any], Awaitable[Any]]
OMITTED = "{kind} content omitted because it could not be processed"
LIMITS = {"heap": 512 << 20, "value": 1 << 20, "stored": 8 << 20, "error": 64 << 10, "item": 2 << 20}
MAX_RSS = 1 << 30
MAX_ITEM = 1 << 20
MAX_HELD = 8 << 20
MAX_ANSWER = 16 << 20
MAX_IMAGE = 20 << 20
MAX_LINE = 64 << 20
MAX_NOTES = 20  # notify() items one cell may add to the history
MAX_CELLS = 8  # cells running at once in a session
_OPEN = "(async () => {"
_HOST = Path(__file__).with_name("host.py")


class ToolError(Exception):
    """A nested call that failed before or instead of running: the script's ``await`` throws it."""


@dataclass
class Cell:
    """A running (or finished) script. ``items`` collects what the script output since the last
    answer; ``done`` is set when it ended (``status`` completed | failed | terminated)."""

    cell_id: str
    call_id: str = ""  # the exec call that started it (notify() answers that call)
    items: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    yielded: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    proc: asyncio.subprocess.Process | None = None
    held: int = 0  # bytes of output held for the next answer
    dropped: int = 0  # bytes of output dropped past ``MAX_HELD``
    notify: Callable[[str], None] | None = None  # where notify() goes (the running call's turn)
    late_notes: list[str] = field(default_factory=list)  # notify() after the exec call answered
    notes: int = 0  # notify() calls so far (at most MAX_NOTES reach the history)

    def take(self) -> list[dict[str, Any]]:
        items, self.items, self.held = self.items, [], 0
        if self.notes > MAX_NOTES:
            items.append({"type": "input_text", "text": f"[{self.notes - MAX_NOTES} notify() calls dropped: "
                                                         f"at most {MAX_NOTES} per script reach the conversation]"})  # fmt: skip
            self.notes = MAX_NOTES
        if self.dropped:
            items.append({"type": "input_text", "text": f"[{self.dropped} bytes of output dropped: more than "
                                                         f"{MAX_HELD >> 20} MiB were held for one answer]"})  # fmt: skip
            self.dropped = 0
        return items

    def hold(self, item: dict[str, Any], size: int) -> None:
        if self.held + size > MAX_HELD:
            self.dropped += size
            return
        self.held += size
        self.items.append(item)

    async def terminate(self) -> None:
        if self.done.is_set() or self.status != "running":
            return
        self.status = "terminated"
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        self.done.set()


def available() -> bool:
    """Whether the V8 binding is installed (``mini-racer``)."""
    import importlib.util

    return importlib.util.find_spec("py_mini_racer") is not None


def valid_image(url: str) -> bool:
    """A base64 ``data:`` URL of an image the model can read, at most 20 MiB (0.169 says it omitted
    anything else: remote URLs, undecodable bytes, a PNG without its header chunk)."""
    from codexbro.protocol.images import image_mime

    if len(url) > MAX_IMAGE * 4 // 3 + 100:
        return False
    m = re.fullmatch(r"data:image/(?:png|jpeg|gif|webp);base64,([A-Za-z0-9+/=\s]*)", url, flags=re.S)
    if m is None:
        return False
    try:
        data = base64.b64decode(m.group(1), validate=False)
    except (binascii.Error, ValueError):
        return False
    mime = image_mime(data[:16])
    return mime is not None and len(data) > 16 and (mime != "image/png" or data[12:16] == b"IHDR")


def _error_text(stack: str, lines: int) -> str:
    """A script error as 0.169 shows it: the message (all its lines), then the frames in the script."""
    message, frames = [], []
    for i, line in enumerate(stack.split("\n")):
        if i and line.startswith("    at "):
            frames.append(line)
        elif not frames:
            message.append(line)
    kept = []
    for frame in frames:
        m = re.search(r"<anonymous>:(\d+):(\d+)", frame)
        if m is None or int(m.group(1)) > lines:
            continue
        column = int(m.group(2)) - (len(_OPEN) if m.group(1) == "1" else 0)
        kept.append(frame[: m.start()] + f"exec_main.mjs:{m.group(1)}:{max(column, 1)}" + frame[m.end() :])
    return "\n".join([*message, *kept])


def start(cell: Cell, code: str, *, call_tool: CallTool, names: list[str], all_tools: list[dict[str, str]],
          stored: dict[str, Any], notify: Callable[[str], None]) -> None:  # fmt: skip
    """Start ``code`` in a new host process as ``cell``; returns at once (``cell.done`` tells the end)."""
    cell.notify = notify
    cell.task = asyncio.get_running_loop().create_task(_run(cell, code, call_tool, names, all_tools, stored))


async def _run(cell: Cell, code: str, call_tool: CallTool, names: list[str], all_tools: list[dict[str, str]],
               stored: dict[str, Any]) -> None:  # fmt: skip
    calls: set[asyncio.Task[None]] = set()
    watch: asyncio.Task[None] | None = None
    try:
        proc = cell.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", str(_HOST), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, limit=MAX_LINE,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        first = {"code": code, "open": _OPEN, "stored": stored, "all_tools": all_tools, "names": names,
                 "limits": LIMITS}  # fmt: skip
        proc.stdin.write(json.dumps(first, ensure_ascii=False).encode("utf-8", "replace") + b"\n")
        await proc.stdin.drain()
        watch = asyncio.get_running_loop().create_task(_watch_memory(cell, proc))
        lines = code.count("\n") + 1
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:  # a line past MAX_LINE
                cell.status, cell.error = "failed", "the script sent more output at once than codexbro reads"
                break
            try:
                message = json.loads(raw) if raw else None
            except ValueError:  # a line cut short: the host was killed while writing it
                message = None
            if message is None:  # the host is gone: say why, if nothing else has
                if cell.status == "running":
                    await proc.wait()
                    cell.status = "failed"
                    cell.error = (
                        cell.error
                        or f"the script's V8 process ended unexpectedly (exit status {proc.returncode})"
                    )
                break
            kind = message.get("t")
            if kind == "done":
                if message.get("ok"):
                    cell.status = "completed"
                else:
                    error = str(message.get("error"))
                    cell.status = "failed"
                    cell.error = error if message.get("parse") else _error_text(error, lines)
                break
            if kind == "call":
                task = asyncio.get_running_loop().create_task(_answer(proc, message, call_tool))
                calls.add(task)
                task.add_done_callback(calls.discard)
            else:
                _take(cell, message, stored)
    except asyncio.CancelledError:
        cell.status = "terminated"
        raise
    except Exception as exc:  # the process could not start, or spoke nonsense
        if cell.status == "running":
            cell.status, cell.error = "failed", f"{type(exc).__name__}: {exc}".strip()
    finally:
        for task in list(calls):
            task.cancel()
        if watch is not None:
            watch.cancel()
        if cell.proc is not None and cell.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                cell.proc.kill()
            with contextlib.suppress(BaseException):
                await asyncio.shield(cell.proc.wait())
        cell.done.set()


def _take(cell: Cell, message: dict[str, Any], stored: dict[str, Any]) -> None:
    """One thing the script handed back, under the bounds of the module doc."""
    kind, value = message.get("t"), str(message.get("v", ""))
    if kind == "text":
        if len(value) > MAX_ITEM:
            from codexbro.tools.output import formatted_truncate_text

            value = formatted_truncate_text(value, "bytes", MAX_ITEM)
        cell.hold({"type": "input_text", "text": value}, len(value))
    elif kind == "image":
        if valid_image(value):
            cell.hold({"type": "input_image", "image_url": value}, len(value))
        else:
            cell.hold({"type": "input_text", "text": OMITTED.format(kind="image")}, 60)
    elif kind == "omitted":
        cell.hold({"type": "input_text", "text": OMITTED.format(kind=value)}, 60)
    elif kind == "store":
        try:
            key = str(message.get("k"))
            others = sum(len(json.dumps(v)) for k, v in stored.items() if k != key)
            if others + len(value) > LIMITS["stored"]:  # cells running side by side each saw room
                cell.hold({"type": "input_text", "text": f"store({key!r}): not kept: more than "
                                                          f"{LIMITS['stored']} characters stored in this session"}, 100)  # fmt: skip
                return
            stored[key] = json.loads(value)
        except (ValueError, RecursionError):
            cell.hold({"type": "input_text", "text": f"store({message.get('k')!r}): the value was not kept "
                                                      "(nested too deeply)"}, 80)  # fmt: skip
    elif kind == "notify":
        cell.notes += 1
        if cell.notes > MAX_NOTES:
            return  # counted; said once with the next answer
        if cell.notify is not None:
            cell.notify(value)
        elif sum(len(n) for n in cell.late_notes) + len(value) <= MAX_HELD:
            cell.late_notes.append(value[:MAX_ITEM])
    elif kind == "yield":
        cell.yielded.set()


async def _answer(proc: asyncio.subprocess.Process, message: dict[str, Any], call_tool: CallTool) -> None:
    """Run a nested call and write its answer back (sized, UTF-8)."""
    raw = str(message.get("args", ""))
    answer: dict[str, Any] = {"id": message.get("id")}
    try:
        args = raw if message.get("raw") else json.loads(raw)
        answer["value"] = await call_tool(str(message.get("name")), args)
    except ToolError as exc:
        answer["error"] = str(exc)[: LIMITS["error"]]
    except (ValueError, RecursionError):
        answer["error"] = "the arguments are not valid JSON"
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # whatever went wrong, the script's await must settle
        answer["error"] = f"tool {message.get('name')} failed: {type(exc).__name__}: {exc}"[: LIMITS["error"]]
    data = json.dumps(answer, ensure_ascii=False)
    if len(data) > MAX_ANSWER:
        data = json.dumps({"id": answer["id"], "error": f"the answer is larger than {MAX_ANSWER >> 20} MiB"})
    if proc.stdin is not None and proc.returncode is None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            proc.stdin.write(data.encode("utf-8", "replace") + b"\n")
            await proc.stdin.drain()


async def _watch_memory(cell: Cell, proc: asyncio.subprocess.Process) -> None:
    """Kill a host whose resident memory passes ``MAX_RSS`` (array buffers and WebAssembly memory are
    outside V8's heap limit)."""
    statm = Path(f"/proc/{proc.pid}/statm")
    page = os.sysconf("SC_PAGE_SIZE")
    while proc.returncode is None:
        await asyncio.sleep(0.2)
        try:
            resident = int(_read(statm).split()[1]) * page
        except (OSError, ValueError, IndexError):
            return
        if resident > MAX_RSS:
            cell.error = f"RangeError: the script used more than {MAX_RSS >> 20} MiB of memory"
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            return


def _read(path: Path) -> str:
    """One small /proc file (a read that never blocks on disk)."""
    return path.read_text()


async def run_until(cell: Cell, yield_ms: int) -> float:
    """Wait until the cell ends, calls ``yield_control()``, or ``yield_ms`` passes; returns the
    seconds waited."""
    started = time.monotonic()
    waits = [asyncio.ensure_future(cell.done.wait()), asyncio.ensure_future(cell.yielded.wait())]
    try:
        await asyncio.wait(waits, timeout=yield_ms / 1000, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    cell.yielded.clear()  # consumed (a yield_control() while nobody waited counts for the next wait)
    await asyncio.sleep(0)  # a script that ends right after it yields is reported as ended
    return time.monotonic() - started

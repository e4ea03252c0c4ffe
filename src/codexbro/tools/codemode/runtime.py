"""One ``exec`` cell: a script running in its own V8 isolate (mini-racer, loaded on first use).

The script is the body of an async function, so top-level ``await`` works. What it sees besides
standard JavaScript (no Node, no file system, no network, no ``console``): ``tools.NAME(args)``,
``text``, ``image``, ``audio``, ``generatedImage``, ``store``, ``load``, ``notify``, ``exit``,
``setTimeout``/``clearTimeout`` (V8's own), ``ALL_TOOLS`` and ``yield_control``. Everything it hands
back reaches Python by a call of one host function, in the order the script made them; nothing is
ever read out of a running isolate, so a script stuck in a loop cannot block the session (it is
stopped by ``terminate``).

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
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# Calls a nested tool: (name, JSON arguments or a plain string) -> the value, JSON-encoded. Raises
# ``ToolError`` with the text the script's promise is rejected with.
CallTool = Callable[[str, Any], Awaitable[Any]]
OMITTED = "{kind} content omitted because it could not be processed"
HEAP_LIMIT = 512 * 1024 * 1024


class ToolError(Exception):
    """A nested call that failed before or instead of running: the script's ``await`` throws it."""


@dataclass
class Cell:
    """A running (or finished) script. ``items`` collects what the script output since the last
    yield; ``done`` is set when it ended (``status`` completed | failed | terminated)."""

    cell_id: str
    items: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    yielded: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    racer: Any = None

    def take(self) -> list[dict[str, Any]]:
        items, self.items = self.items, []
        return items

    async def terminate(self) -> None:
        if self.done.is_set():
            return
        self.status = "terminated"
        if self.racer is not None:
            with contextlib.suppress(Exception):
                self.racer.close()  # stops a script that is running JavaScript right now
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        self.done.set()


_PRELUDE = r"""
(host, stored, allTools, names) => {
  const EXIT = Symbol("exit");
  const asText = (v) => typeof v === "string" ? v : (() => {
    try { const s = JSON.stringify(v); return s === undefined ? String(v) : s; } catch (e) { return String(v); }
  })();
  const values = JSON.parse(stored);
  globalThis.text = (v) => { host("text", asText(v)); };
  globalThis.image = (v) => {
    let url = v;
    if (v && typeof v === "object") url = v.image_url ?? (v.type === "image" && v.data ? `data:${v.mimeType};base64,${v.data}` : undefined);
    host("image", typeof url === "string" ? url : "");
  };
  globalThis.audio = (v) => { host("omitted", "audio"); };
  globalThis.generatedImage = (v) => { host("image", v && typeof v.image_url === "string" ? v.image_url : ""); };
  globalThis.store = (key, value) => {
    const encoded = JSON.stringify(value);
    if (encoded === undefined) throw new TypeError("store: value is not serializable");
    values[String(key)] = JSON.parse(encoded);
    host("store", String(key), encoded);
  };
  globalThis.load = (key) => {
    const v = values[String(key)];
    return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
  };
  globalThis.notify = (v) => { host("notify", asText(v)); };
  globalThis.yield_control = () => { host("yield"); };
  globalThis.exit = () => { throw EXIT; };
  globalThis.ALL_TOOLS = Object.freeze(JSON.parse(allTools).map((t) => Object.freeze(t)));
  const tools = {};
  for (const name of JSON.parse(names)) {
    tools[name] = async (args) => {
      const answer = JSON.parse(await host("call", name, typeof args === "string" ? args : JSON.stringify(args ?? {}), typeof args === "string"));
      if ("error" in answer) throw answer.error;
      return answer.value;
    };
  }
  globalThis.tools = Object.freeze(tools);
  delete globalThis.console;
  // mini-racer's timers wait with Atomics.waitAsync, which answers a 0 ms wait synchronously and
  // then fails: every delay is at least 1 ms.
  const timer = globalThis.setTimeout;
  globalThis.setTimeout = (callback, delay, ...args) => timer(callback, Math.max(1, Number(delay) || 0), ...args);
  // The script starts from a timer, so the call that starts it returns at once: a script that
  // never awaits cannot hold the session (it is stopped by closing the isolate).
  return (main) => new Promise((resolve) => setTimeout(async () => {
    try { await main(); resolve(JSON.stringify({ ok: true })); }
    catch (e) {
      if (e === EXIT) { resolve(JSON.stringify({ ok: true })); return; }
      const stack = e instanceof Error && typeof e.stack === "string" ? e.stack : String(e);
      resolve(JSON.stringify({ ok: false, error: stack }));
    }
  }, 1));
}
"""


def _racer() -> Any:
    from py_mini_racer import MiniRacer

    racer = MiniRacer()
    racer.set_hard_memory_limit(HEAP_LIMIT)
    return racer


def available() -> bool:
    """Whether the V8 binding is installed (``mini-racer``)."""
    import importlib.util

    return importlib.util.find_spec("py_mini_racer") is not None


def _error_text(stack: str, lines: int) -> str:
    """A script error as 0.169 shows it: the message, then the frames inside the script."""
    first, *frames = stack.split("\n")
    kept = []
    for frame in frames:
        m = re.search(r"<anonymous>:(\d+):(\d+)", frame)
        if m is None or int(m.group(1)) > lines:
            continue
        column = int(m.group(2)) - (len(_OPEN) if m.group(1) == "1" else 0)
        kept.append(frame[: m.start()] + f"exec_main.mjs:{m.group(1)}:{column}" + frame[m.end() :])
    return "\n".join([first, *kept])


_OPEN = "(async () => {"


def _parse_error(exc: Exception) -> str:
    """V8's parse error, reduced to its last line (``SyntaxError: …``) as 0.169 shows it."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else "SyntaxError"


def valid_image(url: str) -> bool:
    """A base64 ``data:`` URL of an image the model can read (0.169 says it omitted anything else:
    remote URLs, undecodable bytes, a PNG without its header chunk)."""
    from codexbro.protocol.images import image_mime

    m = re.fullmatch(r"data:image/[\w.+-]+;base64,([A-Za-z0-9+/=\s]*)", url, flags=re.S)
    if m is None:
        return False
    try:
        data = base64.b64decode(m.group(1), validate=False)
    except (binascii.Error, ValueError):
        return False
    mime = image_mime(data[:16])
    return mime is not None and len(data) > 16 and (mime != "image/png" or data[12:16] == b"IHDR")


def start(cell: Cell, code: str, *, call_tool: CallTool, names: list[str], all_tools: list[dict[str, str]],
          stored: dict[str, Any], notify: Callable[[str], None]) -> None:  # fmt: skip
    """Start ``code`` in a new isolate as ``cell``; returns at once (``cell.done`` tells the end)."""
    cell.task = asyncio.get_running_loop().create_task(
        _run(cell, code, call_tool, names, all_tools, stored, notify)
    )


async def _run(cell: Cell, code: str, call_tool: CallTool, names: list[str], all_tools: list[dict[str, str]],
               stored: dict[str, Any], notify: Callable[[str], None]) -> None:  # fmt: skip
    async def host(kind: Any, *args: Any) -> Any:
        if kind == "text":
            cell.items.append({"type": "input_text", "text": str(args[0])})
        elif kind == "image":
            url = str(args[0])
            if valid_image(url):
                cell.items.append({"type": "input_image", "image_url": url})
            else:
                cell.items.append({"type": "input_text", "text": OMITTED.format(kind="image")})
        elif kind == "omitted":
            cell.items.append({"type": "input_text", "text": OMITTED.format(kind=str(args[0]))})
        elif kind == "store":
            stored[str(args[0])] = json.loads(str(args[1]))
        elif kind == "notify":
            notify(str(args[0]))
        elif kind == "yield":
            cell.yielded.set()
        elif kind == "call":
            raw = str(args[1])
            try:
                value = await call_tool(str(args[0]), raw if args[2] else json.loads(raw))
            except ToolError as exc:
                return json.dumps({"error": str(exc)})
            return json.dumps({"value": value})
        return None

    try:
        racer = cell.racer = _racer()
        async with racer.wrap_py_function(host) as host_fn:
            runner = racer.eval(_PRELUDE)(
                host_fn, json.dumps(stored), json.dumps(all_tools), json.dumps(names)
            )
            try:
                main = racer.eval(f"{_OPEN}{code}\n}})")
            except Exception as exc:  # a syntax error: nothing ran
                if type(exc).__name__ != "JSParseException":
                    raise
                cell.status, cell.error = "failed", _parse_error(exc)
                return
            answer = json.loads(await runner(main))
            if answer.get("ok"):
                cell.status = "completed"
            else:
                cell.status = "failed"
                cell.error = _error_text(str(answer.get("error")), code.count("\n") + 1)
    except asyncio.CancelledError:
        cell.status = "terminated"
        raise
    except Exception as exc:  # the isolate ran out of memory, was closed, or the binding failed
        if cell.status == "running":
            cell.status, cell.error = "failed", f"{type(exc).__name__}: {exc}".strip()
    finally:
        if cell.racer is not None:
            with contextlib.suppress(Exception):
                cell.racer.close()
        cell.done.set()


async def run_until(cell: Cell, yield_ms: int) -> float:
    """Wait until the cell ends, calls ``yield_control()``, or ``yield_ms`` passes; returns the
    seconds waited."""
    started = time.monotonic()
    cell.yielded.clear()
    waits = [asyncio.ensure_future(cell.done.wait()), asyncio.ensure_future(cell.yielded.wait())]
    try:
        await asyncio.wait(waits, timeout=yield_ms / 1000, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    # a script that ends right after it yields is reported as ended
    await asyncio.sleep(0)
    return time.monotonic() - started

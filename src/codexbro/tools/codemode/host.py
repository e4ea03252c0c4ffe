"""The process one ``exec`` cell runs in: a V8 isolate (mini-racer) and a line protocol with the
session (``runtime.py``). Run as a script (``python -I host.py``); it imports nothing of codexbro.

Why a process of its own: mini-racer reads a host call's arguments and resolves its promise
synchronously against the isolate, so a script computing on the session's thread would hold the
whole session (and Ctrl-C) until it yields; and V8 aborts the process on some failures (a string
past its maximum length). Here the session only reads lines and kills the process to stop a script,
whatever it is doing. (0.169 also runs its V8 host as a separate process.)

Lines in (JSON): first ``{"code", "stored", "all_tools", "names", "limits"}``, then answers to
nested calls ``{"id", "value"}`` or ``{"id", "error"}``. Lines out: ``{"t": "text"|"image"|
"omitted"|"store"|"notify"|"yield", …}``, ``{"t": "call", "id", "name", "args", "raw"}`` and one
``{"t": "done", "ok", "error"?}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from typing import Any

_write_lock = threading.Lock()


def send(message: dict[str, Any]) -> None:
    data = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8", "replace")
    with _write_lock:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


PRELUDE = r"""
(host, stored, allTools, names, limitsJson) => {
  const limits = JSON.parse(limitsJson);
  const stringify = JSON.stringify, parse = JSON.parse, hasOwn = Object.prototype.hasOwnProperty;
  const EXIT = Symbol("exit");
  let finish = null;
  const done = new Promise((resolve) => { finish = resolve; });
  const end = (e) => {
    if (e === EXIT) { finish({ ok: true }); return; }
    let text;
    try { text = e instanceof Error && typeof e.stack === "string" ? e.stack : String(e); }
    catch (_) { text = "a value that cannot be shown"; }
    finish({ ok: false, error: text.slice(0, limits.error) });
  };
  const asText = (v) => {
    if (typeof v === "string") return v;
    try { const s = stringify(v); return s === undefined ? String(v) : s; } catch (e) { return String(v); }
  };
  const values = Object.assign(Object.create(null), parse(stored));
  const sizes = Object.create(null);
  for (const k of Object.keys(values)) sizes[k] = stringify(values[k]).length;
  let storedSize = Object.values(sizes).reduce((a, b) => a + b, 0);
  // A value past the item bound is cut here, head and tail kept (the session cuts it further):
  // one line of the protocol stays far below what the session reads.
  const cut = (s) => s.length <= limits.item ? s : s.slice(0, limits.item / 2) + `\n…${s.length - limits.item} characters cut…\n` + s.slice(s.length - limits.item / 2);
  globalThis.text = (v) => { host("text", cut(asText(v))); };
  globalThis.image = (v) => {
    let url = v;
    if (v && typeof v === "object") url = v.image_url ?? (v.type === "image" && v.data ? `data:${v.mimeType};base64,${v.data}` : undefined);
    host("image", typeof url === "string" ? url : "");
  };
  globalThis.audio = (v) => { host("omitted", "audio"); };
  globalThis.generatedImage = (v) => { host("image", v && typeof v.image_url === "string" ? v.image_url : ""); };
  globalThis.store = (key, value) => {
    const encoded = stringify(value);
    if (encoded === undefined) throw new TypeError("store: the value cannot be serialized as JSON");
    if (encoded.length > limits.value) throw new RangeError(`store: the value is larger than ${limits.value} characters`);
    const k = String(key);
    const grown = storedSize - (sizes[k] ?? 0) + encoded.length;
    if (grown > limits.stored) throw new RangeError(`store: more than ${limits.stored} characters are stored in this session`);
    storedSize = grown;
    sizes[k] = encoded.length;
    values[String(key)] = parse(encoded);
    host("store", String(key), encoded);
  };
  globalThis.load = (key) => {
    const k = String(key);
    return hasOwn.call(values, k) ? parse(stringify(values[k])) : undefined;
  };
  globalThis.notify = (v) => { host("notify", cut(asText(v))); };
  globalThis.yield_control = () => { host("yield"); };
  globalThis.exit = () => { throw EXIT; };
  globalThis.ALL_TOOLS = Object.freeze(parse(allTools).map((t) => Object.freeze(t)));
  const tools = Object.create(null);
  for (const name of parse(names)) {
    tools[name] = async (args) => {
      const raw = typeof args === "string";
      const answer = parse(await host("call", name, raw ? args : (stringify(args ?? {}) ?? "{}"), raw));
      if (hasOwn.call(answer, "error")) throw answer.error;
      return answer.value;
    };
  }
  globalThis.tools = Object.freeze(tools);
  delete globalThis.console;
  // mini-racer's timers wait with Atomics.waitAsync, which answers a 0 ms wait synchronously and
  // then fails: every delay is at least 1 ms. A callback's exit() or error ends the script.
  const timer = globalThis.setTimeout;
  globalThis.setTimeout = (callback, delay, ...args) => timer(() => {
    try { if (typeof callback === "function") callback(...args); } catch (e) { end(e); }
  }, Math.max(1, Number(delay) || 0));
  return (main) => {
    timer(async () => { try { await main(); finish({ ok: true }); } catch (e) { end(e); } }, 1);
    return done.then((r) => stringify(r));
  };
}
"""


async def main() -> None:
    from py_mini_racer import MiniRacer

    loop = asyncio.get_running_loop()
    first = json.loads(sys.stdin.buffer.readline())
    limits = first["limits"]
    pending: dict[int, asyncio.Future[str]] = {}
    ids = iter(range(1, 1 << 62))

    def on_line(line: bytes) -> None:
        if not line:  # the session went away
            os._exit(0)
        answer = json.loads(line)
        fut = pending.pop(int(answer["id"]), None)
        if fut is not None and not fut.done():
            fut.set_result(json.dumps({k: v for k, v in answer.items() if k != "id"}, ensure_ascii=False))

    def reader() -> None:
        for line in iter(sys.stdin.buffer.readline, b""):
            loop.call_soon_threadsafe(on_line, line)
        loop.call_soon_threadsafe(on_line, b"")

    threading.Thread(target=reader, daemon=True).start()

    racer = MiniRacer()
    racer.set_hard_memory_limit(limits["heap"])

    def watch() -> None:  # V8 stops a script at the heap limit; the promise never settles
        import time

        while True:
            time.sleep(0.1)
            if racer.was_hard_memory_limit_reached():
                send({"t": "done", "ok": False, "error": f"RangeError: the script used more than "
                      f"{limits['heap'] >> 20} MiB of JavaScript heap"})  # fmt: skip
                os._exit(0)

    threading.Thread(target=watch, daemon=True).start()

    async def host(kind: Any, *args: Any) -> Any:
        kind = str(kind)
        if kind == "call":
            number = next(ids)
            fut: asyncio.Future[str] = loop.create_future()
            pending[number] = fut
            send(
                {"t": "call", "id": number, "name": str(args[0]), "args": str(args[1]), "raw": bool(args[2])}
            )
            return await fut
        if kind == "store":
            send({"t": "store", "k": str(args[0]), "v": str(args[1])})
        elif kind in ("text", "image", "omitted", "notify"):
            send({"t": kind, "v": str(args[0]) if args else ""})
        elif kind == "yield":
            send({"t": "yield"})
        return None

    async with racer.wrap_py_function(host) as host_fn:
        prelude: Any = racer.eval(PRELUDE)
        runner: Any = prelude(
            host_fn, json.dumps(first["stored"], ensure_ascii=False), json.dumps(first["all_tools"]),
            json.dumps(first["names"]), json.dumps(limits),
        )  # fmt: skip
        try:
            entry: Any = racer.eval(f"{first['open']}{first['code']}\n}})")
        except Exception as exc:  # a syntax error: nothing ran
            lines = [line for line in str(exc).splitlines() if line.strip()]
            send({"t": "done", "ok": False, "error": lines[-1] if lines else "SyntaxError", "parse": True})
            os._exit(0)
        result = json.loads(await runner(entry))
    send({"t": "done", **result})
    os._exit(0)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BaseException as exc:  # the binding failed: say so on the protocol
        send({"t": "done", "ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]})
        os._exit(1)

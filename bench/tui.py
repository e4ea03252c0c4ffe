"""Interactive TUI figures (a script that prints numbers, not a test).

    python bench/tui.py [--runs N]

(a) first paint: from spawning ``codexbro`` in a pseudo-terminal to the status line on screen;
(b) a 500-turn session resumed: from spawning ``codexbro resume ID`` to its last answer on screen;
(c) a keystroke in that session: from the key event to the composer holding it (in process; the
    repaint follows at the next frame), median of 60 at a typist's pace.

Targets on a 2-core machine (issue 16): (a) ≤ 0.7 s, (b) ≤ 2 s, (c) ≤ 50 ms. Nothing leaves the machine: the
model is the in-repo fake on 127.0.0.1 (and no request is made).
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import codexbro_argv, compile_bytecode  # noqa: E402


def until_shown(argv: list[str], cwd: Path, env: dict[str, str], marker: bytes, timeout: float = 30) -> float:
    """Seconds from spawn until ``marker`` appears on the pseudo-terminal."""
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env={**env, "COLUMNS": "120", "LINES": "40"}, stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True)  # fmt: skip
    os.close(slave)
    seen = b""
    try:
        while time.perf_counter() - started < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
                if marker in seen:
                    return time.perf_counter() - started
        raise SystemExit(f"{marker!r} never appeared; last output: {seen[-800:]!r}")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)


def write_long_session(home: Path, cwd: Path, turns: int) -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from codexbro.core.rollout import RolloutRecorder, new_thread_id
    from codexbro.protocol.items import user_message

    thread_id = new_thread_id()
    recorder = RolloutRecorder(home, thread_id)
    recorder.write("session_meta", {"id": thread_id, "cwd": str(cwd), "originator": "bench", "cli_version": "0",
                                    "model_provider": "fake"})  # fmt: skip
    for n in range(turns):
        recorder.item(user_message(f"question {n}: what about this part of the code?"))
        recorder.item({"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": f"Answer {n}: **it works** like this.\n\n```python\nprint({n})\n```"}]})  # fmt: skip
    recorder.write("turn_context", {"model": "gpt-5.1-codex", "cwd": str(cwd)})
    recorder.close()
    return thread_id


def keystroke_ms(home: Path, cwd: Path, thread_id: str) -> float:
    import asyncio

    os.environ["CODEXBRO_HOME"] = str(home)
    from codexbro.composition import SessionOptions, start_session
    from codexbro.config.loader import Overrides, load_config
    from codexbro.core.rollout import find_rollout, load_rollout
    from codexbro.tui.app import CodexbroApp

    async def run() -> float:
        config = load_config(Overrides(cwd=cwd))
        loaded = load_rollout(find_rollout(home, thread_id))
        app = CodexbroApp(
            start_session(config, SessionOptions(interactive=True, resume=loaded, ephemeral=True))
        )
        timings = []
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.5)
            from textual import events

            composer = app.query_one("#composer")
            for n in range(60):
                # The key as the driver delivers it (pilot.press adds ~60 ms of its own waiting).
                started = time.perf_counter()
                composer.post_message(events.Key("x", "x"))
                while composer.text.count("x") < n + 1:  # type: ignore[attr-defined]
                    await asyncio.sleep(0.0005)
                timings.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)  # a typist's pace: the screen refresh in between
        await app.session.close()
        return statistics.median(timings) * 1000

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    compile_bytecode()
    with tempfile.TemporaryDirectory() as tmp:
        home, cwd = Path(tmp) / "home", Path(tmp) / "ws"
        home.mkdir()
        (cwd / ".git").mkdir(parents=True)
        (home / "config.toml").write_text(
            'model = "gpt-5.1-codex"\nmodel_provider = "fake"\n[model_providers.fake]\nname = "fake"\n'
            'base_url = "http://127.0.0.1:9/v1"\nrequires_openai_auth = false\n'
        )
        env = {**os.environ, "CODEXBRO_HOME": str(home), "TERM": "xterm-256color"}
        thread_id = write_long_session(home, cwd, 500)
        argv = codexbro_argv()
        paint = [until_shown(argv, cwd, env, b"tokens") for _ in range(args.runs)]
        resume = [
            until_shown([*argv, "resume", thread_id], cwd, env, b"Answer 499") for _ in range(args.runs)
        ]
        key = keystroke_ms(home, cwd, thread_id) / 1000
    rows = [
        ("first paint", statistics.median(paint), 0.7),
        ("500-turn resume", statistics.median(resume), 2.0),
        ("keystroke (500 turns)", key, 0.05),
    ]
    print(f"codexbro TUI bench ({args.runs} runs each, median)")
    for name, value, target in rows:
        print(
            f"{name:<22} {value * 1000:6.0f} ms   ≤ {target * 1000:.0f} ms   {'ok' if value <= target else 'MISS'}"
        )


if __name__ == "__main__":
    main()

"""Long sessions (issue 19.4): what one request costs the client at turn N of a long conversation —
building the prompt from the history, serialising the body as it is sent — and how memory grows
with the history. A script that prints figures, not a test.

    python bench/long_session.py

The session is real (``composition.open_session`` over a resumed rollout): N turns, each a user
message, a shell call with ~1 KB of output and a short answer. ``preview_request`` builds exactly
the body a turn would send (and serialises it); recording is one line appended per item, measured
apart. Memory is the process's RSS after loading the history.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

TURNS = (100, 250, 500)
TARGET_MS = 5.0


def write_session(home: Path, cwd: Path, turns: int) -> str:
    from codexbro.core.rollout import RolloutRecorder, new_thread_id

    thread_id = new_thread_id()
    rec = RolloutRecorder(home, thread_id)
    rec.write("session_meta", {"id": thread_id, "cwd": str(cwd), "originator": "bench", "cli_version": "0",
                               "timestamp": "2026-12-02T00:00:00Z", "model_provider": "fake"})  # fmt: skip
    for n in range(turns):
        rec.item(
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": f"step {n}: run ls"}],
            }
        )
        rec.item({"type": "function_call", "call_id": f"c{n}", "name": "shell_command",
                  "arguments": json.dumps({"command": "ls -la"})})  # fmt: skip
        rec.item({"type": "function_call_output", "call_id": f"c{n}", "output": ("file.txt " * 110)[:1000]})
        rec.item(
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": f"done {n}"}],
            }
        )
    rec.close()
    return thread_id


async def measure(home: Path, cwd: Path, thread_id: str) -> tuple[float, float, int]:
    """(median ms to build and serialise a request, ms to record one item, body bytes)."""
    from codexbro.composition import SessionOptions, open_session, resolve
    from codexbro.config.loader import Overrides, load_config
    from codexbro.core.rollout import find_rollout, load_rollout
    from codexbro.textsafe import json_bytes

    config = load_config(Overrides(cwd=cwd, flags={"model_provider": "fake"}))
    loaded = load_rollout(find_rollout(home, thread_id))
    session = open_session(resolve(config, earlier=loaded), SessionOptions(resume=loaded))
    try:
        times, size = [], 0
        for _ in range(15):
            started = time.perf_counter()
            preview = session.preview_request("next step")
            size = len(json_bytes(preview.body))  # as the request is sent
            times.append((time.perf_counter() - started) * 1000)
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x" * 200}]}
        started = time.perf_counter()
        for _ in range(200):
            session.recorder.item(item)
        record_ms = (time.perf_counter() - started) * 1000 / 200
        return statistics.median(times), record_ms, size
    finally:
        await session.close()


def main() -> None:
    print(f"long sessions: per-request client cost at turn N (target ≤ {TARGET_MS:g} ms at 500), memory")
    print(f"{'turns':>6}{'build+serialise':>18}{'record/item':>14}{'body KiB':>10}{'RSS MiB':>9}")
    for turns in TURNS:
        with tempfile.TemporaryDirectory() as tmp:
            home, cwd = Path(tmp) / "home", Path(tmp) / "ws"
            home.mkdir()
            (cwd / ".git").mkdir(parents=True)
            (home / "config.toml").write_text(
                'model = "gpt-5.1-codex"\n[model_providers.fake]\nname = "fake"\nbase_url = "http://127.0.0.1:9/v1"\n'
                'env_key = "BENCH_KEY"\n'
            )
            import os

            os.environ["CODEXBRO_HOME"] = str(home)
            os.environ["BENCH_KEY"] = "bench"
            thread_id = write_session(home, cwd, turns)
            build_ms, record_ms, size = asyncio.run(measure(home, cwd, thread_id))
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            verdict = "" if turns != 500 else ("  ok" if build_ms <= TARGET_MS else "  MISS")
            print(
                f"{turns:>6}{build_ms:>16.2f}ms{record_ms:>12.3f}ms{size / 1024:>10.0f}{rss:>9.1f}{verdict}"
            )


if __name__ == "__main__":
    main()

"""codexbro against the real Codex CLI, side by side, on the same scripted work (a script that prints
figures, not a test). Both run `exec` against the in-repo fake Responses server on 127.0.0.1, in
fresh homes, interleaved run by run so a noisy machine hurts both alike.

    python bench/vs_codex.py [--runs N]      # needs `codex` on PATH: npm install -g @openai/codex@0.169.0

Cases: a one-message turn; ten sequential shell calls (`true`) in each sandbox mode (read-only,
workspace-write, danger-full-access); one response with five parallel calls. Each program gets the
calls its model offers: codexbro's default model here (gpt-5.1-codex) has `shell_command`, Codex
0.169's models all use unified exec, so Codex gets `exec_command {cmd}` — the same commands, each
program's own tool. Figures: median wall time and max peak RSS (``wait4``), and the ratio
codexbro / Codex. When `codex` is absent, it says so and prints codexbro's figures alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.events import ev_completed, ev_created, ev_function_call, message_turn  # noqa: E402
from tests.fakes.responses_server import FakeResponsesServer, Reply  # noqa: E402

Call = Callable[[str, str], dict[str, Any]]


def codexbro_call(call_id: str, command: str) -> dict[str, Any]:
    return ev_function_call(call_id, "shell_command", {"command": command})


def codex_call(call_id: str, command: str) -> dict[str, Any]:
    return ev_function_call(call_id, "exec_command", {"cmd": command, "yield_time_ms": 10_000})


def one_message(_call: Call) -> list[Reply]:
    return [Reply(message_turn("hello"))]


def ten_sequential(call: Call) -> list[Reply]:
    replies = [Reply([ev_created(f"r{i}"), call(f"c{i}", "true"), ev_completed(f"r{i}")]) for i in range(10)]
    return [*replies, Reply(message_turn("done"))]


def five_parallel(call: Call) -> list[Reply]:
    calls = [call(f"p{i}", "sleep 0.2") for i in range(5)]
    return [Reply([ev_created(), *calls, ev_completed()]), Reply(message_turn("done"))]


CASES: list[tuple[str, Callable[[Call], list[Reply]], list[str]]] = [
    ("one-message turn", one_message, []),
    ("10 shell calls, read-only", ten_sequential, ["-s", "read-only"]),
    ("10 shell calls, workspace-write", ten_sequential, ["-s", "workspace-write"]),
    ("10 shell calls, full access", ten_sequential, ["--dangerously-bypass-approvals-and-sandbox"]),
    ("5 parallel calls", five_parallel, ["-s", "workspace-write"]),
]


def measure(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed: {err[-1500:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--markdown", action="store_true", help="also print the table for the README")
    args = parser.parse_args()
    codexbro = shutil.which("codexbro", path=str(Path(sys.executable).parent)) or shutil.which("codexbro")
    codex = shutil.which("codex")
    if codexbro is None:
        raise SystemExit("codexbro is not installed in this environment")
    sys.path.insert(0, str(ROOT / "bench"))
    from run import compile_bytecode  # as `pip install` does: figures of codexbro, not of the compiler

    compile_bytecode()
    if codex is None:
        print(
            "skipped: `codex` is not on PATH (npm install -g @openai/codex@0.169.0); codexbro's figures alone"
        )
    programs: list[tuple[str, list[str], Call]] = [("codexbro", [codexbro], codexbro_call)]
    if codex is not None:
        programs.append(("codex", [codex], codex_call))
    results: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp, FakeResponsesServer() as fake:
        ws = Path(tmp) / "ws"
        (ws / ".git").mkdir(parents=True)
        (ws / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
        homes = {}
        for name, _argv, _call in programs:
            home = Path(tmp) / f"home-{name}"
            home.mkdir()
            (home / "config.toml").write_text(
                'model = "gpt-5.1-codex"\nmodel_provider = "fake"\n[model_providers.fake]\nname = "fake"\n'
                f'base_url = "{fake.base_url}"\nenv_key = "BENCH_KEY"\n'
            )
            homes[name] = home
        for case, script, flags in CASES:
            for _ in range(args.runs):
                for name, argv, call in programs:  # interleaved: one run of each, then again
                    env = {**os.environ, "BENCH_KEY": "bench", "CODEXBRO_HOME": str(homes[name]),
                           "CODEX_HOME": str(homes[name])}  # fmt: skip
                    fake.add(*script(call))
                    wall, rss = measure(
                        [*argv, "exec", "--skip-git-repo-check", "--ephemeral", *flags, "go"], ws, env
                    )
                    walls, peaks = results.setdefault((case, name), ([], []))
                    walls.append(wall)
                    peaks.append(rss)
    print(f"codexbro vs Codex CLI ({args.runs} interleaved runs each; median wall, max peak RSS)")
    print(
        f"{'case':<34}{'codexbro':>10}{'codex':>10}{'ratio':>8}{'rss codexbro':>14}{'rss codex':>11}{'ratio':>8}"
    )
    for case, _script, _flags in CASES:
        ours_w, ours_r = results[(case, "codexbro")]
        line = f"{case:<34}{statistics.median(ours_w) * 1000:>8.0f}ms"
        if (case, "codex") in results:
            theirs_w, theirs_r = results[(case, "codex")]
            wall_ratio = statistics.median(ours_w) / statistics.median(theirs_w)
            rss_ratio = max(ours_r) / max(theirs_r)
            line += (f"{statistics.median(theirs_w) * 1000:>8.0f}ms{wall_ratio:>8.2f}{max(ours_r):>11.1f}MiB"
                     f"{max(theirs_r):>8.1f}MiB{rss_ratio:>8.2f}")  # fmt: skip
        else:
            line += f"{'-':>10}{'-':>8}{max(ours_r):>11.1f}MiB"
        print(line)
    if args.markdown:
        print_markdown(results, args.runs)


def print_markdown(results: dict[tuple[str, str], tuple[list[float], list[float]]], runs: int) -> None:
    """The README's table: the date, the machine, each figure and the ratio."""
    import platform

    cpus = os.cpu_count() or 0
    print(f"\n`bench/vs_codex.py --runs {runs}`, {time.strftime('%Y-%m-%d')}, {platform.machine()} "
          f"{cpus} cores, Linux {platform.release()}, Python {platform.python_version()}:\n")  # fmt: skip
    print("| case | codexbro | Codex 0.169 | ratio |")
    print("|---|---:|---:|---:|")
    for case, _script, _flags in CASES:
        ours = statistics.median(results[(case, "codexbro")][0]) * 1000
        if (case, "codex") not in results:
            print(f"| {case} | {ours:.0f} ms | – | – |")
            continue
        theirs = statistics.median(results[(case, "codex")][0]) * 1000
        print(f"| {case} | {ours:.0f} ms | {theirs:.0f} ms | {ours / theirs:.2f}× |")
    peaks = [max(results[(case, "codexbro")][1]) for case, _s, _f in CASES]
    if all((case, "codex") in results for case, _s, _f in CASES):
        theirs_peak = [max(results[(case, "codex")][1]) for case, _s, _f in CASES]
        print(f"| peak RSS (max over cases) | {max(peaks):.0f} MiB | {max(theirs_peak):.0f} MiB | "
              f"{max(peaks) / max(theirs_peak):.2f}× |")  # fmt: skip


if __name__ == "__main__":
    main()

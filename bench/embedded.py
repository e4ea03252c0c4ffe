"""Embedded offline model figures (a script that prints numbers, not a test). Issue 8.

    python bench/embedded.py [--model qwen2.5-coder-1.5b] [--home DIR] [--only N,M] [--skip-tasks]

Every run is a real ``codexbro exec`` process with no credentials and no network:

- cold: first request in a workspace with no saved KV state (model load + whole prompt);
- warm: the next ``exec`` in the same workspace (KV prefix restored from $CODEXBRO_HOME);
- tokens/s: generation speed, from the requests that wrote ≥ 8 tokens;
- tasks: simple agent tasks in a small git workspace, each judged by the state it leaves (files,
  answer text, commands run), run one after another in the same workspace path (so warm).

Timings come from the ``--trace`` file (``request`` records carry ``local`` figures). ``--home``
keeps the assembled weights between runs (default ``~/.cache/codexbro-bench``).
Targets on 2 cores: ≥ 8/10 tasks, warm first token ≤ 2 s, cold ≤ 25 s.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def codexbro_argv() -> list[str]:
    exe = shutil.which("codexbro", path=str(Path(sys.executable).parent)) or shutil.which("codexbro")
    return [exe] if exe else [sys.executable, "-m", "codexbro"]


@dataclass
class Outcome:
    final: str
    commands: list[str]
    requests: list[dict[str, object]]
    wall_s: float
    exit_code: int


FILES = {
    "README.md": "# Widget Factory\n\nA tiny demo project that builds widgets.\n",
    "main.py": 'def greet(name):\n    return f"Hello, {name}!"\n\n\nprint(greet("world"))\n',
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": "from calc import add\n\nassert add(2, 3) == 5, 'add is broken'\nprint('ok')\n",
    "data.txt": "".join(f"row {i}\n" for i in range(1, 8)),
    "tmp.txt": "scratch\n",
    "src/app.py": "# TODO: handle errors\nvalue = 1\n",
    "src/util.py": "def helper():\n    pass  # TODO: write the helper\n",
}


def make_workspace(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=path, check=True)
    for i, (name, text) in enumerate(FILES.items()):
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        if i in (1, 3, 5):
            subprocess.run([*git, "add", "-A"], cwd=path, check=True)
            subprocess.run([*git, "commit", "-qm", f"Add {name}"], cwd=path, check=True)


def run_exec(home: Path, workspace: Path, model: str, prompt: str, trace: Path) -> Outcome:
    env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
    env["CODEXBRO_HOME"] = str(home)
    argv = [*codexbro_argv(), "exec", "--json", "--full-auto", "--skip-git-repo-check",
            "--oss", "--local-provider", "embedded", "-m", model, "--trace", str(trace), prompt]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=workspace, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    final, commands = "", []
    for line in proc.stdout.splitlines():
        event = json.loads(line)
        item = event.get("item") or {}
        if event.get("type") == "item.completed" and item.get("type") == "agent_message":
            final = item.get("text", "")
        if event.get("type") == "item.completed" and item.get("type") == "command_execution":
            commands.append(item.get("command", ""))
        if event.get("type") == "item.completed" and item.get("type") == "file_change":
            commands.append("apply_patch " + " ".join(c.get("path", "") for c in item.get("changes", [])))
    requests = []
    if trace.exists():
        for line in trace.read_text().splitlines():
            record = json.loads(line)
            if record.get("kind") == "request" and record.get("local"):
                requests.append(record["local"])
            if record.get("kind") == "tool":
                commands.append(f"{record.get('tool')}")
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
    return Outcome(final, commands, requests, wall, proc.returncode)


def text_has(*words: str) -> Callable[[Path, Outcome], bool]:
    return lambda ws, out: all(w.lower() in out.final.lower() for w in words)


def ran(fragment: str) -> Callable[[Path, Outcome], bool]:
    return lambda ws, out: any(fragment in c for c in out.commands)


def both(*checks: Callable[[Path, Outcome], bool]) -> Callable[[Path, Outcome], bool]:
    return lambda ws, out: all(check(ws, out) for check in checks)


def file_is(name: str, text: str) -> Callable[[Path, Outcome], bool]:
    def check(ws: Path, out: Outcome) -> bool:
        path = ws / name
        return path.is_file() and path.read_text().strip() == text

    return check


def calc_fixed(ws: Path, out: Outcome) -> bool:
    probe = subprocess.run([sys.executable, "test_calc.py"], cwd=ws, capture_output=True, text=True)
    return probe.returncode == 0


def untouched_except(*allowed: str) -> Callable[[Path, Outcome], bool]:
    """No collateral damage: every other workspace file is as it was, and nothing else was added."""

    def check(ws: Path, out: Outcome) -> bool:
        for name, text in FILES.items():
            if name not in allowed and ((ws / name).read_text() if (ws / name).is_file() else None) != text:
                return False
        present = {str(p.relative_to(ws)) for p in ws.rglob("*") if ".git" not in p.parts and p.is_file()}
        return present <= set(FILES) | set(allowed)

    return check


# (prompt, check, files the task may change or create)
TASKS: list[tuple[str, Callable[[Path, Outcome], bool], tuple[str, ...]]] = [
    ("List the files in the current directory.", text_has("main.py", "calc.py"), ()),
    ("Show me what is in README.md.", text_has("Widget Factory"), ()),
    ("Create a file hello.txt that contains the line: hello world", file_is("hello.txt", "hello world"), ("hello.txt",)),
    ("Fix the bug in calc.py: add() subtracts instead of adding.", calc_fixed, ("calc.py",)),
    ("Run test_calc.py with python3 and tell me whether it passes.", both(ran("test_calc.py"), text_has("fail")), ()),
    ("How many lines does data.txt have?", text_has("7"), ()),
    ("Delete the file tmp.txt.", lambda ws, out: not (ws / "tmp.txt").exists(), ("tmp.txt",)),
    ("Show the last 3 git commits.", both(ran("git log"), text_has("Add ")), ()),
    ("Find all TODO comments in the src directory.", text_has("handle errors", "write the helper"), ()),
    ("Which Python version is installed on this machine?", both(ran("python"), text_has("3.")), ()),
    ("Create a directory named docs.", lambda ws, out: (ws / "docs").is_dir(), ()),
    ("What does the greet function in main.py return?", text_has("hello"), ()),
]  # fmt: skip


def first_token(out: Outcome) -> float:
    return float(out.requests[0]["first_token_s"]) if out.requests else float("nan")  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--home", default=str(Path.home() / ".cache" / "codexbro-bench"))
    parser.add_argument("--work", default="/tmp/codexbro-bench-ws")
    parser.add_argument("--only", default="", help="comma-separated task numbers (1-based)")
    parser.add_argument("--skip-tasks", action="store_true")
    args = parser.parse_args()
    home, work = Path(args.home), Path(args.work)
    home.mkdir(parents=True, exist_ok=True)
    lock = (home / "bench.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # two runs would share the workspace
    except BlockingIOError:
        print(f"another bench/embedded.py is running with --home {home}", file=sys.stderr)
        return 1
    traces = work.parent / (work.name + "-traces")
    traces.mkdir(parents=True, exist_ok=True)

    # Warm the weights (assembly and page cache) so "cold" measures the KV cache, not the disk.
    make_workspace(work)
    prime = run_exec(home, work, args.model, "Say hi.", traces / "prime.jsonl")
    shutil.rmtree(home / "cache" / "embedded", ignore_errors=True)

    make_workspace(work)
    cold = run_exec(home, work, args.model, "Say hello in one short sentence.", traces / "cold.jsonl")
    warm = run_exec(home, work, args.model, "In one sentence: what is a Python list?", traces / "warm.jsonl")
    print(f"model {args.model}")
    print(f"first run in this home (weights assembled and checked if needed) exec wall {prime.wall_s:6.2f} s")
    for name, out in (("cold", cold), ("warm", warm)):
        req = out.requests[0] if out.requests else {}
        print(f"{name:5} first token {first_token(out):6.2f} s  (prompt {req.get('prompt_tokens')} tokens, "
              f"reused {req.get('reused_tokens')}, restored {req.get('restored_tokens')}, load "
              f"{req.get('load_s')} s)  exec wall {out.wall_s:6.2f} s")  # fmt: skip

    speeds: list[float] = []
    firsts: list[float] = []
    if not args.skip_tasks:
        chosen = {int(n) for n in args.only.split(",") if n} or set(range(1, len(TASKS) + 1))
        passed = 0
        for number, (prompt, check, touches) in enumerate(TASKS, 1):
            if number not in chosen:
                continue
            make_workspace(work)
            out = run_exec(home, work, args.model, prompt, traces / f"task{number}.jsonl")
            ok = out.exit_code == 0 and check(work, out) and untouched_except(*touches)(work, out)
            passed += ok
            firsts.append(first_token(out))
            speeds += [float(r["tokens_per_s"]) for r in out.requests if int(r["output_tokens"]) >= 8]  # type: ignore[call-overload]
            print(f"task {number:2} {'PASS' if ok else 'FAIL'} {out.wall_s:6.1f} s  {prompt}")
            print(f"        calls: {out.commands}  answer: {out.final[:160]!r}")
        print(f"tasks {passed}/{len(chosen)} passed (target ≥ 8/10)")
    for out in (cold, warm):
        speeds += [float(r["tokens_per_s"]) for r in out.requests if int(r["output_tokens"]) >= 8]  # type: ignore[call-overload]
    if speeds:
        print(f"generation {statistics.median(speeds):.1f} tok/s median over {len(speeds)} requests")
    if firsts:
        print(f"task first token median {statistics.median(firsts):.2f} s, max {max(firsts):.2f} s")
    print(f"targets: cold ≤ 25 s ({first_token(cold):.1f}), warm ≤ 2 s ({first_token(warm):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

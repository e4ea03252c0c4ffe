"""Embedded offline model figures (a script that prints numbers, not a test). Issues 8 and 20.

    python bench/embedded.py [--model qwen2.5-coder-1.5b] [--home DIR] [--set dev|heldout|fresh|blind|all]
                             [--runs N] [--only N,M] [--skip-tasks]

Every run is a real ``codexbro exec`` process with no credentials and no network:

- cold: the first request ever (no saved KV state at all: model load + whole prompt);
- new workspace: the first request in a workspace never used before, after the first-ever run (the
  shared prefix — instructions, tools, worked examples — is restored; the request is not);
- warm: the next ``exec`` in the same workspace (its own prefix restored);
- tokens/s: generation speed, from the requests that wrote ≥ 8 tokens;
- tasks (``embedded_tasks.py``): agent tasks by category, each in a new workspace, judged by the
  state it leaves (files, answer text, commands run); ``heldout`` tasks are only measured, never
  tuned on; ``fresh`` tasks (``embedded_tasks_fresh.py``) were written by someone who had not seen
  the profile (instructions, worked examples) and are only measured; ``blind`` tasks
  (``embedded_tasks_blind.py``, written the same way after ``fresh`` had been read while tuning)
  print no prompt and no answer, so that whoever tunes the profile stays blind to them.

First-token times are from the start of the request, model load included ("after load" subtracts
it). Timings come from the ``--trace`` file (``request`` records carry ``local`` figures). ``--home``
keeps the assembled weights between runs (default ``~/.cache/codexbro-bench``).
Targets on 2 cores: ≥ 90 % of tasks, median task wall ≤ 12 s, first token in a new workspace
≤ 2 s, warm ≤ 1.5 s.
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
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedded_tasks import DEV, HELDOUT, PROJECT, Outcome, Task, make_workspace, untouched_except


def codexbro_argv() -> list[str]:
    exe = shutil.which("codexbro", path=str(Path(sys.executable).parent)) or shutil.which("codexbro")
    return [exe] if exe else [sys.executable, "-m", "codexbro"]


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


def first_token(out: Outcome, after_load: bool = False) -> float:
    if not out.requests:
        return float("nan")
    req = out.requests[0]
    return float(req["first_token_s"]) - (float(req["load_s"]) if after_load else 0.0)  # type: ignore[arg-type]


def describe(name: str, out: Outcome) -> str:
    req = out.requests[0] if out.requests else {}
    return (f"{name:13} first token {first_token(out):5.2f} s ({first_token(out, True):5.2f} s after load)  "
            f"prompt {req.get('prompt_tokens')} tokens, reused {req.get('reused_tokens')}, restored "
            f"{req.get('restored_tokens')} from {req.get('restored_from') or 'nothing'}, load {req.get('load_s')} s; "
            f"exec wall {out.wall_s:5.2f} s")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--home", default=str(Path.home() / ".cache" / "codexbro-bench"))
    parser.add_argument("--work", default="/tmp/cbx")
    parser.add_argument("--set", choices=("dev", "heldout", "fresh", "blind", "all"), default="all")
    parser.add_argument(
        "--runs", type=int, default=1, help="runs of the task suite (new workspaces each time)"
    )
    parser.add_argument("--only", default="", help="comma-separated task numbers (1-based, within the set)")
    parser.add_argument("--skip-tasks", action="store_true")
    args = parser.parse_args()
    home, work = Path(args.home), Path(args.work)
    home.mkdir(parents=True, exist_ok=True)
    lock = (home / "bench.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # two runs would share the workspaces
    except BlockingIOError:
        print(f"another bench/embedded.py is running with --home {home}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    traces = work / "traces"
    traces.mkdir(parents=True)

    # Warm the weights (assembly and page cache) so "cold" measures the KV cache, not the disk.
    make_workspace(work / "prime", PROJECT)
    prime = run_exec(home, work / "prime", args.model, "Say hi.", traces / "prime.jsonl")
    shutil.rmtree(home / "cache" / "embedded", ignore_errors=True)

    make_workspace(work / "first", PROJECT)
    cold = run_exec(
        home, work / "first", args.model, "Say hello in one short sentence.", traces / "cold.jsonl"
    )
    warm = run_exec(
        home, work / "first", args.model, "In one sentence: what is a Python list?", traces / "warm.jsonl"
    )
    make_workspace(work / "second", PROJECT)
    fresh = run_exec(
        home, work / "second", args.model, "Say hello in one short sentence.", traces / "new.jsonl"
    )
    print(f"model {args.model}")
    print(
        f"first run in this home (weights assembled and checked if needed): exec wall {prime.wall_s:6.2f} s"
    )
    for name, out in (("cold", cold), ("new workspace", fresh), ("warm", warm)):
        print(describe(name, out))

    speeds: list[float] = []
    walls: list[float] = []
    firsts: list[float] = []
    results: dict[tuple[str, str], list[bool]] = defaultdict(list)
    if not args.skip_tasks:
        from embedded_tasks_blind import BLIND
        from embedded_tasks_fresh import FRESH

        sets = {
            "dev": [("dev", DEV)],
            "heldout": [("heldout", HELDOUT)],
            "fresh": [("fresh", FRESH)],
            "blind": [("blind", BLIND)],
            "all": [("dev", DEV), ("heldout", HELDOUT), ("fresh", FRESH), ("blind", BLIND)],
        }
        chosen = {int(n) for n in args.only.split(",") if n}
        for run in range(1, args.runs + 1):
            for set_name, tasks in sets[args.set]:
                for number, task in enumerate(tasks, 1):
                    if chosen and number not in chosen:
                        continue
                    # neutral names: a 1.5B model reads the path (a "bench" directory made it call
                    # the project a benchmark)
                    ws = work / f"w{run}{set_name[0]}{number:02}"
                    make_workspace(ws, task.files)
                    out = run_exec(
                        home, ws, args.model, task.prompt, traces / f"r{run}-{set_name}-{number}.jsonl"
                    )
                    ok = _judge(task, ws, out)
                    results[(set_name, task.category)].append(ok)
                    walls.append(out.wall_s)
                    firsts.append(first_token(out))
                    speeds += [float(r["tokens_per_s"]) for r in out.requests if int(r["output_tokens"]) >= 8]  # type: ignore[call-overload]
                    shown = "(prompt not shown)" if set_name == "blind" else task.prompt
                    print(f"run {run} {set_name:7} {number:2} {task.category:7} {'PASS' if ok else 'FAIL'} "
                          f"{out.wall_s:5.1f} s  {shown}")  # fmt: skip
                    if set_name != "blind":
                        print(f"        calls: {out.commands}  answer: {out.final[:160]!r}")
                    elif not ok:  # what failed, without a word of the task
                        print(f"        exit {out.exit_code}, {len(out.requests)} requests, {len(out.commands)} "
                              f"calls, answer {len(out.final)} chars; check "
                              f"{'passed' if task.check(ws, out) else 'failed'}, other files "
                              f"{'untouched' if untouched_except(task.files, *task.touches)(ws, out) else 'changed'}")  # fmt: skip
        for set_name in ("dev", "heldout", "fresh", "blind"):
            rows = {cat: oks for (s, cat), oks in results.items() if s == set_name}
            if not rows:
                continue
            flat = [ok for oks in rows.values() for ok in oks]
            cells = ", ".join(f"{cat} {sum(oks)}/{len(oks)}" for cat, oks in rows.items())
            print(
                f"{set_name:7} {sum(flat)}/{len(flat)} passed ({100 * sum(flat) / len(flat):.0f} %): {cells}"
            )
        everything = [ok for oks in results.values() for ok in oks]
        print(f"all     {sum(everything)}/{len(everything)} passed ({100 * sum(everything) / len(everything):.0f} %), "
              f"over {args.runs} run(s); median task wall {statistics.median(walls):.1f} s "
              f"(target ≥ 90 %, ≤ 12 s)")  # fmt: skip
    for out in (cold, warm, fresh):
        speeds += [float(r["tokens_per_s"]) for r in out.requests if int(r["output_tokens"]) >= 8]  # type: ignore[call-overload]
    if speeds:
        print(f"generation {statistics.median(speeds):.1f} tok/s median over {len(speeds)} requests")
    if firsts:
        print(f"task first token median {statistics.median(firsts):.2f} s, max {max(firsts):.2f} s")
    print(f"targets: new workspace ≤ 2 s ({first_token(fresh):.2f}), warm ≤ 1.5 s ({first_token(warm):.2f})")
    return 0


def _judge(task: Task, ws: Path, out: Outcome) -> bool:
    return out.exit_code == 0 and task.check(ws, out) and untouched_except(task.files, *task.touches)(ws, out)


if __name__ == "__main__":
    sys.exit(main())

"""``codexbro batch``: the front end — reads the tasks, runs the local engine, shows progress on
stderr (one updating line on a terminal, a line per finished task otherwise)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from codexbro.batch.runner import Defaults, Progress, ResultsFile, run_local
from codexbro.batch.tasks import BadLine, parse_tasks


def _show(progress: Progress, result: dict[str, Any] | None, tty: bool) -> None:
    elapsed = max(1e-6, time.monotonic() - progress.started)
    rate = progress.done / elapsed
    left = progress.total - progress.done
    eta = f"{left / rate:.0f} s" if rate > 0 and left > 0 else "-"
    line = (f"[batch] {progress.done}/{progress.total} done, {progress.failed} failed, {progress.running} running, "
            f"{rate * 60:.1f}/min, ETA {eta}")  # fmt: skip
    if tty:
        sys.stderr.write("\r\x1b[2K" + line)
        if result is not None and progress.done == progress.total:
            sys.stderr.write("\n")
    elif result is not None:
        extra = f": {result['error']}" if result.get("error") else ""
        sys.stderr.write(
            f"[batch] {result['status']:<9} {result['id']} ({result.get('wall_s', 0):.1f} s){extra}\n"
        )
    sys.stderr.flush()


def run_batch(ns: argparse.Namespace) -> int:
    from codexbro.config.loader import Overrides, load_config
    from codexbro.errors import CodexbroError

    tasks_path = Path(ns.tasks)
    if not tasks_path.is_file():
        print(f"Error: {tasks_path} is not a file", file=sys.stderr)
        return 2
    if (ns.ray_address or ns.ray_task_cpus != 1.0) and ns.engine != "ray":
        print("Error: --ray-address and --ray-task-cpus need --engine ray", file=sys.stderr)
        return 2
    if ns.ray_task_cpus <= 0:
        print("Error: --ray-task-cpus must be more than 0", file=sys.stderr)
        return 2
    if ns.jobs < 1:
        print("Error: --jobs must be at least 1", file=sys.stderr)
        return 2
    try:
        config = load_config(Overrides(cli_overrides=ns.config_overrides, profile=ns.profile))
    except CodexbroError as err:
        print(f"Error: {err.message}", file=sys.stderr)
        return 1
    schema = None
    if ns.output_schema:
        try:
            schema = json.loads(Path(ns.output_schema).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"Error: --output-schema {ns.output_schema}: {exc}", file=sys.stderr)
            return 2
    items = parse_tasks(tasks_path, Path.cwd())
    for item in items:
        if isinstance(item, BadLine):
            print(f"{tasks_path}:{item.error}", file=sys.stderr)
    results = ResultsFile(Path(ns.output) if ns.output else tasks_path.with_suffix(".results.jsonl"))
    work = Path(ns.work_dir) if ns.work_dir else results.path.resolve().parent / ".codexbro-batch"
    work.mkdir(parents=True, exist_ok=True)
    defaults = Defaults(ns.model, ns.sandbox, tuple(ns.config_overrides), schema, ns.timeout, ns.keep)
    tty = sys.stderr.isatty()
    terminated = _stop_on_sigterm()
    progress = Progress(total=len(items), on_change=lambda p, r: _show(p, r, tty))
    try:
        if ns.engine == "ray":
            from codexbro.batch.ray_engine import run_ray

            failed = run_ray(items, results, defaults, jobs=ns.jobs, work=work, home=config.codexbro_home,
                             rerun=ns.rerun, progress=progress, address=ns.ray_address,
                             task_cpus=ns.ray_task_cpus)  # fmt: skip
        else:
            failed = asyncio.run(run_local(items, results, defaults, jobs=ns.jobs, work=work,
                                           home=config.codexbro_home, rerun=ns.rerun, progress=progress))  # fmt: skip
    except CodexbroError as err:
        print(f"Error: {err.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        how = "terminated" if terminated else "interrupted"
        print(f"\n[batch] {how}: running tasks recorded as cancelled in {results.path}", file=sys.stderr)
        return 143 if terminated else 130
    print(
        f"[batch] {progress.done} task(s) finished, {failed} not ok; results in {results.path}",
        file=sys.stderr,
    )
    return 0 if failed == 0 else 1


def _stop_on_sigterm() -> list[bool]:
    """Make SIGTERM stop a batch the way Ctrl-C does (running tasks recorded as cancelled, their
    process groups killed) instead of leaving the tasks' commands running. The returned list gets
    True when it happened. A SIGINT that the parent set to be ignored (a background job) stays
    ignored, as Unix programs do; SIGTERM then interrupts directly."""
    seen: list[bool] = []
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return seen

    def on_term(signum: int, frame: object) -> None:
        seen.append(True)
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGINT)  # asyncio's own Ctrl-C path: cancel, clean up, raise

    signal.signal(signal.SIGTERM, on_term)
    return seen

"""``codexbro batch --engine ray``: the same tasks as Ray tasks, when one machine is not enough.

Each task is one Ray task that runs exactly what the local engine runs for it (``runner.run_task``:
an isolated copy of the repository, a ``codexbro exec --json`` process in its own process group, the
per-task timeout, the diff) on whichever worker Ray picks, and returns the result line; the driver
appends each result to the results file as it arrives, so a killed batch loses nothing finished and a
re-run resumes. Without ``--ray-address`` a local Ray instance is started for the batch (``--jobs``
CPUs) and stopped after it; with one, the tasks go to that cluster.

What travels and what does not: a task's arguments are its line from the tasks file (id, prompt,
repository, ref, model, sandbox, schema, ``config`` overrides) and the batch's flags — nothing
else. No credential is ever put in task arguments, in a ``runtime_env`` or in a log line: Ray keeps
those in its object and GCS stores and shows them in its dashboard. Workers read their own
environment or credential store (``$CODEXBRO_HOME``/``auth.json``, ``CODEXBRO_API_KEY``...), as
``codexbro exec`` would on that machine; a local instance's workers inherit the driver's environment
from the process that starts them, not through Ray. Repositories must be reachable from the workers:
a git URL, or a path on storage every node shares. The work directory is the same path on every
node (created there when missing). ``ray`` is imported only here (``pip install 'codexbro[ray]'``).
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

from codexbro.batch.runner import Defaults, Progress, ResultsFile, failed_result, plan
from codexbro.batch.tasks import BadLine, Task
from codexbro.errors import UserError
from codexbro.records import as_dict

INSTALL_HINT = "pip install 'codexbro[ray]'"


def _run_on_worker(
    task: dict[str, Any], defaults: dict[str, Any], work: str, home: str | None
) -> dict[str, Any]:
    """Runs inside a Ray worker: the local engine's ``run_task`` for one task."""
    from codexbro.batch.runner import run_task

    where = Path(work)
    where.mkdir(parents=True, exist_ok=True)
    if home is None:  # a remote worker: its own config decides where its sessions go
        from codexbro.config.loader import load_config

        home_path = load_config().codexbro_home
    else:
        home_path = Path(home)
    return asyncio.run(run_task(Task(**task), Defaults(**defaults), where, home_path))


def run_ray(items: list[Task | BadLine], results: ResultsFile, defaults: Defaults, *, jobs: int, work: Path,
            home: Path, rerun: bool, progress: Progress, address: str | None, task_cpus: float = 1.0) -> int:  # fmt: skip
    """Run every task on Ray; returns how many did not end ``ok``. Blocks (Ray's driver API is
    synchronous); Ctrl-C cancels the tasks still running and records them as cancelled."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--engine ray needs Ray: {INSTALL_HINT}") from None
    todo = plan(items, results, rerun=rerun, progress=progress)
    if not todo:
        return progress.failed
    started_here = address is None
    if started_here:
        # A local instance for this batch only: no dashboard, workers' logs not echoed to us, a
        # small object store (results are a few KB each).
        ray.init(num_cpus=max(1, math.ceil(jobs * task_cpus)), include_dashboard=False, log_to_driver=False,
                 object_store_memory=80 * 1024 * 1024, configure_logging=False)  # fmt: skip
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    # max_retries=0: a task is not re-run behind the user's back (its result says what happened;
    # `--rerun` or a filtered tasks file runs it again).
    remote = ray.remote(num_cpus=task_cpus, max_retries=0)(_run_on_worker)
    plain = as_dict(defaults)
    plain["overrides"] = tuple(plain["overrides"])
    # On the machine that started the instance the driver's home is the workers' home too; a
    # cluster's workers use their own.
    home_arg = str(home) if started_here else None
    pending: dict[Any, Task] = {}
    queue = list(todo)
    limit = max(1, jobs)
    try:
        while queue or pending:
            while queue and len(pending) < limit:
                task = queue.pop(0)
                ref = remote.remote(as_dict(task), plain, str(work), home_arg)
                pending[ref] = task
                progress.running += 1
                progress.changed()
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                progress.running -= 1
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the worker died, or Ray could not run the task
                    result = failed_result(task.id, "failed", f"Ray: {type(exc).__name__}: {exc}"[:500])
                results.append(result)
                progress.done += 1
                progress.failed += result.get("status") != "ok"
                progress.changed(result)
    except KeyboardInterrupt:
        for ref, task in pending.items():
            ray.cancel(ref, force=True)
            results.append(failed_result(task.id, "cancelled", "the batch was interrupted"))
        raise
    finally:
        if started_here:
            ray.shutdown()
    return progress.failed

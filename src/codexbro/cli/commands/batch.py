"""``codexbro batch TASKS.jsonl``: many agent tasks at once, each isolated."""

from __future__ import annotations

import argparse
import os
from typing import Any

from codexbro.cli.commands.options import add_config_options


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "batch",
        help="run many tasks (a JSONL file, one per line), each as an exec turn in its own copy of its repository",
    )
    parser.add_argument("tasks", metavar="TASKS.jsonl", help='one task per line: {"id": …, "prompt": …, "cwd"|"repo", "ref", '
                        '"model", "sandbox", "output_schema", "config"}')  # fmt: skip
    parser.add_argument(
        "-o",
        "--output",
        metavar="RESULTS.jsonl",
        help="results, a line per task (default: TASKS.results.jsonl)",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=max(2, os.cpu_count() or 1),
        help="tasks at once (default: the cores, at least 2)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="per task; a task over it is killed and recorded as timeout",
    )
    parser.add_argument("-m", "--model", help="the model for tasks that do not name one")
    parser.add_argument("-s", "--sandbox", choices=("read-only", "workspace-write", "danger-full-access"),
                        help="the sandbox for tasks that do not name one")  # fmt: skip
    parser.add_argument(
        "--output-schema", metavar="FILE", help="a JSON schema every task's final answer must fit"
    )
    parser.add_argument(
        "--rerun", action="store_true", help="run tasks again even when the results file has them"
    )
    parser.add_argument("--keep", action="store_true", help="keep each task's copy of its repository")
    parser.add_argument(
        "--work-dir", metavar="DIR", help="where the copies go (default: .codexbro-batch beside the results)"
    )
    parser.add_argument(
        "--engine", choices=("local", "ray"), default="local",
        help="local processes (default) or Ray tasks (needs codexbro[ray])",
    )  # fmt: skip
    parser.add_argument(
        "--ray-address", metavar="ADDR",
        help="an existing Ray cluster (e.g. ray://head:10001 or auto); default: a local Ray instance for the batch",
    )  # fmt: skip
    parser.add_argument(
        "--ray-task-cpus", type=float, default=1.0, metavar="N",
        help="CPUs Ray reserves per task (default 1; agent tasks mostly wait on the model: 0.25-0.5 packs more per node)",
    )  # fmt: skip
    add_config_options(parser)
    parser.set_defaults(run=run)


def run(ns: argparse.Namespace) -> int:
    from codexbro.cli.batch import run_batch

    return run_batch(ns)

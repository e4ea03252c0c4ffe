"""``codexbro batch`` figures (a script that prints numbers, not a test). Issue 22.

    python bench/batch.py [--tasks 50] [--skip-ray]

50 scripted tasks (each a one-message turn against the loopback fake, in its own clone of a small
git repository) with the local engine at ``--jobs 1/4/8`` and with the Ray engine (a local Ray
instance started for the batch, its start-up included), and the per-task overhead over a bare
``codexbro exec`` of the same turn (clone, process, diff, result line).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.events import message_turn  # noqa: E402
from tests.fakes.responses_server import FakeResponsesServer, Reply  # noqa: E402


def make_repo(path: Path) -> None:
    path.mkdir()
    for n in range(10):
        (path / f"file{n}.py").write_text(f"VALUE = {n}\n" * 50)
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]
    subprocess.run([*git, "init", "-q"], cwd=path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=path, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "codexbro"]
    with tempfile.TemporaryDirectory() as tmp, FakeResponsesServer() as fake:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        (home / "config.toml").write_text(
            f'model = "gpt-5.1-codex"\nmodel_provider = "fake"\n[model_providers.fake]\nname = "fake"\n'
            f'base_url = "{fake.base_url}"\nenv_key = "FAKE_API_KEY"\n'
        )
        env = {
            **os.environ,
            "CODEXBRO_HOME": str(home),
            "FAKE_API_KEY": "bench",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        repo = root / "repo"
        make_repo(repo)
        tasks = root / "tasks.jsonl"
        tasks.write_text(
            "".join(
                json.dumps({"id": f"t{n}", "prompt": "say done", "repo": str(repo)}) + "\n"
                for n in range(args.tasks)
            )
        )

        bare = []
        for _ in range(5):
            fake.add(Reply(message_turn("done")))
            start = time.perf_counter()
            subprocess.run(
                [*cli, "exec", "--ephemeral", "say done"], cwd=repo, env=env, capture_output=True, check=True
            )
            bare.append(time.perf_counter() - start)
        bare_s = statistics.median(bare)
        print(f"bare exec of the same turn: {bare_s * 1000:.0f} ms (median of 5)")

        runs: list[tuple[str, list[str]]] = [(f"local --jobs {j}", ["--jobs", str(j)]) for j in (1, 4, 8)]
        if args.skip_ray:
            print("ray: skipped (--skip-ray)")
        elif importlib.util.find_spec("ray") is None:
            print("ray: skipped (Ray is not installed: pip install 'codexbro[ray]')")
        else:
            runs.append(("ray --jobs 4", ["--engine", "ray", "--jobs", "4"]))
        for name, flags in runs:
            fake.add(*(Reply(message_turn("done")) for _ in range(args.tasks)))
            out = root / f"results-{name.replace(' ', '_')}.jsonl"
            start = time.perf_counter()
            proc = subprocess.run([*cli, "batch", str(tasks), "-o", str(out), *flags], cwd=root, env=env,
                                  capture_output=True, text=True)  # fmt: skip
            wall = time.perf_counter() - start
            lines = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
            ok = sum(1 for r in lines if r.get("status") == "ok")
            per_task = [float(r["wall_s"]) for r in lines]
            overhead = statistics.median(per_task) - bare_s if per_task else float("nan")
            print(f"{name:15} {args.tasks} tasks: wall {wall:6.2f} s ({args.tasks / wall:5.1f} tasks/s), {ok} ok, "
                  f"per-task median {statistics.median(per_task) * 1000 if per_task else float('nan'):.0f} ms "
                  f"(+{overhead * 1000:.0f} ms over a bare exec)"
                  + ("" if proc.returncode == 0 else f"  [exit {proc.returncode}: {proc.stderr.strip()[-200:]}]"))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

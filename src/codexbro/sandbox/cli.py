"""``codexbro sandbox linux …`` (run one command sandboxed, by hand) and ``codexbro sandbox doctor``."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from codexbro.config.types import SandboxWorkspaceWrite
from codexbro.sandbox.linux import BACKENDS, SandboxUnavailable, choose_backend, prepare, probe, spec_for


def run_linux(
    policy: str, roots: list[str], network: bool, backend: str, cd: str | None, argv: list[str]
) -> int:
    if not argv:
        print("Error: give the command after `--`, e.g. codexbro sandbox linux -- ls", file=sys.stderr)
        return 2
    cwd = Path(cd).resolve() if cd else Path.cwd()
    sww = SandboxWorkspaceWrite(writable_roots=tuple(roots), network_access=network)
    spec = spec_for(policy, sww, cwd)
    if spec is None:
        os.chdir(cwd)
        os.execvp(argv[0], argv)
    try:
        prepared = prepare(spec, backend)
    except (SandboxUnavailable, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    os.chdir(cwd)
    env = {**os.environ, **prepared.env}
    if prepared.preexec is not None:
        prepared.preexec()  # we are the child here: restrict ourselves, then become the command
    full = prepared.wrap(argv)
    try:
        os.execvpe(full[0], full, env)
    except OSError as exc:
        print(f"Error: cannot run {full[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127


def doctor(as_json: bool) -> int:
    from codexbro.sandbox import landlock, seccomp

    results = [probe(b) for b in BACKENDS]
    try:
        chosen: str | None = choose_backend()
        choice_note = ""
    except SandboxUnavailable as exc:
        chosen, choice_note = None, str(exc)
    bwrap = shutil.which("bwrap")
    bwrap_version = ""
    if bwrap:
        out = subprocess.run([bwrap, "--version"], capture_output=True, text=True, check=False)
        bwrap_version = out.stdout.strip()
    facts = {
        "kernel": platform.release(),
        "arch": platform.machine(),
        "landlock_abi": landlock.abi_version(),
        "seccomp_filter": seccomp.supported(),
        "bubblewrap": bwrap_version or None,
        "running_as_root": os.getuid() == 0,
    }
    if as_json:
        print(json.dumps({
            "facts": facts,
            "backends": [{"backend": r.backend, "works": r.ok, "detail": r.detail} for r in results],
            "auto": chosen,
            "auto_error": choice_note or None,
        }, indent=2))  # fmt: skip
        return 0 if chosen else 1
    print("codexbro sandbox doctor")
    for key, value in facts.items():
        print(f"  {key:<16} {value}")
    print()
    for r in results:
        print(f"  {r.backend:<11} {'works' if r.ok else 'unavailable':<12} {r.detail}")
    print()
    if chosen:
        print(f'auto selects: {chosen}  (override with sandbox_backend = "…" in config.toml)')
        return 0
    print(f"no backend works: {choice_note}")
    return 1

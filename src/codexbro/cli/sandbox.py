"""``codexbro sandbox linux …`` (run one command sandboxed, by hand) and ``codexbro sandbox doctor``
(what each backend really enforces here, from live probes)."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from codexbro.config.types import SandboxWorkspaceWrite
from codexbro.sandbox.linux import BACKENDS, SandboxUnavailable, prepare, spawn_args
from codexbro.sandbox.policy import spec_for

PROTECTION_LABELS = {
    "writes": "writes outside the roots and into protected paths",
    "metadata": "chmod/chown/utime/xattr outside the roots",
    "devices": "device nodes and the host's /dev/shm",
    "processes": "the agent's /proc, signals, processes outliving the agent",
    "network": "network (when off)",
    "unix_sockets": "host services on Unix sockets (when off)",
    "terminal": "keystrokes pushed into a terminal (TIOCSTI)",
    "credentials": "the agent's credential store",
}


def run_linux(
    policy: str, roots: list[str], network: bool, backend: str, cd: str | None, argv: list[str]
) -> int:
    if not argv:
        print("Error: give the command after `--`, e.g. codexbro sandbox linux -- ls", file=sys.stderr)
        return 2
    cwd = Path(os.path.realpath(cd or os.getcwd()))
    return asyncio.run(_run_linux(policy, roots, network, backend, cwd, argv))


async def _run_linux(
    policy: str, roots: list[str], network: bool, backend: str, cwd: Path, argv: list[str]
) -> int:
    from codexbro.config.loader import codexbro_home
    from codexbro.sandbox.container import close_containers

    sww = SandboxWorkspaceWrite(writable_roots=tuple(roots), network_access=network)
    spec = spec_for(policy, sww, cwd, codexbro_home())
    try:
        prepared = None if spec is None else prepare(spec, backend)
    except (SandboxUnavailable, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    from codexbro.config.types import ShellEnvironmentPolicy
    from codexbro.tools.exec_env import build_env

    env = build_env(ShellEnvironmentPolicy())  # as a tool's command: no *KEY*, *SECRET*, … variables
    tty = os.isatty(0)
    try:
        if prepared is not None and prepared.container is not None:
            proc = await prepared.container.spawn(
                argv, cwd=str(cwd), env={**env, **prepared.env}, tty=tty, stdin=0, stdout=1, stderr=2
            )
            code: int = await proc.wait()
        else:
            spawn = spawn_args(prepared, argv, env, str(cwd), tty)
            aproc = await asyncio.create_subprocess_exec(
                *spawn.argv, cwd=cwd, env=spawn.env, preexec_fn=spawn.preexec, pass_fds=spawn.pass_fds
            )
            code = await aproc.wait()
    except OSError as exc:
        print(f"Error: cannot run {argv[0]!r}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    finally:
        if prepared is not None:
            prepared.release()
        await close_containers()
    return code if code >= 0 else 128 - code


def doctor(as_json: bool) -> int:
    from codexbro.sandbox import landlock, seccomp
    from codexbro.sandbox.linux import choose_backend
    from codexbro.sandbox.probes import backend_report

    reports = [backend_report(b) for b in BACKENDS]
    try:
        chosen: str | None = choose_backend()
        choice_note = ""
    except SandboxUnavailable as exc:
        chosen, choice_note = None, str(exc)
    from codexbro.sandbox.linux import bwrap_path

    bwrap = bwrap_path()
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
            "backends": [
                {"backend": r.backend, "works": r.ok, "detail": r.detail, "protections": r.enforced(),
                 "checks": {k: {"result": v[0], "detail": v[1]} for k, v in r.checks.items()}}
                for r in reports
            ],
            "auto": chosen,
            "auto_error": choice_note or None,
        }, indent=2))  # fmt: skip
        return 0 if chosen else 1
    print("codexbro sandbox doctor  (every verdict below comes from a live probe on this machine)")
    for key, value in facts.items():
        print(f"  {key:<16} {value}")
    for r in reports:
        print()
        print(f"  {r.backend:<11} {'works' if r.ok else 'unavailable':<12} {r.detail}")
        if not r.checks:
            continue
        for name, enforced in r.enforced().items():
            mark = {True: "enforced", False: "NOT enforced", None: "not probed"}[enforced]
            print(f"    {mark:<13} {PROTECTION_LABELS[name]}")
    print()
    if chosen:
        print(f'auto selects: {chosen}  (override with sandbox_backend = "…" in config.toml)')
        return 0
    print(f"no backend works: {choice_note}")
    return 1

"""Sandboxing the processes tools spawn on Linux: which backend, and what it does.

Backends:

- ``landlock`` (preferred): in the child, between fork and exec — read-only bind mounts over
  protected paths (private mount namespace), Landlock (write only beneath the writable roots and a
  few devices), and a seccomp filter that refuses non-Unix sockets when the network is off.
- ``bubblewrap``: ``bwrap --ro-bind / / --bind ROOT ROOT … --ro-bind PROTECTED … [--unshare-net]``,
  where ``bwrap`` is installed and allowed to create namespaces.

``auto`` picks the first backend whose live probe passes (``probe``), and ``codexbro sandbox doctor``
prints every probe's verdict and reason. When no backend works a restricted policy refuses to run
commands rather than run them unsandboxed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from codexbro.config.types import SandboxWorkspaceWrite
from codexbro.sandbox.policy import PROTECTED_NAMES, writable_roots

# Devices a sandboxed command may still write to (or open for writing).
DEVICE_WRITABLE = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/ptmx", "/dev/pts", "/dev/shm")
BACKENDS = ("landlock", "bubblewrap")


class SandboxUnavailable(Exception):
    """No backend can enforce the policy on this machine; the message says what to do."""


@dataclass(frozen=True)
class SandboxSpec:
    """What a sandboxed process may do."""

    mode: str
    writable: tuple[str, ...]
    protected: tuple[str, ...]
    network: bool

    @property
    def env_markers(self) -> dict[str, str]:
        return {} if self.network else {"CODEX_SANDBOX_NETWORK_DISABLED": "1"}


def spec_for(mode: str, sww: SandboxWorkspaceWrite, cwd: Path) -> SandboxSpec | None:
    """The spec for a policy; None for ``danger-full-access`` (no sandbox)."""
    if mode == "danger-full-access":
        return None
    roots = writable_roots(mode, sww, cwd)
    protected = tuple(
        str(root / name) for root in roots for name in PROTECTED_NAMES if (root / name).exists()
    )
    network = mode == "workspace-write" and sww.network_access
    return SandboxSpec(mode, tuple(str(r) for r in roots), protected, network)


@dataclass
class Prepared:
    """Parent-side state for one spawn: an argv prefix and/or a function to run in the child."""

    backend: str
    env: dict[str, str]
    argv_prefix: list[str] = field(default_factory=list)
    preexec: Callable[[], None] | None = None
    _fds: list[int] = field(default_factory=list)
    keep: object = None

    def wrap(self, argv: list[str]) -> list[str]:
        return [*self.argv_prefix, *argv]

    def apply(
        self, argv: list[str], env: dict[str, str]
    ) -> tuple[list[str], dict[str, str], Callable[[], None] | None]:
        """argv, env and preexec_fn for a spawn inside this sandbox; call ``close`` once it started."""
        return self.wrap(argv), {**env, **self.env}, self.preexec

    def close(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


def spawn_args(
    sandbox: Prepared | None, argv: list[str], env: dict[str, str]
) -> tuple[list[str], dict[str, str], Callable[[], None] | None]:
    """The one place a spawn is adapted to a (possibly absent) sandbox."""
    return sandbox.apply(argv, env) if sandbox is not None else (argv, env, None)


def _child_failure(message: str) -> None:
    os.write(2, f"codexbro sandbox: {message}\n".encode())
    os._exit(126)


def prepare_landlock(spec: SandboxSpec) -> Prepared:
    from codexbro.sandbox import landlock, mounts, seccomp

    ruleset = landlock.build_ruleset([*spec.writable, *DEVICE_WRITABLE])
    filt = None if spec.network else seccomp.build_filter()
    protected = spec.protected

    def preexec() -> None:
        try:
            mounts.protect(protected)
            landlock.restrict_self(ruleset)
            if filt is not None:
                filt.install()
        except OSError as exc:
            _child_failure(str(exc.strerror or exc))

    prepared = Prepared("landlock", {"CODEX_SANDBOX": "landlock", **spec.env_markers}, preexec=preexec)
    prepared._fds.append(ruleset)
    prepared.keep = filt  # the BPF program must outlive the fork
    return prepared


def bwrap_argv(spec: SandboxSpec, bwrap: str) -> list[str]:
    argv = [
        bwrap,
        "--new-session",
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]
    for root in spec.writable:
        if os.path.exists(root):
            argv += ["--bind", root, root]
    for path in spec.protected:
        argv += ["--ro-bind", path, path]
    if not spec.network:
        argv.append("--unshare-net")
    return [*argv, "--"]


def prepare_bubblewrap(spec: SandboxSpec) -> Prepared:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (`bwrap`) is not installed")
    return Prepared(
        "bubblewrap", {"CODEX_SANDBOX": "bubblewrap", **spec.env_markers}, bwrap_argv(spec, bwrap)
    )


def prepare(spec: SandboxSpec, backend: str = "auto") -> Prepared:
    if backend == "auto":
        backend = choose_backend()
    if backend == "landlock":
        return prepare_landlock(spec)
    if backend == "bubblewrap":
        return prepare_bubblewrap(spec)
    raise SandboxUnavailable(f"unknown sandbox backend `{backend}` (use auto, landlock or bubblewrap)")


# ---- probes (doctor and auto selection) -------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    backend: str
    ok: bool
    detail: str


def _probe_run(prepared: Prepared, tmp: Path) -> tuple[bool, str]:
    """Run a tiny script under the backend: it must write inside, fail outside and on .git."""
    inside, outside = tmp / "inside", tmp / "outside"
    script = f"echo ok > {inside}/w && ! (echo x > {outside}/w) 2>/dev/null && ! (echo x > {inside}/.git/w) 2>/dev/null"
    try:
        proc = subprocess.run(
            prepared.wrap(["/bin/sh", "-c", script]), preexec_fn=prepared.preexec, capture_output=True,
            text=True, timeout=10, env={**os.environ, **prepared.env}, close_fds=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"could not start a probe: {exc}"
    finally:
        prepared.close()
    if proc.returncode != 0:
        return False, (proc.stderr.strip() or f"probe exited {proc.returncode}")[:300]
    if (outside / "w").exists() or (inside / ".git" / "w").exists():
        return False, "the probe wrote where it should not have been able to"
    return True, "enforces writable roots and read-only .git"


def probe(backend: str) -> Probe:
    import tempfile

    if sys.platform != "linux":
        return Probe(backend, False, "not Linux")
    with tempfile.TemporaryDirectory(prefix="codexbro-probe-", dir=_probe_dir()) as tmp:
        root = Path(tmp)
        (root / "inside" / ".git").mkdir(parents=True)
        (root / "outside").mkdir()
        spec = SandboxSpec(
            "workspace-write", (str(root / "inside"),), (str(root / "inside" / ".git"),), False
        )
        try:
            if backend == "landlock":
                from codexbro.sandbox import landlock, seccomp

                abi = landlock.abi_version()
                if abi <= 0:
                    return Probe(backend, False, "the kernel has no Landlock support (or it is disabled)")
                if not seccomp.supported():
                    return Probe(backend, False, "no seccomp filter for this CPU architecture")
                ok, detail = _probe_run(prepare_landlock(spec), root)
                return Probe(backend, ok, f"Landlock ABI {abi}, seccomp: {detail}" if ok else detail)
            ok, detail = _probe_run(prepare_bubblewrap(spec), root)
            return Probe(backend, ok, detail)
        except (SandboxUnavailable, OSError) as exc:
            return Probe(backend, False, str(exc))


def _probe_dir() -> str | None:
    # Probe outside /tmp: /tmp is itself a writable root in workspace-write and would mask failures.
    home = Path.home()
    return str(home) if home.is_dir() and os.access(home, os.W_OK) else None


@cache
def choose_backend() -> str:
    forced = os.environ.get("CODEXBRO_SANDBOX_BACKEND")
    if forced:
        return forced
    reasons = []
    for backend in BACKENDS:
        result = probe(backend)
        if result.ok:
            return backend
        reasons.append(f"{backend}: {result.detail}")
    raise SandboxUnavailable(
        "no sandbox backend works on this machine ("
        + "; ".join(reasons)
        + "). Run `codexbro sandbox doctor` "
        "for details; inside an externally sandboxed environment use --sandbox danger-full-access."
    )


def is_likely_denied(exit_code: int, output: str) -> bool:
    """Upstream's heuristic: a failed command whose output mentions the usual denial messages."""
    if exit_code == 0 or (exit_code in (2, 126, 127) and "codexbro sandbox:" not in output):
        return False
    lowered = output.lower()
    markers = (
        "operation not permitted", "permission denied", "read-only file system", "seccomp", "sandbox",
        "landlock", "failed to write file",
    )  # fmt: skip
    return any(m in lowered for m in markers)

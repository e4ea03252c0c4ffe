"""Sandboxing the processes tools spawn on Linux: which backend, and what it does.

Backends, strongest first (``auto`` takes the first whose live probe passes):

- ``namespaces``: codexbro's own, built with syscalls (``namespaces.py``, ``launch.py``): a
  container per session — user, mount, PID, IPC and (network off) network namespaces; the whole
  filesystem read-only but the writable roots; protected paths read-only; the agent home hidden;
  private ``/dev`` and ``/proc`` — that each command joins, in a PID namespace of its own, under
  Landlock (writes, and from ABI 6 abstract-socket and signal scopes), with every capability
  dropped, ``no_new_privs`` and the seccomp filter (``seccomp.py``).
- ``bubblewrap``: the same view built by ``bwrap`` (upstream 0.169's mechanism), with the same
  seccomp filter passed as ``--seccomp FD``; no Landlock (it would forbid bwrap's own mounts).
- ``landlock``: where no namespace can be created: Landlock confines writes to the writable roots
  and hides the agent home from reads, its ptrace rules hide the agent's memory and environment,
  seccomp as above. Protected paths inside the roots, metadata changes and the process lifetime are
  **not** enforced; a note says so once per session.

Every spawn, sandboxed or not, goes through the supervisor in ``launch.py`` so tool processes die
with the agent. When no backend passes, restricted policies refuse to run commands.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from msgspec import Struct, field

if TYPE_CHECKING:
    from codexbro.sandbox.container import Container

from codexbro.sandbox import launch, placeholders
from codexbro.sandbox.layout import Layout, SandboxUnavailable, layout
from codexbro.sandbox.policy import SandboxSpec, physical

__all__ = ["Layout", "SandboxUnavailable", "layout"]

BACKENDS = ("namespaces", "bubblewrap", "landlock")
# Devices a sandboxed command may open for writing (Landlock rules). The namespace view's /dev is
# private, with its own devpts; the landlock backend shares the host's, so no /dev/pts there (the
# user's terminals are the same user's files). A command's own terminal is open already: unaffected.
DEVICE_WRITABLE = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty")
PRIVATE_DEVICES = ("/dev/ptmx", "/dev/pts", "/dev/shm")


class Spawn(Struct):
    """Everything a ``create_subprocess_exec`` call needs to start one command."""

    argv: list[str]
    env: dict[str, str]
    preexec: Callable[[], None] | None
    pass_fds: tuple[int, ...] = ()


class Prepared(Struct):
    """Parent-side state for one sandboxed process. ``started`` once it runs (drops what the
    child had to inherit), ``release`` once it has exited (lets go of the protected paths)."""

    backend: str
    env: dict[str, str]
    argv_prefix: Callable[[str, bool], list[str]] | None = None
    command_setup: Callable[[str], Callable[[], None]] | None = None
    container: Container | None = None  # the namespace backend's session container: it spawns, not the agent
    pass_fds: tuple[int, ...] = ()
    owned_fds: list[int] = field(default_factory=list)  # closed on release
    _running: bool = False
    # The landlock backend: enter this sandbox in a forked child of the agent, to run codexbro's own
    # code there without an exec (the apply_patch writer). The namespace backend's container runs
    # the writer itself; bubblewrap can only wrap a command (the writer then runs as one).
    isolate: Callable[[str], None] | None = None

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str, tty: bool = False) -> Spawn:
        full = [*self.argv_prefix(cwd, tty), *argv] if self.argv_prefix else argv
        full_env = {**env, **self.env}
        plan = launch.Plan(
            controlling_tty=tty,
            command_setup=self.command_setup(cwd) if self.command_setup else None,
        )  # fmt: skip
        return Spawn(full, full_env, launch.preexec(plan), self.pass_fds)

    def started(self) -> None:
        for fd in self.pass_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pass_fds = ()
        if not self._running:
            self._running = True
            placeholders.started()

    def release(self) -> None:
        """The process has exited (or never started)."""
        for fd in (*self.pass_fds, *self.owned_fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pass_fds = ()
        self.owned_fds = []
        if self._running:
            self._running = False
            placeholders.ended()


def spawn_args(
    sandbox: Prepared | None, argv: list[str], env: dict[str, str], cwd: str, tty: bool = False
) -> Spawn:
    """How to start a command outside the container (unsandboxed, bubblewrap, landlock)."""
    if sandbox is not None:
        return sandbox.spawn(argv, env, cwd, tty)
    return Spawn(argv, env, launch.preexec(launch.Plan(controlling_tty=tty)))


# ---- the backends ------------------------------------------------------------------------------


def _within(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def _identity(paths: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        out.append((st.st_dev, st.st_ino))
    return tuple(out)


def prepare_namespaces(spec: SandboxSpec) -> Prepared:
    from codexbro.sandbox import namespaces
    from codexbro.sandbox.container import container_for

    lay = layout(spec.writable, spec.home)
    protected = tuple(p for p in lay.protected if not os.path.islink(p))
    view = namespaces.View(
        tuple(lay.writable), protected, tuple(lay.pinned), tuple(lay.hidden_dirs), spec.network,
        os.getuid(), os.getgid(), _identity((*protected, *lay.pinned, *lay.hidden_dirs)),
    )  # fmt: skip
    container = container_for(
        spec.owner, view, [*lay.writable, *DEVICE_WRITABLE, *PRIVATE_DEVICES], landlock_abi()
    )
    return Prepared("namespaces", {"CODEX_SANDBOX": "namespaces", **spec.env_markers}, container=container)


async def end_session(owner: str) -> None:
    """A session closes: its containers stop; placeholders go once no sandbox of this process needs them."""
    from codexbro.sandbox.container import close_containers, containers_open

    await close_containers(owner)
    if not containers_open():
        placeholders.sweep()


def prepare_landlock(spec: SandboxSpec) -> Prepared:
    from codexbro.sandbox import landlock, seccomp, syscalls

    abi = landlock_abi()
    if abi <= 0:
        raise SandboxUnavailable("the kernel has no Landlock support (or it is disabled)")
    lay = layout(spec.writable, spec.home)
    home_paths = (physical(spec.home), Path(os.path.abspath(spec.home))) if spec.home else ()
    if any(_within(h, Path(r)) for h in home_paths for r in lay.writable):
        raise SandboxUnavailable(
            f"the agent's home {spec.home} lies inside a writable root, and the landlock backend cannot "
            "keep a command from writing it (its config and rules decide what runs unsandboxed); set "
            "CODEXBRO_HOME elsewhere, or use a namespace backend or --sandbox read-only"
        )
    filt = seccomp.build_filter(spec.network)
    last_cap = syscalls.last_capability()
    # The host's terminals are the same user's files: without a private devpts, reading them is
    # withheld (a command's own terminal is open already and unaffected).
    ruleset = landlock.build_ruleset(
        [*lay.writable, *DEVICE_WRITABLE], hidden=[*lay.hidden_dirs, "/dev/pts"], abi=abi
    )

    def setup() -> None:
        landlock.restrict_self(ruleset)
        syscalls.drop_all_capabilities(last_cap)
        filt.install()

    def command_setup(_cwd: str) -> Callable[[], None]:
        return setup

    def isolate(_cwd: str) -> None:  # the forked patch writer: the same restrictions as a command
        setup()

    return Prepared(
        "landlock", {"CODEX_SANDBOX": "landlock", **spec.env_markers},
        command_setup=command_setup, isolate=isolate, owned_fds=[ruleset],
    )  # fmt: skip


def bwrap_argv(spec: SandboxSpec, bwrap: str, lay: Layout, seccomp_fd: int, cwd: str, tty: bool) -> list[str]:
    argv = [bwrap, "--die-with-parent", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    if not tty:
        argv.append("--new-session")  # with a TTY the command keeps it as its controlling terminal
    if not spec.network:
        argv.append("--unshare-net")
    if _bwrap_supports("--disable-userns"):
        argv.append("--disable-userns")
    argv += ["--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    # bwrap leaves these writable in its /proc; uid 0 needs no capability to write a sysctl
    # (core_pattern would run a command on the host as root).
    for name in ("sys", "sysrq-trigger", "irq", "bus"):
        argv += ["--ro-bind-try", f"/proc/{name}", f"/proc/{name}"]
    # bwrap applies read-only to a bind and all below it: a protected directory that holds a
    # writable root goes first, so the root is bound over it.
    holders = [p for p in lay.protected if any(w.startswith(p.rstrip("/") + "/") for w in lay.writable)]
    for path in holders:
        argv += ["--ro-bind", path, path]
    for root in lay.writable:
        argv += _bwrap_root(root, lay, holders)
    for path in lay.hidden_dirs:
        inner = lay.inside(path)
        argv += ["--perms", "0755", "--tmpfs", path]
        for root in inner:  # mount points for the roots inside, made before the cover turns read-only
            argv += ["--dir", root]
        argv += ["--remount-ro", path]
        for root in inner:
            argv += _bwrap_root(root, lay, holders)
    return [*argv, "--seccomp", str(seccomp_fd), "--chdir", cwd, "--"]


def _bwrap_root(root: str, lay: Layout, holders: list[str]) -> list[str]:
    """A writable root, the directories pinned in it, the protected paths in it."""
    prefix = root.rstrip("/") + "/"
    argv = ["--bind", root, root]
    for path in lay.pinned:
        if path.startswith(prefix):
            argv += ["--bind", path, path]
    for path in lay.protected:
        if path.startswith(prefix) and path not in holders and not os.path.islink(path):
            argv += ["--ro-bind", path, path]
    return argv


SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


@cache
def bwrap_path() -> str | None:
    """``bwrap`` from the system directories only: never one a command planted on the agent's PATH
    (an activated project venv, ``node_modules/.bin``), which would run unsandboxed."""
    return shutil.which("bwrap", path=SYSTEM_PATH)


@cache
def _bwrap_help() -> str:
    import subprocess

    bwrap = bwrap_path()
    if bwrap is None:
        return ""
    try:
        return subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _bwrap_supports(flag: str) -> bool:
    return flag in _bwrap_help()


def prepare_bubblewrap(spec: SandboxSpec) -> Prepared:
    from codexbro.sandbox import seccomp

    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable(f"bubblewrap (`bwrap`) is not installed (looked in {SYSTEM_PATH})")
    lay = layout(spec.writable, spec.home)
    raw = seccomp.build_filter(spec.network).raw
    fd = os.memfd_create("codexbro-seccomp", 0)
    os.write(fd, raw)
    os.lseek(fd, 0, os.SEEK_SET)

    def prefix(cwd: str, tty: bool) -> list[str]:
        return bwrap_argv(spec, bwrap, lay, fd, cwd, tty)

    return Prepared(
        "bubblewrap", {"CODEX_SANDBOX": "bubblewrap", **spec.env_markers}, argv_prefix=prefix,
        pass_fds=(fd,),
    )  # fmt: skip


def prepare(spec: SandboxSpec, backend: str = "auto") -> Prepared:
    if backend == "auto":
        backend = choose_backend()
    if backend == "namespaces":
        return prepare_namespaces(spec)
    if backend == "bubblewrap":
        return prepare_bubblewrap(spec)
    if backend == "landlock":
        return prepare_landlock(spec)
    raise SandboxUnavailable(f"unknown sandbox backend `{backend}` (use auto, {', '.join(BACKENDS)})")


@cache
def landlock_abi() -> int:
    from codexbro.sandbox import landlock

    return landlock.abi_version()


def choose_backend(home: Path | None = None) -> str:
    """The strongest backend that passes its live probe (the answer, or the refusal, is cached for
    the process: no probe runs twice; with the agent's ``home``, verdicts kept there are used —
    see ``probe_cache.py``)."""
    answer = _choice(home)
    if isinstance(answer, SandboxUnavailable):
        raise answer
    return answer


@cache
def _choice(home: Path | None) -> str | SandboxUnavailable:
    from codexbro.sandbox.probes import backend_report

    forced = os.environ.get("CODEXBRO_SANDBOX_BACKEND")
    if forced:
        return forced
    if sys.platform != "linux":
        return SandboxUnavailable(
            "codexbro's sandbox needs Linux; use --sandbox danger-full-access inside a VM or container"
        )
    reasons = []
    for backend in BACKENDS:
        report = backend_report(backend, home)
        if report.ok:
            return backend
        reasons.append(f"{backend}: {report.detail}")
    return SandboxUnavailable(
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

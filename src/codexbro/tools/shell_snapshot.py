"""The shell snapshot: the user's login-shell environment, captured once, restored in each command.

A command the model sends as ``bash -lc SCRIPT`` (``shell_command`` and ``exec_command`` build it
that way unless ``login`` is false; ``shell`` argv may name it) pays for a login shell each time —
``/etc/profile``, ``~/.profile``, ``~/.bashrc`` and what they source, ~190 ms on this machine class
— and prints whatever the profile prints into the command's output. Upstream 0.169 (feature
``shell_snapshot``, stable and on) captures the login environment once per session and sources it
before each command. codexbro does the same, this way:

- **Capture** (once per session, when its first shell command needs it — a session that runs no
  command never pays for it; from the cache, ~3 ms): ``SHELL -l`` runs a small script of shell
  builtins that writes, to an inherited pipe, the exported variables, the functions, the aliases,
  the options (``shopt -p``/``set +o``; zsh: ``setopt``) and the umask. It runs inside the
  session's sandbox, read-only (a profile runs programs from PATH, and PATH may hold a directory
  sandboxed commands can write), in the home directory, without a terminal, with the environment a
  command would get (``[shell_environment_policy]``), bounded by a 10 s timeout; it is over when
  its last section arrives (a profile's background job is killed with its process group). What
  the profile prints is thrown away. A failure is remembered for the TTL.
- **What is kept**: only what the profile changed — variables it added or changed (and ``unset``
  for those it removed), relative to the environment it started from. Variables the environment
  policy excludes (``*KEY*``, ``*TOKEN*``…, ``exclude``, ``include_only``, the credential
  variables) are dropped even when a profile exports them, and the policy's ``set`` wins over the
  profile. Shell-internal ones (``PWD``, ``SHLVL``, ``BASH_ENV``…) are never restored.
- **Cache**: ``$CODEXBRO_HOME/shell_snapshots/<shell>-<key>.sh`` (0600 in a 0700 directory,
  written atomically), keyed by the shell binary, the starting environment and the size, mtime and
  inode of every profile file the shell reads (``/etc/profile``, ``/etc/profile.d``,
  ``~/.bash_profile``, ``~/.bash_login``, ``~/.profile``, ``~/.bashrc``, ``/etc/bash.bashrc``; zsh's
  ``zshenv``/``zprofile``/``zshrc``/``zlogin`` under ``/etc``, ``/etc/zsh`` and ``$ZDOTDIR``), and
  thrown away after an hour (profiles source files this key cannot see).
- **Restore**: the command runs as a non-login ``SHELL -c SCRIPT`` with the snapshot handed over
  in a sealed memfd (no write, grow or shrink possible, by anyone) that the child inherits: bash
  reads it through ``BASH_ENV=/dev/fd/N`` before the script — the script itself is untouched, so
  line numbers, ``$0`` and ``"$@"`` are as the model wrote them; zsh sources it on a line before
  the script. The snapshot closes that descriptor and unsets ``BASH_ENV``, so nothing the command
  starts inherits either. No path is involved: the sandbox (which hides ``$CODEXBRO_HOME``) needs
  no hole, and a sandboxed command can neither change the snapshot nor another command's copy.
- **Fallback**: when the capture fails (timeout, a shell other than bash or zsh, a snapshot that
  does not load cleanly) the command runs ``SHELL -lc`` as before, and the session says why once.

``login: false`` keeps upstream's meaning (no profile, no snapshot); ``[features] shell_snapshot =
false`` turns the whole thing off.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec import Struct

from codexbro.config.types import ShellEnvironmentPolicy
from codexbro.tools.shell_snapshot_text import (
    _CAPTURE,
    CAPTURE_TIMEOUT_S,
    KINDS,
    MAX_CAPTURE,
    SECTIONS,
    SEP,
    TTL_S,
    VERSION,
    _home_dir,
    _prune,
    _read_fresh,
    _sealed,
    _stat_sig,
    _write_private,
    profile_files,
    render,
)  # fmt: skip

if TYPE_CHECKING:
    from codexbro.sandbox.linux import Prepared
    from codexbro.sandbox.policy import SandboxSpec
    from codexbro.tools.spawn import ToolProcess

log = logging.getLogger(__name__)


class SnapshotError(Exception):
    """Why there is no snapshot (said once, and commands use a login shell)."""


class Launch(Struct, frozen=True):
    """How to start one command: its argv and environment, and descriptors it must inherit."""

    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...] = ()
    restored: bool = False  # the snapshot is in use (not a login shell)


def shell_kind(shell: str) -> str | None:
    name = os.path.basename(shell)
    return name if name in KINDS else None


class ShellSnapshot:
    """One session's snapshot: captured in the background from ``start``; ``launch`` rewrites a
    ``SHELL -lc SCRIPT`` argv to restore it (or leaves it, after a failure)."""

    def __init__(
        self, shell: str, home: Path, policy: ShellEnvironmentPolicy, *, enabled: bool = True,
        ttl_s: float = TTL_S, timeout_s: float = CAPTURE_TIMEOUT_S,
        sandbox: SandboxSpec | Callable[[], SandboxSpec] | None = None, backend: str = "auto",
    ) -> None:  # fmt: skip
        self.shell = shell
        # Where the login shell runs for the capture: the session's sandbox, read-only (None: the
        # session runs unsandboxed, and so does the capture). A callable is asked at the capture:
        # a session that never runs a command never loads the sandbox modules.
        self.sandbox = sandbox
        self.backend = backend
        self.kind = shell_kind(shell)
        self.home = home
        self.policy = policy
        self.enabled = enabled
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.path: Path | None = None  # the cached file the memfd was loaded from
        self.capture_owner: str | None = None  # the capture's sandbox container, closed after it
        self.error: str | None = None  # why there is none
        self.cached = False  # the file came from the cache (no capture this session)
        self.capture_s = 0.0
        self._fd: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._noted = False
        self._starting = 0  # capture/check processes being started (not to be cancelled)
        self._idle = asyncio.Event()  # none is
        self._idle.set()

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin the capture now, beside the session (needs a running loop); idempotent."""
        if self._task is None and self.enabled and self.kind is not None:
            self._task = asyncio.get_running_loop().create_task(self._load())

    async def ready(self) -> int | None:
        """The sealed memfd holding the snapshot, or None (``error`` says why)."""
        if not self.enabled:
            return None
        if self.kind is None:
            self.error = (
                self.error or f"no shell snapshot for {os.path.basename(self.shell)!r} (bash and zsh only)"
            )
            return None
        self.start()
        assert self._task is not None
        await asyncio.shield(self._task)
        return self._fd

    async def aclose(self) -> None:
        """End of session: a capture still running is stopped (once its process has started)."""
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 2.0)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self.close()

    def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def take_note(self) -> str | None:
        """The fallback note, the first time only."""
        if self._noted or self.error is None:
            return None
        self._noted = True
        return f"shell snapshot unavailable ({self.error}); commands run in a login shell"

    # ---- per command ----------------------------------------------------------------------------

    async def launch(self, argv: list[str], env: dict[str, str]) -> Launch:
        """``[SHELL, "-lc", SCRIPT]`` becomes ``[SHELL, "-c", SCRIPT]`` restoring the snapshot, when
        SHELL is this session's kind of shell and the snapshot exists; anything else runs as given."""
        if not self.enabled or len(argv) != 3 or argv[1] != "-lc":
            return Launch(argv, env)
        if argv[0] != self.shell and (self.kind is None or shell_kind(argv[0]) != self.kind):
            return Launch(argv, env)
        fd = await self.ready()  # None for a shell other than bash or zsh (`error` says so)
        if fd is None or self.kind is None:
            return Launch(argv, env)
        return restore(self.kind, argv, env, fd)

    # ---- capture and cache ----------------------------------------------------------------------

    async def _load(self) -> None:
        started = time.monotonic()
        try:
            base = self._base_env()
            path = self._cache_path(base)
            text = _read_fresh(path, self.ttl_s)
            self.cached = text is not None
            if text is None:
                failed = _read_fresh(path.with_suffix(".failed"), self.ttl_s, marker=False)
                if failed is not None:  # the same profile failed within the TTL: no new attempt
                    raise SnapshotError(
                        f"{failed.strip()} (an earlier capture; retried after an hour or a profile change)"
                    )
                try:
                    text = await self._capture(base)
                    fd = _sealed(text)
                    try:
                        await self._validate(fd, base)
                    except BaseException:
                        os.close(fd)
                        raise
                except SnapshotError as exc:
                    _write_private(path.with_suffix(".failed"), str(exc))
                    raise
                finally:
                    await self._close_capture_container()
                _write_private(path, text)
                _prune(path, self.ttl_s)
            else:
                fd = _sealed(text)
            self._fd, self.path = fd, path
        except SnapshotError as exc:
            self.error = str(exc)
        except OSError as exc:
            self.error = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
        finally:
            self.capture_s = time.monotonic() - started
        if self.error:
            log.warning("shell snapshot: %s", self.error)
        else:
            log.info("shell snapshot %s (%s, %.0f ms)", self.path, "cached" if self.cached else "captured",
                     self.capture_s * 1000)  # fmt: skip

    async def _close_capture_container(self) -> None:
        """The capture's container (its own owner, ``SESSION/snapshot``) is not needed again."""
        container = sys.modules.get("codexbro.sandbox.container")
        if container is not None and self.capture_owner is not None:
            with contextlib.suppress(Exception):
                await container.close_containers(self.capture_owner)

    def _base_env(self) -> dict[str, str]:
        from codexbro.tools.exec_env import build_env

        env = build_env(self.policy)
        env.pop("BASH_ENV", None)
        env.pop("ENV", None)
        return env

    def _cache_path(self, base: Mapping[str, str]) -> Path:
        assert self.kind is not None
        digest = hashlib.sha256()
        shell = shutil.which(self.shell) or self.shell
        signature = [VERSION, self.kind, os.path.realpath(shell), _stat_sig(Path(os.path.realpath(shell)))]
        signature += [(p, _stat_sig(Path(p))) for p in profile_files(self.kind, base)]
        signature.append(sorted(base.items()))
        signature.append(repr(self.policy))
        digest.update(json.dumps(signature, sort_keys=True, default=str).encode("utf-8", "surrogateescape"))
        return self.home / "shell_snapshots" / f"{self.kind}-{digest.hexdigest()[:24]}.sh"

    async def _capture(self, base: dict[str, str]) -> str:
        """Run the login shell — inside the session's sandbox, read-only, when it has one: a
        profile may run programs from a workspace (a project venv on PATH), which sandboxed
        commands could have planted — and read its sections from an inherited pipe. Stops at the
        shell's exit, not at end-of-file (a background job the profile starts may hold the pipe)."""
        assert self.kind is not None
        out, err, code = await self._run_contained(
            [self.shell, "-lc", _CAPTURE[self.kind], "codexbro-snapshot"], base, _home_dir(base), channel=True
        )
        parts = out.split(SEP)
        if len(parts) != len(SECTIONS) + 1 or parts[-1] != b"done":
            tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {code}"]
            raise SnapshotError(f"the login shell did not finish the capture: {tail[0][:200]}")
        return render(self.kind, self.shell, dict(zip(SECTIONS, parts, strict=False)), base, self.policy)

    async def _validate(self, fd: int, base: dict[str, str]) -> None:
        """Load it once as a command would: it must print nothing and leave the script running."""
        assert self.kind is not None
        launch = restore(self.kind, [self.shell, "-lc", "printf codexbro-snapshot-ok"], base, fd)
        out, err, _code = await self._run_contained(
            launch.argv, launch.env, Path("/"), pass_fds=launch.pass_fds
        )
        if out != b"codexbro-snapshot-ok" or err.strip():
            detail = err.decode("utf-8", "replace").strip().splitlines()[:1] or ["no output"]
            raise SnapshotError(f"the snapshot did not load cleanly: {detail[0][:200]}")

    async def _run_contained(self, argv: list[str], env: dict[str, str], cwd: Path, *, channel: bool = False,
                             pass_fds: tuple[int, ...] = ()) -> tuple[bytes, bytes, int]:  # fmt: skip
        """(what it wrote — to the channel pipe when ``channel``, else stdout —, stderr, exit code)
        of ``argv`` run in the capture sandbox, bounded by ``timeout_s`` and ``MAX_CAPTURE``; its
        whole process group is killed afterwards."""
        from codexbro.tools.spawn import finish_process, kill_group

        prepared = None
        if self.sandbox is not None:
            from codexbro.sandbox.linux import SandboxUnavailable, choose_backend, prepare

            try:
                spec = self.sandbox() if callable(self.sandbox) else self.sandbox
                self.capture_owner = spec.owner
                # the session's backend, from the verdict kept in the home; a live probe, if one
                # is needed, runs in a thread (never on the event loop)
                backend = self.backend
                if backend == "auto":
                    backend = await asyncio.to_thread(choose_backend, self.home)
                prepared = prepare(spec, backend)
            except (SandboxUnavailable, OSError) as exc:
                raise SnapshotError(f"no sandbox to capture the login shell in: {exc}") from None
        loop = asyncio.get_running_loop()
        read_fd = write_fd = -1
        if channel:
            read_fd, write_fd = os.pipe()
            argv = [*argv, str(write_fd)]
        try:
            proc = await _start(self, argv, cwd=cwd, env=env, stdout=asyncio.subprocess.DEVNULL if channel
                                else asyncio.subprocess.PIPE, pass_fds=(*pass_fds, *([write_fd] if channel else [])),
                                sandbox=prepared)  # fmt: skip
        except BaseException:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)
            if prepared is not None:
                prepared.release()
            raise
        transport = None
        if channel:
            os.close(write_fd)
            stream = asyncio.StreamReader(limit=MAX_CAPTURE)
            transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream),
                                                        os.fdopen(read_fd, "rb", 0))  # fmt: skip
        else:
            assert proc.stdout is not None
            stream = proc.stdout
        out, err = bytearray(), bytearray()
        complete = asyncio.Event()  # the capture wrote its last section (the shell may linger)

        async def pump(source: asyncio.StreamReader | None, into: bytearray) -> None:
            while source is not None and (chunk := await source.read(65536)):
                into += chunk
                if len(into) > MAX_CAPTURE:
                    raise SnapshotError(f"the login shell wrote over {MAX_CAPTURE // 2**20} MiB")
                if channel and into is out and out.endswith(SEP + b"done"):
                    complete.set()

        pumps = [asyncio.ensure_future(pump(stream, out)), asyncio.ensure_future(pump(proc.stderr, err))]
        # A background job the profile starts keeps the process group — and so, under the spawn
        # supervisor, the process — alive: the capture is over when its last section arrives.
        ended: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(proc.wait()),
            asyncio.ensure_future(complete.wait()),
        ]
        try:
            done, _pending = await asyncio.wait(
                ended, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                raise SnapshotError(f"the login shell took over {self.timeout_s:g} s")
            await asyncio.wait(pumps, timeout=0.3)  # what is still in the pipes; not a background job's EOF
            for task in pumps:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for pending in (*pumps, *ended):
                pending.cancel()
            kill_group(proc)
            if proc.returncode is None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(proc.wait(), 2.0)
            if transport is not None:
                transport.close()
            if proc.returncode is not None:
                finish_process(proc, prepared)
            elif prepared is not None:
                prepared.release()
        return bytes(out), bytes(err), proc.returncode if proc.returncode is not None else -1


async def _start(snap: ShellSnapshot, argv: list[str], *, cwd: Path, env: dict[str, str], stdout: int,
                 pass_fds: tuple[int, ...], sandbox: Prepared | None) -> ToolProcess:  # fmt: skip
    """Start a capture or check process. ``aclose`` lets a start finish before it cancels:
    asyncio's ``create_subprocess_exec`` cancelled mid-start can wait forever for the child it
    killed (seen at session close under load)."""
    from codexbro.tools.spawn import start_process

    snap._starting += 1
    snap._idle.clear()
    try:
        return await start_process(
            argv, cwd=cwd, env=env, sandbox=sandbox, helpers=False, pass_fds=pass_fds,
            stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    finally:
        snap._starting -= 1
        if not snap._starting:
            snap._idle.set()


def restore(kind: str, argv: list[str], env: dict[str, str], fd: int) -> Launch:
    """``[SHELL, "-lc", SCRIPT]`` as a non-login shell that first loads the snapshot held by ``fd``."""
    if kind == "bash":
        return Launch([argv[0], "-c", argv[2]], {**env, "BASH_ENV": f"/dev/fd/{fd}"}, (fd,), True)
    # zsh parses a whole `-c` string before running it (the snapshot's aliases would come too
    # late): the script is the first argument, evaluated once the snapshot is in; fds over 9 are
    # closed through a `{var}` redirection.
    load = f'. /dev/fd/{fd}; __cbfd={fd}; exec {{__cbfd}}<&-; unset __cbfd; __cbs=$1; shift; eval "$__cbs"'
    return Launch([argv[0], "-c", load, argv[0], argv[2]], env, (fd,), True)

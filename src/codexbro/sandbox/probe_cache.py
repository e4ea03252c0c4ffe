"""Live probe verdicts kept between processes, for as long as nothing they depend on changes.

A backend's live probe (``probes.py``) starts a sandbox and tries every escape: ~130 ms, which
every ``codexbro exec`` paid before its first command. Its verdict depends only on the machine and
the sandbox code, so it is kept in ``$CODEXBRO_HOME/sandbox_probes.json`` (0600, written
atomically, never through a symlink) under a key made of everything it depends on: the boot (a
reboot or another kernel probes again), the namespaces the agent runs in (another container or
user namespace probes again), the user, the kernel settings that allow or restrict user
namespaces and ptrace, the bubblewrap binary and the Python that runs the probe, and codexbro's
sandbox code (any change to a file of ``codexbro/sandbox`` probes again) — and for a day at most.
Sandboxed commands cannot write the home (it is a protected path), so they cannot forge a verdict.
``codexbro sandbox doctor`` always probes live.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sys
import time
from functools import cache
from pathlib import Path

import msgspec

from codexbro import __version__
from codexbro.homefiles import read_own_file
from codexbro.sandbox.probes import ProbeResult

CACHE_FILE = "sandbox_probes.json"
TTL_S = 24 * 3600
SETTINGS = (
    "/proc/sys/kernel/random/boot_id",
    "/proc/sys/kernel/unprivileged_userns_clone",
    "/proc/sys/user/max_user_namespaces",
    "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    "/proc/sys/kernel/yama/ptrace_scope",
    "/proc/sys/kernel/seccomp/actions_avail",
)
NAMESPACES = ("mnt", "user", "pid", "net", "ipc", "uts", "cgroup")


class Stored(msgspec.Struct):
    key: str
    saved: float
    reports: dict[str, ProbeResult] = {}


_decoder = msgspec.json.Decoder(Stored)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(256).strip()
    except OSError:
        return ""


def _stat_sig(path: str | None) -> list[int] | None:
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode]


def _bwrap() -> list[object]:
    """The bubblewrap the backend runs (``linux.bwrap_path``: system directories only), resolved."""
    from codexbro.sandbox.linux import bwrap_path

    path = bwrap_path()
    return [path, path and os.path.realpath(path), _stat_sig(path and os.path.realpath(path))]


@cache
def machine_key() -> str:
    """Everything a probe verdict depends on, hashed."""
    sandbox_dir = Path(__file__).resolve().parent
    code = sorted((p.name, _stat_sig(str(p))) for p in sandbox_dir.glob("*.py"))
    namespaces = []
    for name in NAMESPACES:
        try:
            namespaces.append(os.readlink(f"/proc/self/ns/{name}"))
        except OSError:
            namespaces.append("")
    parts = [
        __version__, code, [_read(p) for p in SETTINGS], namespaces, list(os.uname()), os.getuid(), os.getgid(),
        _bwrap(), os.path.realpath(sys.executable), _stat_sig(os.path.realpath(sys.executable)),
    ]  # fmt: skip
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _load(home: Path) -> Stored | None:
    data = read_own_file(home / CACHE_FILE, 1 << 20)
    if data is None:
        return None
    try:
        stored = _decoder.decode(data)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return None
    if stored.key != machine_key() or not 0 <= time.time() - stored.saved <= TTL_S:
        return None
    return stored


def remembered(home: Path, backend: str) -> ProbeResult | None:
    """The kept verdict for ``backend`` on this machine as it is now, if any."""
    stored = _load(home)
    return None if stored is None else stored.reports.get(backend)


def remember(home: Path, result: ProbeResult) -> None:
    """Keep ``result`` beside the other backends' verdicts (a failure to write is ignored: the
    next process probes again)."""
    stored = _load(home) or Stored(machine_key(), time.time())
    stored.reports[result.backend] = result
    data = msgspec.json.encode(stored)
    tmp = home / f".{CACHE_FILE}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, home / CACHE_FILE)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()

"""Live probes: run a small program inside a backend and see what it can really do.

One probe program tries every kind of escape the sandbox defends against — writes outside the roots
and into protected paths, metadata changes, device nodes and the host's ``/dev/shm``, the agent's
``/proc`` entries and signals, TCP and Unix-socket connections to host listeners, ``TIOCSTI`` and
the agent's credential file — and reports what happened to each. ``codexbro sandbox doctor`` shows
the verdicts per protection; ``auto`` takes the strongest backend that passes the **floor**:
writes confined and the agent's secrets (environment, credential store) out of reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import stat
import sys
import tempfile
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from msgspec import Struct, field

from codexbro.sandbox import placeholders

if TYPE_CHECKING:
    from codexbro.sandbox.linux import Prepared

# protection → the probe checks that must all be "blocked" for it to count as enforced
PROTECTIONS: dict[str, tuple[str, ...]] = {
    "writes": ("write_outside", "write_protected", "create_protected", "move_out"),
    "metadata": ("chmod_outside", "utime_outside", "xattr_outside"),
    "devices": ("mknod_device", "planted_device", "host_shm"),
    "processes": ("agent_environ", "signal_agent", "outlives_agent"),
    "network": ("tcp_loopback",),
    "unix_sockets": ("unix_path_socket", "unix_abstract_socket"),
    "terminal": ("tiocsti",),
    "credentials": ("read_credentials",),
}
FLOOR = ("write_outside", "agent_environ", "read_credentials")

PROBE_SCRIPT = r"""
import errno, fcntl, json, os, socket, sys, termios
a = json.loads(sys.argv[1])
out = {}
def attempt(name, fn):
    try:
        r = fn()
        out[name] = ["allowed", "" if r is None else str(r)[:120]]
    except OSError as e:
        out[name] = ["blocked", errno.errorcode.get(e.errno, str(e.errno))]
def write(p, data="x"):
    with open(p, "w") as fh: fh.write(data)
attempt("write_inside", lambda: write(a["inside"] + "/ok"))
attempt("write_outside", lambda: write(a["outside"] + "/new"))
attempt("write_protected", lambda: write(a["inside"] + "/.git/config"))
def create_protected():
    p = a["inside"] + "/.codex"
    if os.path.isdir(p): os.rmdir(p)
    os.mkdir(p)
    write(p + "/config.toml")
attempt("create_protected", create_protected)
attempt("move_out", lambda: os.rename(a["inside"] + "/moveme", a["outside"] + "/moved"))
attempt("chmod_outside", lambda: os.chmod(a["outside"] + "/file", 0o600))
attempt("utime_outside", lambda: os.utime(a["outside"] + "/file", (1, 1)))
attempt("xattr_outside", lambda: os.setxattr(a["outside"] + "/file", "user.codexbro", b"1"))
attempt("mknod_device", lambda: os.mknod(a["inside"] + "/null2", 0o20600, os.makedev(1, 3)))
if os.path.exists(a["inside"] + "/planted"):
    attempt("planted_device", lambda: write(a["inside"] + "/planted"))
attempt("host_shm", lambda: write("/dev/shm/" + a["nonce"]))
attempt("agent_environ", lambda: open("/proc/%d/environ" % a["agent"], "rb").read()[:0] or "read")
attempt("signal_agent", lambda: os.kill(a["agent"], 0))
attempt("outlives_agent", lambda: None if os.getpid() > 8 else (_ for _ in ()).throw(OSError(errno.ESRCH, "pid ns")))
def connect(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM); s.settimeout(2)
    try: s.connect(addr)
    finally: s.close()
attempt("tcp_loopback", lambda: connect(socket.AF_INET, ("127.0.0.1", a["port"])))
attempt("unix_path_socket", lambda: connect(socket.AF_UNIX, a["unix"]))
attempt("unix_abstract_socket", lambda: connect(socket.AF_UNIX, "\0" + a["abstract"]))
def tiocsti():
    master, slave = os.openpty()
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    fcntl.ioctl(slave, termios.TIOCSTI, b"x")
attempt("tiocsti", tiocsti)
def creds():
    data = open(a["credentials"]).read()
    if a["secret"] not in data: raise OSError(errno.ENOENT, "hidden")
    return "read"
attempt("read_credentials", creds)
print(json.dumps(out))
"""


class ProbeResult(Struct):
    backend: str
    ok: bool  # the floor holds
    detail: str
    checks: dict[str, tuple[str, str]] = field(default_factory=dict)

    def enforced(self) -> dict[str, bool | None]:
        """Per protection: True enforced, False not, None not applicable/unknown."""
        out: dict[str, bool | None] = {}
        for name, checks in PROTECTIONS.items():
            verdicts = [self.checks[c][0] for c in checks if c in self.checks]  # some need root to set up
            out[name] = all(v == "blocked" for v in verdicts) if verdicts else None
        return out

    def not_enforced(self) -> list[str]:
        return [name for name, ok in self.enforced().items() if ok is False]


class _Listeners:
    """Host-side listeners the probe tries to reach: TCP on loopback, a path and an abstract socket."""

    def __init__(self, root: Path) -> None:
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.unix_path = str(root / "probe.sock")
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(self.unix_path)
        self.abstract_name = f"codexbro-probe-{secrets.token_hex(6)}"
        self.abstract = socket.socket(socket.AF_UNIX)
        self.abstract.bind("\0" + self.abstract_name)
        self._socks = [self.tcp, self.unix, self.abstract]
        for s in self._socks:
            s.listen(8)
            threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    @staticmethod
    def _accept(sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    def close(self) -> None:
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def run_probe(backend: str, *, network: bool = False) -> ProbeResult:
    """Run the probe program under ``backend`` (``none`` = unsandboxed, the control). Synchronous:
    it runs its own event loop in a thread (callers may be inside one)."""
    result: list[ProbeResult] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(_probe(backend, network))))
    thread.start()
    thread.join()
    return result[0]


async def _run(
    prepared: Prepared | None, argv: list[str], env: dict[str, str], cwd: Path
) -> tuple[int, str, str]:
    from codexbro.sandbox.linux import spawn_args

    if prepared is not None and prepared.container is not None:
        proc = await prepared.container.spawn(
            argv, cwd=str(cwd), env={**env, **prepared.env}, tty=False, stdin=None,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
    spawn = spawn_args(prepared, argv, env, str(cwd))
    aproc = await asyncio.create_subprocess_exec(
        *spawn.argv, env=spawn.env, preexec_fn=spawn.preexec, pass_fds=spawn.pass_fds, cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    out, err = await asyncio.wait_for(aproc.communicate(), 20)
    return aproc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def _probe(backend: str, network: bool) -> ProbeResult:
    from codexbro.sandbox.container import close_containers
    from codexbro.sandbox.linux import SandboxUnavailable, prepare
    from codexbro.sandbox.policy import SandboxSpec

    if sys.platform != "linux":
        return ProbeResult(backend, False, "not Linux")
    with tempfile.TemporaryDirectory(prefix="codexbro-probe-") as tmp:
        root = Path(tmp)
        inside, outside, home = root / "inside", root / "outside", root / "home"
        for d in (inside / ".git", outside, home):
            d.mkdir(parents=True)
        (inside / ".git" / "config").write_text("[core]\n")
        (inside / "moveme").write_text("x")
        (outside / "file").write_text("x")
        if os.getuid() == 0:  # a device node an earlier full-access command could have left behind
            os.mknod(inside / "planted", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        secret = secrets.token_hex(8)
        (home / "auth.json").write_text(json.dumps({"OPENAI_API_KEY": secret}))
        nonce = f"codexbro-probe-{secrets.token_hex(6)}"
        listeners = _Listeners(root)
        args = {
            "inside": str(inside), "outside": str(outside), "agent": os.getpid(), "port": listeners.port,
            "unix": listeners.unix_path, "abstract": listeners.abstract_name, "nonce": nonce,
            "credentials": str(home / "auth.json"), "secret": secret,
        }  # fmt: skip
        spec = SandboxSpec("workspace-write", (str(inside),), network, str(home))
        argv = [sys.executable, "-I", "-S", "-c", PROBE_SCRIPT, json.dumps(args)]
        try:
            prepared = None if backend == "none" else prepare(spec, backend)
        except (SandboxUnavailable, OSError) as exc:
            listeners.close()
            return ProbeResult(backend, False, str(exc))
        try:
            code, stdout, stderr = await _run(
                prepared, argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, inside
            )
        except (OSError, TimeoutError) as exc:
            return ProbeResult(backend, False, f"could not run a probe: {exc}")
        finally:
            listeners.close()
            if prepared is not None:
                prepared.release()
            await close_containers()
            placeholders.release_under(str(root))
        host_shm = Path("/dev/shm") / nonce
        leaked_shm = host_shm.exists()
        with contextlib.suppress(OSError):
            host_shm.unlink()
        if code != 0:
            detail = (stderr.strip() or f"probe exited {code}").splitlines()[-1][:300]
            return ProbeResult(backend, False, detail)
        try:
            checks = {k: (v[0], v[1]) for k, v in json.loads(stdout).items()}
        except (ValueError, AttributeError, IndexError):
            return ProbeResult(backend, False, f"unreadable probe output: {stdout[:200]!r}")
        if checks.get("host_shm", ("", ""))[0] == "allowed" and not leaked_shm:
            checks["host_shm"] = ("blocked", "private /dev/shm")
        if network:
            checks.pop("tcp_loopback", None)
        return _judge(backend, checks)


def _judge(backend: str, checks: dict[str, tuple[str, str]]) -> ProbeResult:
    if checks.get("write_inside", ("", ""))[0] != "allowed":
        return ProbeResult(backend, False, "the workspace is not writable inside the sandbox", checks)
    broken = [c for c in FLOOR if checks.get(c, ("?", ""))[0] != "blocked"]
    if broken:
        return ProbeResult(backend, False, "does not enforce: " + ", ".join(broken), checks)
    result = ProbeResult(backend, True, "", checks)
    missing = result.not_enforced()
    result.detail = "enforces everything probed" if not missing else "not enforced: " + ", ".join(missing)
    return result


_PROBING = threading.Lock()  # one probe at a time: the warm-up and a first command do not both run one


@cache
def backend_report(backend: str, home: Path | None = None) -> ProbeResult:
    """The probe of ``backend`` under a network-off policy, once per process; with the agent's
    ``home``, a verdict kept there for this machine as it is now (``probe_cache.py``) is used, and
    a new one kept."""
    from codexbro.sandbox import probe_cache

    with _PROBING:
        if home is not None and (kept := probe_cache.remembered(home, backend)) is not None:
            return kept
        result = _live_report(backend)
        if home is not None:
            probe_cache.remember(home, result)
        return result


@cache
def _live_report(backend: str) -> ProbeResult:
    return run_probe(backend)

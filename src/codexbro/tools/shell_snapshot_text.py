"""The shell snapshot's text: what the capture script writes, which profile files key the cache,
what is kept (``restored_vars``), the snapshot file itself (``render``), and its private cache on
disk. ``shell_snapshot.py`` has the why and the lifecycle."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from codexbro.config.types import ShellEnvironmentPolicy
from codexbro.tools.exec_env import policy_allows

VERSION = 1
TTL_S = 3600.0
CAPTURE_TIMEOUT_S = 10.0
KINDS = ("bash", "zsh")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Never restored: the shell's own state, and what each command is given fresh.
_SKIP = {
    "_", "PWD", "OLDPWD", "SHLVL", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "BASHPID", "PPID",
    "BASH_EXECUTION_STRING", "BASH_ARGV0", "RANDOM", "SECONDS", "LINENO", "HISTFILE", "PS1", "PS2",
    "ZDOTDIR",
}  # fmt: skip
_SKIP_PREFIXES = ("BASH_FUNC_", "CODEX_SANDBOX", "CODEXBRO_SNAPSHOT")
_READONLY_OPTIONS = {
    "login_shell",
    "restricted_shell",
    "interactive",
    "login",
    "privileged",
    "shinstdin",
    "zle",
}

# Shell builtins only (a profile may have broken PATH). `$1` is the descriptor the sections go to,
# in this order, each ended by SEP (two NULs never occur inside one): the exported variables
# (NUL-separated), the functions, the aliases, the options, the umask; then "done".
SEP = b"\0\0codexbro-section\0\0"
_SEP_SH = r"\0\0codexbro-section\0\0"
SECTIONS = ("env", "functions", "aliases", "options", "umask")
_CAPTURE = {
    "bash": rf"""d=$1
for __n in $(compgen -e); do printf '%s=%s\0' "$__n" "${{!__n}}"; done >&"$d"
printf '{_SEP_SH}' >&"$d"; declare -f >&"$d"
printf '{_SEP_SH}' >&"$d"; alias -p >&"$d"
printf '{_SEP_SH}' >&"$d"; {{ shopt -p; set +o; }} >&"$d"
printf '{_SEP_SH}' >&"$d"; umask >&"$d"
printf '{_SEP_SH}done' >&"$d"
""",
    "zsh": rf"""d=$1
for __n in ${{(k)parameters}}; do
  [[ ${{parameters[$__n]}} == *export* ]] && printf '%s=%s\0' "$__n" "${{(P)__n}}"
done >&$d
printf '{_SEP_SH}' >&$d; typeset -f >&$d
printf '{_SEP_SH}' >&$d; alias -L >&$d
printf '{_SEP_SH}' >&$d; setopt >&$d
printf '{_SEP_SH}' >&$d; umask >&$d
printf '{_SEP_SH}done' >&$d
""",
}
MAX_CAPTURE = 8 * 1024 * 1024  # a profile exporting more than this is not snapshotted
_PROFILES = {
    "bash": (
        "/etc/profile", "/etc/profile.d", "/etc/bash.bashrc", "/etc/bashrc", "~/.bash_profile",
        "~/.bash_login", "~/.profile", "~/.bashrc", "~/.bash_aliases",
    ),
    "zsh": (
        "/etc/zshenv", "/etc/zprofile", "/etc/zshrc", "/etc/zlogin", "/etc/zsh/zshenv", "/etc/zsh/zprofile",
        "/etc/zsh/zshrc", "/etc/zsh/zlogin", "$Z/.zshenv", "$Z/.zprofile", "$Z/.zshrc", "$Z/.zlogin",
    ),
}  # fmt: skip


def profile_files(kind: str, env: Mapping[str, str]) -> list[str]:
    """The files (and ``/etc/profile.d``'s entries) whose change invalidates a snapshot."""
    home = env.get("HOME") or os.path.expanduser("~")
    zdot = env.get("ZDOTDIR") or home
    files: list[str] = []
    for entry in _PROFILES[kind]:
        path = entry.replace("$Z", zdot).replace("~", home, 1) if entry[0] in "~$" else entry
        files.append(path)
        if os.path.isdir(path):
            with contextlib.suppress(OSError):
                files += sorted(str(p) for p in Path(path).iterdir())
    return files


def _home_dir(env: Mapping[str, str]) -> Path:
    """Where the capture runs: the home directory (no workspace file is read), or ``/``."""
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    return home if home.is_dir() else Path("/")


def _stat_sig(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _parse_env(raw: bytes) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in raw.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep:
            env[name.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return env


def restored_vars(captured: Mapping[str, str], base: Mapping[str, str], policy: ShellEnvironmentPolicy
                  ) -> tuple[dict[str, str], list[str]]:  # fmt: skip
    """What the profile changed that a command may get: (name → value to export, names to unset)."""

    def keep(name: str) -> bool:
        return (
            bool(_NAME.fullmatch(name)) and name not in _SKIP and not name.startswith(_SKIP_PREFIXES)
            and name not in policy.set and policy_allows(policy, name)
        )  # fmt: skip

    exports = {k: v for k, v in captured.items() if keep(k) and base.get(k) != v}
    unsets = [k for k in base if k not in captured and keep(k)]
    return exports, sorted(unsets)


def render(kind: str, shell: str, parts: Mapping[str, bytes], base: Mapping[str, str],
           policy: ShellEnvironmentPolicy) -> str:  # fmt: skip
    """The snapshot file: a script of builtins the shell sources before each command."""

    def text(name: str) -> str:
        return parts[name].decode("utf-8", "surrogateescape")

    exports, unsets = restored_vars(_parse_env(parts["env"]), base, policy)
    options = _options(kind, text("options"))
    # Options first — some change how what follows parses (bash `extglob`, zsh `extendedglob`) —
    # but bash's `set -o` ones last: `errexit` or `nounset` must not act on the snapshot itself.
    early = [line for line in options if not line.startswith("set ")]
    late = [line for line in options if line.startswith("set ")]
    lines = [
        f"# codexbro shell snapshot v{VERSION} ({kind}, {shell}), {time.strftime('%Y-%m-%dT%H:%M:%S%z')}",
        "# What the login profile changed; sourced before each command instead of a login shell.",
        "# Not restored: traps, ulimits, the profile's cd, variables it did not export.",
        'case ${BASH_ENV-} in /dev/fd/[0-9]*) eval "exec ${BASH_ENV#/dev/fd/}<&-" ;; esac',
        "unset BASH_ENV",
    ]
    if early:
        lines += ["{", *early, "} 2>/dev/null"]
    lines.append("{")
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(exports.items())]
    lines += [f"unset -v {k}" for k in unsets]
    lines += [text("functions").rstrip("\n"), text("aliases").rstrip("\n")]
    lines.append("} 2>/dev/null")
    mask = text("umask").strip()
    if re.fullmatch(r"[0-7]{3,4}", mask):
        lines.append(f"umask {mask}")
    if late:
        lines += ["{", *late, "} 2>/dev/null"]
    # codexbro's helper commands (apply_patch) stay first on PATH, whatever the profile set; the
    # `if` leaves `$?` at 0 for the script, as after a login shell's profile.
    lines.append('if [ -n "${CODEXBRO_PATH_FRONT-}" ]; then PATH="$CODEXBRO_PATH_FRONT:$PATH"; fi')
    return "\n".join(line for line in lines if line) + "\n"


def _options(kind: str, raw: str) -> list[str]:
    out: list[str] = []
    for line in raw.splitlines():
        words = line.split()
        if kind == "bash" and len(words) == 3 and words[0] in ("set", "shopt"):
            if words[2] not in _READONLY_OPTIONS and words[1] in ("-o", "+o", "-s", "-u"):
                out.append(line)
        elif kind == "zsh" and len(words) == 1 and _NAME.fullmatch(words[0]):
            out += [f"setopt {words[0]}"] if words[0].removeprefix("no") not in _READONLY_OPTIONS else []
    return out


def _sealed(text: str) -> int:
    """A memfd holding ``text`` that nobody can change any more (write, grow, shrink sealed)."""
    fd = os.memfd_create("codexbro-shell-snapshot", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, text.encode("utf-8", "surrogateescape"))
        seals = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_fresh(path: Path, ttl_s: float, *, marker: bool = True) -> str | None:
    """The cached snapshot (or failure note), when it is ours, private, and younger than the TTL."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if st.st_uid != os.getuid() or st.st_mode & 0o077 or time.time() - st.st_mtime > ttl_s:
            return None
        text = fh.read().decode("utf-8", "surrogateescape")
    return text if not marker or text.startswith(f"# codexbro shell snapshot v{VERSION} ") else None


def _write_private(path: Path, text: str) -> None:
    """Atomically, 0600 (``mkstemp``'s mode), in a 0700 directory."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".snapshot-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8", "surrogateescape"))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _prune(keep: Path, ttl_s: float) -> None:
    """Snapshots past their TTL go, all but ``keep`` (the directory stays small)."""
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in keep.parent.iterdir():
            with contextlib.suppress(OSError):
                old = now - entry.lstat().st_mtime > ttl_s
                if entry != keep and entry.suffix in (".sh", ".failed") and old:
                    entry.unlink()

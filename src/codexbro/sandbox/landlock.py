"""Landlock through raw syscalls (ctypes): write only beneath the writable roots, and from ABI 6 on
the two scopes — no connecting to abstract Unix sockets and no signals outside the sandbox.

Landlock also forbids a sandboxed process to ptrace, or read ``/proc/PID/{environ,mem}`` of, any
process outside its domain: the agent's memory and environment are out of reach even where the
PID namespace is not available.

``build_ruleset`` runs once in the parent (one ``landlock_create_ruleset``, one
``landlock_add_rule`` per path); ``restrict_self`` in the child between fork and exec — two system
calls.

``hidden`` (used only where there is no mount namespace to hide files with): the read right is
handled too and granted everywhere except the hidden paths, by granting it on every sibling along
the way down to each. Directory listing stays allowed everywhere; a file created after the rules
were built directly inside one of those ancestor directories is not readable by that command.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import stat
from collections.abc import Iterable

from codexbro.sandbox.syscalls import LIBC as _libc
from codexbro.sandbox.syscalls import set_no_new_privs

SYS_CREATE_RULESET = 444
SYS_ADD_RULE = 445
SYS_RESTRICT_SELF = 446
CREATE_RULESET_VERSION = 1 << 0
RULE_PATH_BENEATH = 1

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3

SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

_WRITE_V1 = (
    FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_CHAR | FS_MAKE_DIR | FS_MAKE_REG
    | FS_MAKE_SOCK | FS_MAKE_FIFO | FS_MAKE_BLOCK | FS_MAKE_SYM
)  # fmt: skip
FILE_RIGHTS = FS_WRITE_FILE | FS_TRUNCATE | FS_READ_FILE


class RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class LandlockError(OSError):
    pass


def abi_version() -> int:
    """The kernel's Landlock ABI (0 when unsupported or disabled)."""
    if platform.system() != "Linux":
        return 0
    result = _libc.syscall(
        SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION)
    )
    return int(result) if result > 0 else 0


def write_rights(abi: int) -> int:
    rights = _WRITE_V1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    return rights


def scopes(abi: int) -> int:
    return SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0


def _add(ruleset: int, path: str, rights: int, *, follow: bool = True) -> None:
    try:
        pfd = os.open(path, os.O_PATH | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW))
    except OSError:
        return  # a path that does not exist (or vanished) grants nothing
    try:
        mode = os.fstat(pfd).st_mode
        if stat.S_ISLNK(mode):
            return  # swapped for a link since it was listed: it grants nothing
        if not stat.S_ISDIR(mode):
            rights &= FILE_RIGHTS
        if not rights:
            return
        rule = PathBeneathAttr(rights, pfd)
        if _libc.syscall(SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH),
                         ctypes.byref(rule), ctypes.c_uint32(0)) != 0:  # fmt: skip
            err = ctypes.get_errno()
            raise LandlockError(err, f"landlock_add_rule({path}) failed: {os.strerror(err)}")
    finally:
        os.close(pfd)


def _read_grants(hidden: list[str]) -> list[str]:
    """Paths whose subtrees may be read: every sibling along the way to each hidden path."""
    on_path: set[str] = set()
    for target in hidden:
        cur = target
        while True:
            on_path.add(cur)
            parent = os.path.dirname(cur)
            if parent == cur:
                break
            cur = parent
    grants = []
    for ancestor in sorted({os.path.dirname(p) for p in on_path if p != "/"}):
        if ancestor in hidden:
            continue
        with contextlib.suppress(OSError):
            for name in os.listdir(ancestor):
                child = os.path.join(ancestor, name)
                # A symlink is not granted: following it could grant an ancestor of a hidden path.
                if child not in on_path and not os.path.islink(child):
                    grants.append(child)
    return grants


def restrict(writable: Iterable[str], *, hidden: Iterable[str] = (), abi: int | None = None) -> int:
    """Restrict the calling process (and its future children). Returns the ABI used."""
    fd = build_ruleset(writable, hidden=hidden, abi=abi)
    try:
        restrict_self(fd)
    finally:
        os.close(fd)
    return abi_version() if abi is None else abi


def restrict_self(ruleset: int) -> None:
    """Child side: ``no_new_privs`` and the prepared ruleset — two system calls."""
    set_no_new_privs()
    if _libc.syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
        err = ctypes.get_errno()
        raise LandlockError(err, f"landlock_restrict_self failed: {os.strerror(err)}")


def build_ruleset(writable: Iterable[str], *, hidden: Iterable[str] = (), abi: int | None = None) -> int:
    """A ruleset descriptor (close-on-exec; the caller closes it): write rights beneath
    ``writable``, the scopes, and with ``hidden`` the read carve-out."""
    abi = abi_version() if abi is None else abi
    if abi <= 0:
        raise LandlockError(0, "Landlock is not available on this kernel")
    hidden = [os.path.abspath(h) for h in hidden]
    writes = write_rights(abi)
    reads = FS_READ_FILE if hidden else 0
    attr = RulesetAttr(writes | reads | (FS_READ_DIR if hidden else 0), 0, scopes(abi))
    size = 24 if abi >= 6 else 8
    fd = int(_libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)))
    if fd < 0:
        err = ctypes.get_errno()
        raise LandlockError(err, f"landlock_create_ruleset failed: {os.strerror(err)}")
    try:
        for path in writable:
            covers_hidden = any(h == path or h.startswith(path.rstrip("/") + "/") for h in hidden)
            _add(fd, path, writes | (0 if covers_hidden else reads))
        if hidden:
            _add(fd, "/", FS_READ_DIR)
            for path in _read_grants(hidden):
                _add(fd, path, reads | FS_READ_DIR, follow=False)
    except BaseException:
        os.close(fd)
        raise
    os.set_inheritable(fd, False)
    return fd

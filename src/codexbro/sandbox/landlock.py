"""Landlock through raw syscalls (ctypes): read everywhere, write only beneath the writable roots.

The ruleset is built in the parent (``build_ruleset`` returns an fd); the child only calls
``prctl(PR_SET_NO_NEW_PRIVS)`` and ``landlock_restrict_self(fd)`` — a couple of syscalls between
fork and exec, so sandboxing a command costs microseconds.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Iterable

# Syscall numbers are the same on x86_64 and aarch64 for the landlock family.
SYS_CREATE_RULESET = 444
SYS_ADD_RULE = 445
SYS_RESTRICT_SELF = 446
CREATE_RULESET_VERSION = 1 << 0
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

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

_WRITE_V1 = (
    FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_CHAR | FS_MAKE_DIR | FS_MAKE_REG
    | FS_MAKE_SOCK | FS_MAKE_FIFO | FS_MAKE_BLOCK | FS_MAKE_SYM
)  # fmt: skip
FILE_RIGHTS = FS_WRITE_FILE | FS_TRUNCATE


class RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


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


def build_ruleset(writable: Iterable[str], abi: int | None = None) -> int:
    """A ruleset fd that handles every write right and grants them beneath ``writable`` paths.

    Paths that do not exist are skipped; a file path gets file rights only. The caller closes the fd.
    """
    abi = abi_version() if abi is None else abi
    if abi <= 0:
        raise LandlockError(0, "Landlock is not available on this kernel")
    handled = write_rights(abi)
    attr = RulesetAttr(handled)
    fd = int(_libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
                           ctypes.c_uint32(0)))  # fmt: skip
    if fd < 0:
        err = ctypes.get_errno()
        raise LandlockError(err, f"landlock_create_ruleset failed: {os.strerror(err)}")
    try:
        for path in writable:
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                is_dir = os.path.isdir(path)
                rule = PathBeneathAttr(handled if is_dir else handled & FILE_RIGHTS, pfd)
                if _libc.syscall(SYS_ADD_RULE, ctypes.c_int(fd), ctypes.c_int(RULE_PATH_BENEATH),
                                 ctypes.byref(rule), ctypes.c_uint32(0)) != 0:  # fmt: skip
                    err = ctypes.get_errno()
                    raise LandlockError(err, f"landlock_add_rule({path}) failed: {os.strerror(err)}")
            finally:
                os.close(pfd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def restrict_self(ruleset_fd: int) -> None:
    """Apply the ruleset to the calling process (and its future children). Child side."""
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise LandlockError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if _libc.syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset_fd), ctypes.c_uint32(0)) != 0:
        err = ctypes.get_errno()
        raise LandlockError(err, f"landlock_restrict_self failed: {os.strerror(err)}")

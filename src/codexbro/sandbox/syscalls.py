"""The Linux system calls the sandbox needs and Python does not wrap, through ctypes.

Everything here may run in a forked child between ``fork`` and ``exec``: no allocation-heavy work,
no locks, errors raised as ``OSError`` with the call named so the child can report it and exit.
Syscall numbers are the same on x86_64 and aarch64 for the calls looked up by number here
(``mount_setattr`` 442 and the Landlock family 444–446 are "new" syscalls, numbered alike on all
architectures); the others go through libc.
"""

from __future__ import annotations

import ctypes
import errno
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
SYS_MOUNT_SETATTR = 442
AT_FDCWD = -100

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_SECUREBITS = 28
# SECBIT_NOROOT | _LOCKED, SECBIT_NO_SETUID_FIXUP | _LOCKED, SECBIT_KEEP_CAPS_LOCKED,
# SECBIT_NO_CAP_AMBIENT_RAISE | _LOCKED: root gains nothing from exec or setuid.
SECUREBITS_LOCKDOWN = 0x1 | 0x2 | 0x4 | 0x8 | 0x20 | 0x40 | 0x80

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
LIBC = _libc  # one handle for the sandbox modules


def _fail(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        raise _fail("unshare")


SYS_CLONE = {"x86_64": 56, "aarch64": 220}


def clone_into(flags: int) -> int:
    """``fork`` into new namespaces in one step: the raw ``clone`` system call with no new stack
    (the child continues on a copy, as after ``fork``). Returns 0 in the child. Only for a
    single-threaded caller that execs soon: libc's fork handlers do not run."""
    import platform
    import signal

    number = SYS_CLONE.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, f"clone: unsupported architecture {platform.machine()}")
    # Every argument after the flags is zero, so their order (it differs by architecture) is moot.
    pid = _libc.syscall(number, ctypes.c_ulong(flags | signal.SIGCHLD), None, None, None, None)
    if pid < 0:
        raise _fail("clone")
    return int(pid)


def setns(fd: int, nstype: int) -> None:
    if _libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        raise _fail("setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    rc = _libc.mount(
        source.encode() if source is not None else None,
        target.encode(),
        fstype.encode() if fstype is not None else None,
        flags,
        data.encode() if data is not None else None,
    )
    if rc != 0:
        raise _fail(f"mount {target}")


class MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def mount_setattr(path: str, attr_set: int, attr_clr: int = 0, *, recursive: bool = True) -> None:
    """Change per-mount flags of ``path`` (and, recursively, every mount below it) in one call."""
    attr = MountAttr(attr_set, attr_clr, 0, 0)
    rc = _libc.syscall(
        SYS_MOUNT_SETATTR, ctypes.c_int(AT_FDCWD), path.encode(),
        ctypes.c_uint(AT_RECURSIVE if recursive else 0), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
    )  # fmt: skip
    if rc != 0:
        raise _fail(f"mount_setattr {path}")


def prctl(option: int, arg: int = 0, what: str = "prctl") -> None:
    if _libc.prctl(option, arg, 0, 0, 0) != 0:
        raise _fail(what)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1, what="prctl(PR_SET_NO_NEW_PRIVS)")


def set_parent_death_signal(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig, what="prctl(PR_SET_PDEATHSIG)")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 40


def drop_all_capabilities(last_cap: int) -> None:
    """Empty the bounding set, lock the securebits, clear ambient, then every capability set.

    After this even uid 0 gains no capability from ``execve`` (bounding set empty, NOROOT locked).
    Needs CAP_SETPCAP for the first steps; without it (an unprivileged caller outside a user
    namespace) those steps are skipped, which is harmless: such a caller has no capabilities.
    """
    have_setpcap = True
    for cap in range(last_cap + 1):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            have_setpcap = False
            break
    if have_setpcap:
        prctl(PR_SET_SECUREBITS, SECUREBITS_LOCKDOWN, what="prctl(PR_SET_SECUREBITS)")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc.capset(ctypes.byref(header), ctypes.byref(data)) != 0:
        raise _fail("capset")


def write_file(path: str, data: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)

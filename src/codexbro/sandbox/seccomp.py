"""A seccomp-BPF filter that takes the network away: ``socket``/``socketpair`` only for ``AF_UNIX``,
``io_uring_setup`` refused (it could open sockets behind the filter's back). Everything else is
allowed, so ordinary programs keep working; without an internet socket there is no network.

Upstream also refuses connect/send/recv-family calls outright (breaking Unix-socket clients); this
narrower filter gives the same network isolation with fewer casualties.

The BPF program is assembled in the parent (``build_filter``); the child only calls ``prctl`` twice.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_KILL_PROCESS = 0x80000000
AF_UNIX = 1

# BPF opcodes
LD_W_ABS = 0x20
JEQ_K = 0x15
RET_K = 0x06

# offsets in struct seccomp_data
OFF_NR = 0
OFF_ARCH = 4
OFF_ARG0 = 16

ARCHES = {
    "x86_64": (0xC000003E, {"socket": 41, "socketpair": 53, "io_uring_setup": 425}),
    "aarch64": (0xC00000B7, {"socket": 198, "socketpair": 199, "io_uring_setup": 425}),
}


class SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]


_libc = ctypes.CDLL(None, use_errno=True)


def supported() -> bool:
    return platform.system() == "Linux" and platform.machine() in ARCHES


def _ins(code: int, jt: int, jf: int, k: int) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


def program() -> list[tuple[int, int, int, int]]:
    arch, nrs = ARCHES[platform.machine()]
    deny = SECCOMP_RET_ERRNO | errno.EPERM
    prog = [
        _ins(LD_W_ABS, 0, 0, OFF_ARCH),
        _ins(JEQ_K, 1, 0, arch),
        _ins(RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),  # a foreign ABI could dodge the numbers below
        _ins(LD_W_ABS, 0, 0, OFF_NR),
        _ins(JEQ_K, 0, 1, nrs["io_uring_setup"]),
        _ins(RET_K, 0, 0, deny),
        _ins(JEQ_K, 1, 0, nrs["socket"]),
        _ins(JEQ_K, 0, 3, nrs["socketpair"]),
        _ins(LD_W_ABS, 0, 0, OFF_ARG0),  # the domain argument
        _ins(JEQ_K, 1, 0, AF_UNIX),
        _ins(RET_K, 0, 0, deny),
        _ins(RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
    return prog


class Filter:
    """A ready-to-install program; keep the object alive until the child has installed it."""

    def __init__(self) -> None:
        prog = program()
        self._array = (SockFilter * len(prog))(*(SockFilter(*ins) for ins in prog))
        self.fprog = SockFprog(len(prog), ctypes.cast(self._array, ctypes.POINTER(SockFilter)))
        self.raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)

    def install(self) -> None:
        """Child side: no_new_privs, then the filter."""
        if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(self.fprog), 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "prctl(PR_SET_SECCOMP) failed")


def build_filter() -> Filter:
    if not supported():
        raise OSError(errno.ENOSYS, f"seccomp filter not available for {platform.machine()}")
    return Filter()

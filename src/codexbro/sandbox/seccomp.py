"""The seccomp-BPF filter every sandboxed command runs under (every backend).

Always refused (EPERM): ``ptrace`` and ``process_vm_readv/writev`` (no reading or steering other
processes), the ``TIOCSTI``/``TIOCLINUX`` ioctls (no keystrokes pushed into a terminal), ``mknod``
of character or block devices, any mode with the set-user-id or set-group-id bit (``chmod``,
``fchmod``, ``fchmodat(2)``, ``creat``, ``open``/``openat`` creating, ``mknod``: a set-uid file
made inside would run with the agent's uid outside, where ``nosuid`` does not apply), ``io_uring``
(its operations bypass this filter), the kernel keyring calls, and on x86_64 the x32 ABI (syscall
numbers with bit 30 set; a second numbering the checks below would not see). ``openat2`` answers
ENOSYS (its mode is in a struct the filter cannot read; libc falls back to ``openat``). A foreign
architecture (i386 ``int 0x80``) kills the process.

With the network off, as upstream: ``socket`` and ``socketpair`` only for ``AF_UNIX`` and not
``SOCK_DGRAM`` (a datagram socket, even one of a pair, can ``sendmsg`` to a host service by path,
which the filter cannot see), and ``connect``, ``bind``, ``listen``, ``accept``, ``accept4`` and
``sendto`` with an address refused. Stream socket pairs and already-connected sockets keep working
(subprocess plumbing); the accepted casualty is every Unix-socket *client* — ssh-agent, docker,
D-Bus, syslog — and datagram socket pairs in network-off modes. ``network_access = true`` lifts the
network part.

The program is assembled in the parent (``Filter``); the child calls ``prctl`` twice.
``Filter.raw`` is the same program as bytes, for ``bwrap --seccomp FD``.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_KILL_PROCESS = 0x80000000

AF_UNIX = 1
SOCK_STREAM = 1
SOCK_SEQPACKET = 5
SOCK_TYPE_MASK = 0xF
S_IFMT = 0o170000
S_ISUID_GID = 0o6000
O_CREAT_OR_TMPFILE = 0o100 | 0o20000000  # O_CREAT | __O_TMPFILE
S_IFCHR = 0o020000
S_IFBLK = 0o060000
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
X32_SYSCALL_BIT = 0x40000000

# BPF opcodes
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
AND_K = 0x54
RET_K = 0x06

# offsets in struct seccomp_data (little-endian: the low word of argument i is at 16 + 8 i)
OFF_NR = 0
OFF_ARCH = 4


def _arg(i: int, high: bool = False) -> int:
    return 16 + 8 * i + (4 if high else 0)


_X86_64 = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "ioctl": 16, "mknod": 133,
    "mknodat": 259, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "keyctl": 250, "add_key": 248, "request_key": 249, "socket": 41, "connect": 42, "accept": 43,
    "sendto": 44, "bind": 49, "listen": 50, "accept4": 288, "socketpair": 53, "chmod": 90, "fchmod": 91,
    "fchmodat": 268, "fchmodat2": 452, "open": 2, "creat": 85, "openat": 257, "openat2": 437,
}  # fmt: skip
_AARCH64 = {
    "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "ioctl": 29, "mknodat": 33,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "keyctl": 219,
    "add_key": 217, "request_key": 218, "socket": 198, "connect": 203, "accept": 202, "sendto": 206,
    "bind": 200, "listen": 201, "accept4": 242, "socketpair": 199, "fchmod": 52, "fchmodat": 53,
    "fchmodat2": 452, "openat": 56, "openat2": 437,
}  # fmt: skip
# Where a mode argument is (and, for the open family, the flags that make it count).
MODE_ARG = {"chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2, "creat": 1}
CREATE_MODE_ARG = {"open": (1, 2), "openat": (2, 3)}  # name: (flags argument, mode argument)
ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (0xC000003E, _X86_64),
    "aarch64": (0xC00000B7, _AARCH64),
}
ALWAYS_DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key",
)  # fmt: skip
NETWORK_DENIED = ("connect", "accept", "accept4", "bind", "listen")


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


class _Asm:
    """Classic BPF with named jump targets (forward jumps only, as BPF requires)."""

    def __init__(self) -> None:
        self.code: list[tuple[int, str | int, str | int, int]] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def ins(self, op: int, k: int, jt: str | int = 0, jf: str | int = 0) -> None:
        self.code.append((op, jt, jf, k))

    def assemble(self) -> list[tuple[int, int, int, int]]:
        out = []
        for i, (op, jt, jf, k) in enumerate(self.code):
            t = self.labels[jt] - i - 1 if isinstance(jt, str) else jt
            f = self.labels[jf] - i - 1 if isinstance(jf, str) else jf
            if not (0 <= t < 256 and 0 <= f < 256):
                raise ValueError("seccomp program: jump out of range")
            out.append((op, t, f, k))
        return out


def program(network: bool, machine: str | None = None) -> list[tuple[int, int, int, int]]:
    arch, nrs = ARCHES[machine or platform.machine()]
    a = _Asm()
    a.ins(LD_W_ABS, OFF_ARCH)
    a.ins(JEQ_K, arch, 1, 0)
    a.ins(RET_K, SECCOMP_RET_KILL_PROCESS)  # a foreign ABI could dodge the numbers below
    a.ins(LD_W_ABS, OFF_NR)
    if arch == ARCHES["x86_64"][0]:
        a.ins(JGE_K, X32_SYSCALL_BIT, "deny", 0)
    for name in ALWAYS_DENIED:
        a.ins(JEQ_K, nrs[name], "deny", 0)
    a.ins(JEQ_K, nrs["openat2"], "nosys", 0)  # its mode hides in a struct: libc falls back to openat
    a.ins(JEQ_K, nrs["ioctl"], "ioctl", 0)
    if "mknod" in nrs:
        a.ins(JEQ_K, nrs["mknod"], "mknod", 0)
    a.ins(JEQ_K, nrs["mknodat"], "mknodat", 0)
    for name in MODE_ARG:
        if name in nrs:
            a.ins(JEQ_K, nrs[name], f"mode{MODE_ARG[name]}", 0)
    for name in CREATE_MODE_ARG:
        if name in nrs:
            a.ins(JEQ_K, nrs[name], f"create{name}", 0)
    if not network:
        for name in NETWORK_DENIED:
            a.ins(JEQ_K, nrs[name], "deny", 0)
        a.ins(JEQ_K, nrs["socket"], "socket", 0)
        a.ins(JEQ_K, nrs["socketpair"], "socket", 0)  # a datagram pair can sendmsg to any path
        a.ins(JEQ_K, nrs["sendto"], "sendto", 0)
    a.ins(RET_K, SECCOMP_RET_ALLOW)

    a.label("ioctl")  # the request number is an unsigned int: its low word is all there is
    a.ins(LD_W_ABS, _arg(1))
    a.ins(JEQ_K, TIOCSTI, "deny", 0)
    a.ins(JEQ_K, TIOCLINUX, "deny", 0)
    a.ins(RET_K, SECCOMP_RET_ALLOW)
    for label, index in (("mknod", 1), ("mknodat", 2)):
        a.label(label)
        a.ins(LD_W_ABS, _arg(index))
        a.ins(JSET_K, S_ISUID_GID, "deny", 0)
        a.ins(AND_K, S_IFMT)
        a.ins(JEQ_K, S_IFCHR, "deny", 0)
        a.ins(JEQ_K, S_IFBLK, "deny", 0)
        a.ins(RET_K, SECCOMP_RET_ALLOW)
    # No set-user-id or set-group-id file: one made inside would run with the agent's uid outside.
    for index in sorted(set(MODE_ARG.values())):
        a.label(f"mode{index}")
        a.ins(LD_W_ABS, _arg(index))
        a.ins(JSET_K, S_ISUID_GID, "deny", 0)
        a.ins(RET_K, SECCOMP_RET_ALLOW)
    for name, (flags_at, mode_at) in CREATE_MODE_ARG.items():
        if name in nrs:
            a.label(f"create{name}")
            a.ins(LD_W_ABS, _arg(flags_at))
            a.ins(JSET_K, O_CREAT_OR_TMPFILE, 0, "allow")  # the mode only counts when creating
            a.ins(LD_W_ABS, _arg(mode_at))
            a.ins(JSET_K, S_ISUID_GID, "deny", "allow")
    if not network:
        a.label(
            "socket"
        )  # and socketpair: Unix stream and seqpacket only (datagram and raw can sendmsg anywhere)
        a.ins(LD_W_ABS, _arg(0))
        a.ins(JEQ_K, AF_UNIX, 0, "deny")
        a.ins(LD_W_ABS, _arg(1))
        a.ins(AND_K, SOCK_TYPE_MASK)
        a.ins(JEQ_K, SOCK_STREAM, "allow", 0)
        a.ins(JEQ_K, SOCK_SEQPACKET, "allow", "deny")
        a.label("sendto")  # a destination address (argument 4) means an unconnected send
        a.ins(LD_W_ABS, _arg(4))
        a.ins(JEQ_K, 0, 0, "deny")
        a.ins(LD_W_ABS, _arg(4, high=True))
        a.ins(JEQ_K, 0, 0, "deny")
        a.ins(RET_K, SECCOMP_RET_ALLOW)
    a.label("allow")
    a.ins(RET_K, SECCOMP_RET_ALLOW)
    a.label("nosys")
    a.ins(RET_K, SECCOMP_RET_ERRNO | errno.ENOSYS)
    a.label("deny")
    a.ins(RET_K, SECCOMP_RET_ERRNO | errno.EPERM)
    return a.assemble()


class Filter:
    """A ready-to-install program; keep the object alive until the child has installed it."""

    def __init__(self, network: bool) -> None:
        prog = program(network)
        self._array = (SockFilter * len(prog))(*(SockFilter(*ins) for ins in prog))
        self.fprog = SockFprog(len(prog), ctypes.cast(self._array, ctypes.POINTER(SockFilter)))
        self.raw = b"".join(struct.pack("=HBBI", *ins) for ins in prog)

    def install(self) -> None:
        """Child side: no_new_privs, then the filter."""
        from codexbro.sandbox.syscalls import set_no_new_privs

        set_no_new_privs()
        if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(self.fprog), 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "prctl(PR_SET_SECCOMP) failed")


_CACHE: dict[bool, Filter] = {}


def build_filter(network: bool = False) -> Filter:
    if not supported():
        raise OSError(errno.ENOSYS, f"seccomp filter not available for {platform.machine()}")
    if network not in _CACHE:
        _CACHE[network] = Filter(network)
    return _CACHE[network]

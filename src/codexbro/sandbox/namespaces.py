"""The namespace sandbox's view of the system: upstream 0.169's bubblewrap setup, done with
syscalls, for a **container** that lives for the session and whose spawn server starts every
command (``server.py``, ``container.py``):

- a new **user namespace** mapping only the caller's own uid and gid (as root too: root inside has
  no capability over the host, and all capabilities are dropped before the command runs);
- a new **mount namespace** in which every mount is read-only, the writable roots are bind-mounted
  writable (``nodev``, ``nosuid``), the protected paths inside them read-only again, the agent's
  home (credentials, sessions) covered by an empty read-only tmpfs (roots inside it bound again on
  top), the directories leading to deeper protected paths pinned (bound onto themselves: a mount
  point cannot be renamed away), ``/dev`` a private tmpfs with
  null, zero, full, random, urandom and tty bound in, its own ``devpts`` and a private ``/dev/shm``;
- a new **PID namespace** with its own ``/proc``: the agent and every other host process are
  invisible and unreachable; its init is tied to the agent (parent-death signals), and when it dies
  every process in it dies. Each non-interactive command also gets a PID namespace of its own
  inside it, so whatever the command leaves behind dies when it ends (or is interrupted);
- new **IPC**, **UTS** and, with the network off, **network** namespaces (only a down loopback inside, so
  host services on abstract Unix sockets are unreachable too).

Read-only is applied with ``mount_setattr`` (Linux ≥ 5.12, recursive and atomic); older kernels
fall back to remounting each mount listed in ``/proc/self/mountinfo``.
"""

from __future__ import annotations

import errno
import os
import re
from typing import NamedTuple

from codexbro.sandbox import syscalls as sc

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))  # fmt: skip
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus")


class View(NamedTuple):
    """What the child builds; computed in the parent (paths exist when the spawn starts). A
    NamedTuple, not a Struct: the container server imports it (see ``launch.Plan``)."""

    writable: tuple[str, ...]
    protected: tuple[str, ...]
    pinned: tuple[str, ...]
    hidden_dirs: tuple[str, ...]
    network: bool
    uid: int
    gid: int
    # (device, inode) of each protected, pinned and hidden path: one replaced on the host makes a new view
    identity: tuple[tuple[int, int], ...] = ()


def _map_ids(uid: int, gid: int) -> None:
    sc.write_file("/proc/self/setgroups", "deny")
    sc.write_file("/proc/self/uid_map", f"{uid} {uid} 1")
    sc.write_file("/proc/self/gid_map", f"{gid} {gid} 1")


# ---- read-only trees: mount_setattr, or remounts from mountinfo on old kernels ------------------

_OPTION_FLAGS = {"nosuid": sc.MS_NOSUID, "nodev": sc.MS_NODEV, "noexec": sc.MS_NOEXEC}


def _unescape(field: bytes) -> str:
    """A mountinfo path: spaces, tabs, newlines and backslashes come as ``\\ooo`` octal escapes;
    every other byte is the path's own (non-ASCII names stay intact)."""
    return os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), field))


def _mounts_below(path: str) -> list[tuple[str, int]]:
    """(mount point, locked per-mount flags) of ``path`` and every mount beneath it."""
    prefix = path.rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo", "rb") as fh:
        for line in fh:
            fields = line.split()
            point = _unescape(fields[4])
            if point == path or point.startswith(prefix) or path == "/":
                flags = 0
                for opt in fields[5].decode("ascii", "replace").split(","):
                    flags |= _OPTION_FLAGS.get(opt, 0)
                found.append((point, flags))
    return found


def set_tree(path: str, *, read_only: bool, harden: bool = False, recursive: bool = True) -> None:
    """Make the mount at ``path`` (and the mounts below it) read-only or writable; ``harden`` adds
    ``nodev`` and ``nosuid``."""
    extra = sc.MOUNT_ATTR_NODEV | sc.MOUNT_ATTR_NOSUID if harden else 0
    try:
        if read_only:
            sc.mount_setattr(path, sc.MOUNT_ATTR_RDONLY | extra, recursive=recursive)
        else:
            try:
                sc.mount_setattr(path, extra, sc.MOUNT_ATTR_RDONLY, recursive=recursive)
            except OSError as exc:
                if exc.errno != errno.EPERM or not recursive:
                    raise
                # A mount below that the host made read-only stays so; the root itself turns writable.
                sc.mount_setattr(path, extra, sc.MOUNT_ATTR_RDONLY, recursive=False)
        return
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise
    mounts = _mounts_below(path) if recursive else [(path, 0)]
    for point, locked in mounts:
        flags = sc.MS_BIND | sc.MS_REMOUNT | locked | (sc.MS_RDONLY if read_only else 0)
        if harden:
            flags |= sc.MS_NODEV | sc.MS_NOSUID
        try:
            sc.mount(None, point, None, flags)
        except OSError:
            if point == path or read_only:  # a mount left writable would be a hole: fail closed
                raise


# ---- the view ------------------------------------------------------------------------------------


def _private_dev(host_dev: int) -> None:
    sc.mount("tmpfs", "/dev", "tmpfs", sc.MS_NOSUID | sc.MS_NOEXEC, "mode=0755,size=64k")
    for name in DEVICES:
        target = f"/dev/{name}"
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666))
        try:
            sc.mount(f"/proc/self/fd/{host_dev}/{name}", target, None, sc.MS_BIND)
        except OSError:
            os.unlink(target)  # a device the host lacks (no /dev/tty in some containers)
    os.mkdir("/dev/pts", 0o755)
    sc.mount(
        "devpts", "/dev/pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620"
    )
    os.mkdir("/dev/shm", 0o1777)
    sc.mount("tmpfs", "/dev/shm", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=1777")
    for name, target in DEV_LINKS:
        os.symlink(target, f"/dev/{name}")


def enter(view: View) -> None:
    """The container's first process, before it forks the namespace's init: namespaces, ids and
    the mount view."""
    flags = sc.CLONE_NEWUSER | sc.CLONE_NEWNS | sc.CLONE_NEWPID | sc.CLONE_NEWIPC | sc.CLONE_NEWUTS
    if not view.network:
        flags |= sc.CLONE_NEWNET
    sc.unshare(flags)
    _map_ids(view.uid, view.gid)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    host_dev = os.open("/dev", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for path in view.writable:
            sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
        for path in view.pinned:  # mount points: they can be neither renamed nor removed
            sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
        for path in view.protected:
            sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
        set_tree("/", read_only=True)
        for path in view.writable:
            set_tree(path, read_only=False, harden=True)
        for path in view.protected:
            # A protected directory with a writable root inside (the one that leads to a hidden home)
            # is read-only itself, not the root below it.
            holds_root = any(w.startswith(path.rstrip("/") + "/") for w in view.writable)
            set_tree(path, read_only=True, harden=True, recursive=not holds_root)
        _private_dev(host_dev)
    finally:
        os.close(host_dev)
    for path in view.hidden_dirs:
        _cover(path, view.writable)
    set_tree("/dev", read_only=True, recursive=False)


def _cover(path: str, writable: tuple[str, ...]) -> None:
    """An empty read-only tmpfs over ``path``; writable roots inside it (already arranged, with
    their pinned and protected mounts) are bound again on top, from descriptors opened before."""
    prefix = path.rstrip("/") + "/"
    inner = [w for w in writable if w.startswith(prefix)]
    inner = [w for w in inner if not any(w.startswith(o.rstrip("/") + "/") for o in inner if o != w)]
    held = [(w, os.open(w, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) for w in inner]
    try:
        flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
        sc.mount("tmpfs", path, "tmpfs", flags, "size=16k,mode=0755")
        for root, _fd in held:
            os.makedirs(root, 0o755, exist_ok=True)
        sc.mount(None, path, None, sc.MS_REMOUNT | sc.MS_RDONLY | flags)
        for root, fd in held:
            sc.mount(f"/proc/self/fd/{fd}", root, None, sc.MS_BIND | sc.MS_REC)
    finally:
        for _root, fd in held:
            os.close(fd)


def mount_proc() -> None:
    """In the namespace's init: a /proc that shows only this PID namespace, parts read-only."""
    sc.mount("proc", "/proc", "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    for name in PROC_READ_ONLY:
        path = f"/proc/{name}"
        if os.path.exists(path):
            sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
            set_tree(path, read_only=True, harden=True)

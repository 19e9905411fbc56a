"""The few Linux system calls the mock needs, through ctypes.

Python 3.11 has no ``os.unshare`` and no ``prctl``, and running mount(8)
costs an exec; these wrappers raise ``OSError`` naming the call that failed.
The numbers are the same on every architecture Debian ships.
"""

from __future__ import annotations

import ctypes
import os
import signal

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
CLONE_NEWUSER = 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 0x1, 0x2, 0x4, 0x8, 0x20
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
MNT_DETACH = 0x2
PR_SET_PDEATHSIG, PR_SET_NAME = 1, 15

_LIBC: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """The C library, loaded once, with errno kept for :func:`check`."""
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def check(ret: int, what: str) -> None:
    """Raise ``OSError`` for a failed call (*ret* != 0), naming *what*."""
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _enc(value: str | os.PathLike[str] | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(source: str | os.PathLike[str] | None, target: str | os.PathLike[str], fstype: str | None, flags: int,
          data: str | None = None) -> None:
    """mount(2)."""
    ret = libc().mount(_enc(source), _enc(target), _enc(fstype), ctypes.c_ulong(flags), _enc(data))
    check(ret, f"mount {source} on {target}")


def umount_lazy(target: str | os.PathLike[str]) -> None:
    """umount2(2) with MNT_DETACH."""
    check(libc().umount2(_enc(target), MNT_DETACH), f"umount {target}")


def umount(target: str | os.PathLike[str]) -> None:
    """umount2(2) without flags: fails with EBUSY while the mount is in use, EPERM without the privilege."""
    check(libc().umount2(_enc(target), 0), f"umount {target}")


_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "ppc64": 203, "s390x": 217}


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2) (glibc has no wrapper)."""
    nr = _SYS_PIVOT_ROOT.get(os.uname().machine)
    if nr is None:
        raise OSError(38, f"pivot_root: no syscall number for {os.uname().machine}")
    check(libc().syscall(nr, _enc(new_root), _enc(put_old)), "pivot_root")


def sethostname(name: str) -> None:
    """sethostname(2) (in a private UTS namespace: only the run sees it)."""
    raw = name.encode()
    check(libc().sethostname(raw, len(raw)), "sethostname")


def setns(fd: int, nstype: int) -> None:
    """setns(2): join the namespace *fd* refers to."""
    check(libc().setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    """unshare(2)."""
    check(libc().unshare(flags), "unshare")


def private_mount_namespace() -> None:
    """Leave the caller's mount namespace: later mounts stay invisible to everyone else.

    As an ordinary user, a user namespace comes first, in which the caller is
    root (rootless mode: unprivileged user namespaces must be allowed).
    """
    if os.geteuid() == 0:
        unshare(CLONE_NEWNS)
    else:
        enter_user_namespace(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)


def enter_user_namespace(flags: int) -> None:
    """``unshare --user --map-root-user`` plus *flags*: this process becomes root of a new user namespace."""
    uid, gid = os.geteuid(), os.getegid()
    unshare(CLONE_NEWUSER | flags)
    for name, line in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(line)


def set_name(name: str) -> None:
    """Name this process (its comm, 15 bytes at most), as ``ps`` inside the run shows it."""
    check(libc().prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0), "prctl(PR_SET_NAME)")


def die_with_parent(expected_parent: int, exit_code: int = 1) -> None:
    """SIGKILL this process when its parent dies; exit now if that already happened."""
    check(libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != expected_parent:
        os._exit(exit_code)


# Linux ABI numbers for mount_setattr(2): one syscall number on every architecture.
_SYS_MOUNT_SETATTR = 442
_AT_FDCWD, _AT_RECURSIVE, _MOUNT_ATTR_RDONLY = -100, 0x8000, 0x1


class _MountAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("attr_set", "attr_clr", "propagation", "userns_fd")]


def make_readonly_recursive(target: str) -> None:
    """Mark a mount tree read-only (mount_setattr, Linux 5.12+); binds copied from it stay read-only."""
    attr = _MountAttr(attr_set=_MOUNT_ATTR_RDONLY)
    ret = libc().syscall(_SYS_MOUNT_SETATTR, _AT_FDCWD, os.fsencode(target), _AT_RECURSIVE, ctypes.byref(attr),
                         ctypes.sizeof(attr))
    check(ret, f"mount_setattr {target} read-only")


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8


def keep_heap_memory(limit: int = 4 << 20, arenas: int = 2) -> None:
    """Stop glibc from mmap-ing and unmapping every large buffer, and bound what it keeps.

    The daemon builds a fresh 1 MiB reply per read in FUSE worker threads; by
    default each such buffer is a new mmap whose pages fault in and are
    unmapped again, which more than halved the throughput. Buffers up to
    *limit* stay on the heap, where they are reused. Each arena keeps at most
    4 * *limit* free before trimming, and threads share *arenas* arenas rather
    than one each: with libfuse's multi-threaded loop, an arena per worker,
    each holding its own freed replies, doubled the daemon's peak memory with
    8 readers (bench/bench_memory.py).
    """
    lib = libc()
    lib.mallopt(M_MMAP_THRESHOLD, limit)
    lib.mallopt(M_TRIM_THRESHOLD, 4 * limit)
    lib.mallopt(M_ARENA_MAX, arenas)

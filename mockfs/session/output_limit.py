"""The ``enospc`` fault: the run's output directory with only SIZE bytes free.

A small FUSE file system is mounted over the output directory inside the
run's private mount namespace. It passes every operation through to the real
directory underneath (reached by a directory descriptor opened before the
mount hides it) and refuses growth beyond the budget with ENOSPC, writing
the part of a write that still fits, as a full disk does. ``statfs`` reports
the budget, so a program that asks how much room there is gets the same answer.

Nothing is copied in or out: the program works on the real files, the harness
itself never writes, truncates or removes a byte of them, and killing the
run at any moment (even the daemon with SIGKILL) leaves exactly what the
program had written so far, as a power cut would. Space is counted in apparent
bytes (file sizes): growth costs, shrinking and unlinking give back. Files
are served with direct_io (writes reach the daemon as the program made them,
1 MiB at a time rather than page by page), so a shared writable mmap of an
output file fails with ENODEV, as on other FUSE file systems with direct_io.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import stat
import threading
from pathlib import Path
from typing import Any

from mockfs.fuse.lib import load_mfusepy
from mockfs.sandbox import syscalls

BLOCK = 4096
_STAT_KEYS = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks",
              "st_atime_ns", "st_mtime_ns", "st_ctime_ns")


class LimitError(OSError):
    """The limited view of the output directory could not be set up."""


def _rel(path: str) -> str:
    return path.lstrip("/") or "."


class Budget:
    """Bytes the directory may still grow by; every change of size goes through here, under one lock."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.lock = threading.Lock()

    def grow(self, old_size: int, start: int, count: int) -> int:
        """How many of *count* bytes at *start* fit in a file of *old_size* bytes (charged at once)."""
        room = old_size + self.free - start  # writing below the old end costs nothing
        allowed = max(0, min(count, room))
        self.free -= max(0, start + allowed - old_size)
        return allowed

    def resize(self, old_size: int, new_size: int) -> None:
        if new_size > old_size and new_size - old_size > self.free:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.free -= new_size - old_size


class LimitedDir:
    """mfusepy operations: the directory behind *root_fd*, with *budget* bytes of room to grow."""

    use_ns = True

    def __init__(self, root_fd: int, budget: Budget, on_ready: Any = None) -> None:
        self.root = root_fd
        self.budget = budget
        self.on_ready = on_ready

    # -- the file system's life
    def init(self, path: str) -> None:
        if self.on_ready is not None:
            self.on_ready()

    def statfs(self, path: str) -> dict[str, int]:
        real = os.fstatvfs(self.root)
        free = self.budget.free // BLOCK
        return {"f_bsize": BLOCK, "f_frsize": BLOCK, "f_blocks": free + 1, "f_bfree": free, "f_bavail": free,
                "f_files": real.f_files, "f_ffree": real.f_ffree, "f_favail": real.f_favail,
                "f_namemax": real.f_namemax}

    # -- names
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = os.fstat(fh) if fh is not None else os.lstat(_rel(path), dir_fd=self.root)
        attrs = {key: getattr(st, key) for key in _STAT_KEYS}
        for key in ("st_atime", "st_mtime", "st_ctime"):
            attrs[key] = attrs.pop(key + "_ns")
        return attrs

    def access(self, path: str, amode: int) -> None:
        os.lstat(_rel(path), dir_fd=self.root)  # default_permissions: the kernel checks the modes

    def readdir(self, path: str, fh: int) -> list[str]:
        fd = os.open(_rel(path), os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.root)
        try:
            return [".", "..", *os.listdir(fd)]
        finally:
            os.close(fd)

    def readlink(self, path: str) -> str:
        return os.readlink(_rel(path), dir_fd=self.root)

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(_rel(path), mode, dir_fd=self.root)
        self._own(_rel(path))

    def rmdir(self, path: str) -> None:
        os.rmdir(_rel(path), dir_fd=self.root)

    def symlink(self, target: str, source: str) -> None:
        os.symlink(source, _rel(target), dir_fd=self.root)
        self._own(_rel(target))

    def link(self, target: str, source: str) -> None:
        os.link(_rel(source), _rel(target), src_dir_fd=self.root, dst_dir_fd=self.root)

    def unlink(self, path: str) -> None:
        with self.budget.lock:
            st = os.lstat(_rel(path), dir_fd=self.root)
            os.unlink(_rel(path), dir_fd=self.root)
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                self.budget.resize(st.st_size, 0)

    def rename(self, old: str, new: str) -> None:
        with self.budget.lock:
            try:
                st = os.lstat(_rel(new), dir_fd=self.root)
            except FileNotFoundError:
                st = None
            os.rename(_rel(old), _rel(new), src_dir_fd=self.root, dst_dir_fd=self.root)
            if st is not None and stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                self.budget.resize(st.st_size, 0)  # the replaced file is gone

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(_rel(path), mode, dir_fd=self.root)  # the kernel resolved symlinks before asking

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(_rel(path), uid, gid, dir_fd=self.root, follow_symlinks=False)

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        if times is None:
            os.utime(_rel(path), dir_fd=self.root, follow_symlinks=False)
        else:
            os.utime(_rel(path), ns=times, dir_fd=self.root, follow_symlinks=False)

    # -- files
    def create(self, path: str, mode: int, fi: Any = None) -> int:
        fd = os.open(_rel(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode, dir_fd=self.root)
        self._own(fd)
        return fd

    def open(self, path: str, flags: int) -> int:
        # O_TRUNC goes through truncate so that the budget sees it; O_APPEND's offsets come from the kernel.
        keep = flags & ~(os.O_TRUNC | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOCTTY)
        fd = os.open(_rel(path), keep | os.O_CLOEXEC, dir_fd=self.root)
        if flags & os.O_TRUNC:
            self._truncate(fd, 0)
        return fd

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self.budget.lock:
            size = os.fstat(fh).st_size
            allowed = self.budget.grow(size, offset, len(data))
            if allowed == 0 and data:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            charged = max(0, offset + allowed - size)
            try:
                written = os.pwrite(fh, data[:allowed], offset)
            except OSError:
                self.budget.free += charged
                raise
            self.budget.free += charged - max(0, offset + written - size)  # a short write of the disk itself
            return written

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        if fh is not None:
            self._truncate(fh, length)
            return
        fd = os.open(_rel(path), os.O_WRONLY | os.O_CLOEXEC, dir_fd=self.root)
        try:
            self._truncate(fd, length)
        finally:
            os.close(fd)

    def fallocate(self, path: str, mode: int, offset: int, length: int, fh: int) -> None:
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    def flush(self, path: str, fh: int) -> None:
        return None

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        (os.fdatasync if datasync else os.fsync)(fh)

    def fsyncdir(self, path: str, datasync: int, fh: int) -> None:
        fd = os.open(_rel(path), os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.root)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def release(self, path: str, fh: int) -> None:
        os.close(fh)

    # -- helpers
    def _truncate(self, fd: int, length: int) -> None:
        with self.budget.lock:
            size = os.fstat(fd).st_size
            self.budget.resize(size, length)
            try:
                os.ftruncate(fd, length)
            except OSError:
                self.budget.resize(length, size)
                raise

    def _own(self, target: int | str) -> None:
        """Give what the program made to the program's user, not the daemon's."""
        if os.geteuid() != 0:
            return
        uid, gid, _ = load_mfusepy().fuse_get_context()
        if isinstance(target, int):
            os.fchown(target, uid, gid)
        else:
            os.chown(target, uid, gid, dir_fd=self.root, follow_symlinks=False)


class Limited:
    """The limited view's daemon (a child of the caller) and where it is mounted."""

    def __init__(self, pid: int, mountpoint: Path, log: Path) -> None:
        self.pid, self.mountpoint, self.log = pid, mountpoint, log

    def stop(self, timeout: float = 30.0) -> None:
        """Detach the view and wait for its daemon; the files underneath are the program's, untouched."""
        with contextlib.suppress(OSError):
            syscalls.umount_lazy(self.mountpoint)
        fd = os.pidfd_open(self.pid)
        try:
            # The daemon ends once no namespace holds the mount any more (the program's died with it).
            if not select.select([fd], [], [], timeout)[0]:
                signal.pidfd_send_signal(fd, signal.SIGKILL)  # it holds no data of its own: nothing is lost
        finally:
            os.close(fd)
            os.waitpid(self.pid, 0)


def limit_output(output: Path, free: int, log: Path, timeout: float = 30.0) -> Limited:
    """Mount the view of *output* with *free* bytes of room over it (in our mount namespace); see the module."""
    root_fd = os.open(output, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the real directory, before it is hidden
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        _serve(root_fd, output, Budget(free), log, ready_w, parent)
    os.close(root_fd)
    os.close(ready_w)
    try:
        readable, _, _ = select.select([ready_r], [], [], timeout)
        answer = os.read(ready_r, 1) if readable else b""
    finally:
        os.close(ready_r)
    if answer != b"1":
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        lines = log.read_text(errors="replace").split("\n") if log.exists() else []
        why = next((line for line in reversed(lines) if line.strip()), "no answer")
        raise LimitError(errno.EIO, f"cannot limit {output} to {free} free bytes: {why.strip()}")
    return Limited(pid, output, log)


def _serve(root_fd: int, output: Path, budget: Budget, log: Path, ready_w: int, parent: int) -> None:
    """Body of the forked daemon; never returns."""
    code = 0
    try:
        syscalls.die_with_parent(parent)
        os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600), 2)

        def ready() -> None:
            os.write(ready_w, b"1")
            os.close(ready_w)

        mfusepy = load_mfusepy()
        options: dict[str, Any] = {"foreground": True, "default_permissions": True, "fsname": "abi-harness-output",
                                   "direct_io": True,  # requests as large as the writes (1 MiB), not page by page
                                   "subtype": "abi-harness", "max_threads": 4, "max_idle_threads": 4}
        if os.geteuid() == 0:
            options["allow_other"] = True  # the program may run as another user
        mfusepy.FUSE(LimitedDir(root_fd, budget, ready), str(output), **options)
    except BaseException as exc:  # a daemon has no one to raise to: its log says why
        os.write(2, f"abi-harness output limit: {exc}\n".encode())
        code = 1
    finally:
        os._exit(code)

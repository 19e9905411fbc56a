"""The FUSE filesystem: a thin view of a :class:`~mockfs.live.LiveMachine`.

The tree mirrors canonical paths (``sys/kernel/...``, ``proc/vmcore``,
``proc/device-tree/rtas/...``, ``proc/sys/...``) with the spec's modes, owner
root. Attribute files report the size the machine's sysfs reports and are
rendered fresh on every read (the mount uses ``direct_io``, so there is no page
cache to go stale); writes go to the machine, and its errors reach the writer
as the kernel's errno. A hidden control file (``.control``) carries the
runner's questions about sealed system calls (:mod:`mockfs.live.life`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import stat
import threading
import time
from collections.abc import Callable

from abi_specs import WriteRejected
from mockfs.live import LiveMachine, Node
from mockfs.live.life import handle
from mockfs.live.machine import CONTROL
from mockfs.sandbox.processes import mount_namespace

from .cache import KernelCache
from .faults import FaultPlan
from .lib import load_mfusepy
from .trace import Trace

mfusepy = load_mfusepy()
FuseOSError = mfusepy.FuseOSError

#: File handles: attribute files get 0; these mark the two files whose reads bypass the lookup.
VMCORE_FH = 1
CONTROL_FH = 2


class MockFS(mfusepy.Operations):
    """FUSE operations over a live machine, with a trace and injected faults."""

    use_ns = True

    def __init__(self, machine: LiveMachine, trace: Trace | None = None, faults: FaultPlan | None = None,
                 on_ready: Callable[[], None] | None = None, spare_groups: frozenset[int] = frozenset()) -> None:
        self.machine = machine
        # kill-after kills the reader's process group, but never the group of whoever
        # mounted us (a test calling the collector directly shares the test's group).
        self._spare_groups = spare_groups | {os.getpgrp()}
        self._on_ready = on_ready
        self.trace = trace or Trace(None)
        self.faults = faults or FaultPlan()
        self.started = time.time_ns()
        self._read_total = 0
        self._kill_done = False  # kill-after fires once: a rerun must be able to finish
        self._lock = threading.Lock()
        self._answers: dict[int, bytes] = {}  # control file: the last answer, by the asking pid
        self.cache = KernelCache(machine, mfusepy)
        self.owner = (os.geteuid(), os.getegid())  # (0, 0) as root, in a user namespace of ours too

    def init(self, path: str) -> None:
        """The kernel completed the FUSE handshake: tell whoever waits for the mount."""
        if self._on_ready is not None:
            self._on_ready()

    # -- helpers --------------------------------------------------------------------------

    def _node(self, path: str) -> Node:
        node = self.machine.lookup(path)
        if node is None:
            raise FuseOSError(errno.ENOENT)
        return node

    @staticmethod
    def _caller() -> int:
        return mfusepy.fuse_get_context()[2]

    def _log(self, path: str, op: str, **fields: object) -> None:
        if self.trace.enabled:  # skip even the caller lookup when nobody traces
            self.trace.record(self._caller(), path, op, **fields)

    # -- metadata -------------------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        try:
            node = self._node(path)
        except FuseOSError:
            self._log(path, "getattr", result=-errno.ENOENT, errno="ENOENT")
            raise
        self._log(path, "getattr", result=0)
        # The kernel's files are root's: the mounter's, who is root but for an ordinary user's plain mount.
        common = {"st_atime": self.started, "st_mtime": self.started, "st_ctime": self.started,
                 "st_uid": self.owner[0], "st_gid": self.owner[1]}
        if node.kind == "dir":
            return {"st_mode": stat.S_IFDIR | node.mode, "st_nlink": 2, "st_size": 0, **common}
        if node.kind == "link":
            return {"st_mode": stat.S_IFLNK | 0o777, "st_nlink": 1, "st_size": len(node.target), **common}
        size = self.machine.size_of(node)
        return {"st_mode": stat.S_IFREG | node.mode, "st_nlink": 1, "st_size": size, **common}

    def readdir(self, path: str, fh: int) -> list[str]:
        self._log(path, "readdir", result=0)
        names = self.machine.listdir(path)
        if names is None:
            raise FuseOSError(errno.ENOTDIR)
        return [".", "..", *names]

    def readlink(self, path: str) -> str:
        node = self._node(path)
        if node.kind != "link":
            raise FuseOSError(errno.EINVAL)
        return node.target

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 0, "f_bfree": 0, "f_bavail": 0, "f_namemax": 255}

    # -- files ----------------------------------------------------------------------------

    def open(self, path: str, flags: int) -> int:
        node = self._node(path)
        if node.kind != "file":
            raise FuseOSError(errno.EISDIR)
        if path.strip("/") == CONTROL:
            # A runner asks about its program's calls: its namespace is a run of this machine.
            self.machine.run_namespaces.add(mount_namespace(self._caller()))
            return CONTROL_FH
        if node.entry is not None and node.entry.kind == "core":
            try:
                self.machine.open_vmcore()
            except WriteRejected as exc:
                self._log(path, "open", result=-exc.errno, errno=errno.errorcode[exc.errno])
                raise FuseOSError(exc.errno) from None
            if flags & os.O_ACCMODE != os.O_RDONLY:
                raise FuseOSError(errno.EACCES)
            self._log(path, "open", flags=flags, result=0)
            return VMCORE_FH
        if node.entry is not None:
            try:
                self.machine.check_open(node.entry, node.mode, flags)
            except WriteRejected as exc:
                self._log(path, "open", flags=flags, result=-exc.errno, errno=errno.errorcode[exc.errno])
                raise FuseOSError(exc.errno) from None
        self._log(path, "open", flags=flags, result=0)
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        if fh == VMCORE_FH:
            return self._read_vmcore(path, size, offset)
        if fh == CONTROL_FH:
            return self._answers.get(self._caller(), b"")[offset:offset + size]
        node = self._node(path)
        if node.kind != "file" or node.entry is None:
            raise FuseOSError(errno.EISDIR)
        if node.entry.kind == "core":
            return self._read_vmcore(path, size, offset)
        try:
            data = self.machine.read_file(node.entry, node)
        except WriteRejected as exc:
            raise FuseOSError(exc.errno) from None
        out = data[offset:offset + size]
        self._log(path, "read", offset=offset, length=size, result=len(out))
        return out

    def _read_vmcore(self, path: str, size: int, offset: int) -> bytes:
        faults = self.faults
        if faults.delay_ms:
            time.sleep(faults.delay_ms / 1000)
        for lo, hi in faults.eio:
            if offset < hi and offset + size > lo:
                self._log(path, "read", offset=offset, length=size, result=-errno.EIO, errno="EIO", fault="eio")
                raise FuseOSError(errno.EIO)
        if faults.short:
            size = min(size, faults.short)
        try:
            data = self.machine.read_vmcore(offset, size)
        except WriteRejected as exc:
            self._log(path, "read", offset=offset, length=size, result=-exc.errno, errno=errno.errorcode[exc.errno])
            raise FuseOSError(exc.errno) from None
        self._log(path, "read", offset=offset, length=size, result=len(data))
        if faults.kill_after:
            self._maybe_kill(path, len(data))
        return data

    def _maybe_kill(self, path: str, count: int) -> None:
        """kill-after: once enough was read, kill the reader's whole command (its process group)."""
        with self._lock:
            self._read_total += count
            due = self._read_total >= self.faults.kill_after and not self._kill_done
            if due:
                self._kill_done = True
        if not due:
            return
        pid = self._caller()
        self._log(path, "kill", fault="kill-after", bytes_read=self._read_total)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            group = os.getpgid(pid)
            if group in self._spare_groups:
                os.kill(pid, signal.SIGKILL)
            else:
                os.killpg(group, signal.SIGKILL)
        raise FuseOSError(errno.EINTR)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        before = self.cache.snapshot()
        try:
            return self._control(data) if fh == CONTROL_FH else self._write(path, data, offset)
        finally:
            self.cache.after_write(before)  # before the writer returns: what it changed is visible at once

    def _write(self, path: str, data: bytes, offset: int) -> int:
        node = self._node(path)
        if node.kind != "file" or node.entry is None:
            raise FuseOSError(errno.EACCES)
        try:
            count, detail = self.machine.write_traced(node.entry, data, node, self._caller())
        except WriteRejected as exc:
            self._log(path, "write", offset=offset, length=len(data), data=data[:256].decode("latin-1"),
                      result=-exc.errno, errno=errno.errorcode[exc.errno])
            raise FuseOSError(exc.errno) from None
        # As it happens: for release_region, the frames the kernel freed and its two counters.
        self._log(path, "write", offset=offset, length=len(data), data=data[:256].decode("latin-1"), result=count,
                  **detail)
        return count

    def _control(self, data: bytes) -> int:
        """A request of the runner: answered now, read back by the same process."""
        try:
            request = json.loads(data)
        except ValueError:
            raise FuseOSError(errno.EINVAL) from None
        answer = handle(self.machine, request)
        self._log("/" + CONTROL, "control", request=request.get("op"), answer={k: v for k, v in answer.items()
                                                                               if k not in ("state", "summary")})
        self._answers[self._caller()] = json.dumps(answer).encode()
        return len(data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        # `echo 1 > file` truncates first; sysfs ignores that, and so do we.
        self._node(path)
        self._log(path, "truncate", length=length, result=0)
        return 0

    # No release(): handles hold nothing, and without the callback libfuse answers
    # RELEASE itself instead of waking Python for it (two of an attribute round trip's six requests).

"""Answering one sealed call: read what the kernel would read from the caller, ask the machine, reply.

Imported by the runner on the first notification only. Each call's arguments
are copied out of the caller the way the kernel copies them (its memory
through ``/proc/PID/mem``, its files through ``pidfd_getfd``), the request goes
to the machine over the mock's control file, and the machine's answer goes
back to the caller. Every read is followed by a check that the notification is
still pending, so what was read came from the caller itself.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import struct
from typing import Any

from .seal import PROBE_ERRNO, PROBE_REBOOT, Notification, raw_syscall, take_fd

_SEGMENT = struct.Struct("<QQQQ")  # struct kexec_segment: buf, bufsz, mem, memsz
_UTS_FIELD = 65  # __NEW_UTS_LEN + 1
_HEAD = 1 << 16  # what the machine needs of a kernel image to probe it
_SYS_PIDFD_OPEN = 434
KEXEC_FILE_UNLOAD, KEXEC_FILE_NO_INITRAMFS = 0x1, 0x4
KEXEC_SEGMENT_MAX = 16
MAX_CMDLINE = 1 << 20


class Gone(Exception):
    """The caller no longer waits for this call (killed or interrupted): nothing to answer."""


class Caller:
    """The process that made a sealed call: its memory and its open files."""

    def __init__(self, note: Notification, proc_fd: int) -> None:
        self.note = note
        self.mem = os.open(f"{note.pid}/mem", os.O_RDWR | os.O_CLOEXEC, dir_fd=proc_fd)
        self.pidfd = raw_syscall(_SYS_PIDFD_OPEN, note.pid, 0)
        self.comm = self._proc_text(proc_fd, "comm").strip() or "?"
        self.argv = [a for a in self._proc_text(proc_fd, "cmdline").split("\0") if a]
        try:
            self.check()
        except Gone:
            self.close()
            raise

    def _proc_text(self, proc_fd: int, name: str) -> str:
        try:
            with open(f"{self.note.pid}/{name}", "rb", opener=lambda p, f: os.open(p, f, dir_fd=proc_fd)) as f:
                return f.read(MAX_CMDLINE).decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self) -> None:
        os.close(self.mem)
        if self.pidfd >= 0:
            os.close(self.pidfd)

    def check(self) -> None:
        if not self.note.valid():
            raise Gone()

    def read(self, addr: int, size: int) -> bytes:
        if size == 0:
            return b""
        try:
            data = os.pread(self.mem, size, addr)
        except OSError:
            raise OSError(errno.EFAULT, "bad address") from None
        if len(data) != size:
            raise OSError(errno.EFAULT, "bad address")
        self.check()
        return data

    def write(self, addr: int, data: bytes) -> None:
        try:
            os.pwrite(self.mem, data, addr)
        except OSError:
            raise OSError(errno.EFAULT, "bad address") from None
        self.check()

    def file(self, fd: int) -> dict[str, Any] | None:
        """Size, sha256 and head of the regular file behind the caller's *fd*; None when it is not one."""
        if fd < 0 or self.pidfd < 0:
            return None
        try:
            dup = take_fd(self.pidfd, fd)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(dup).st_mode):
                return None
            digest, head, offset = hashlib.sha256(), b"", 0
            while chunk := os.pread(dup, 1 << 20, offset):  # pread: the copy shares the caller's offset
                if offset == 0:
                    head = chunk[:_HEAD]
                digest.update(chunk)
                offset += len(chunk)
        finally:
            os.close(dup)
        self.check()
        return {"size": offset, "sha256": digest.hexdigest(), "head": head.hex()}


def _request(call: str, note: Notification, caller: Caller) -> dict[str, Any] | int:
    """The machine request for *call*, or an errno to answer at once."""
    a = note.args
    if call == "kexec_file_load":
        kernel_fd, initrd_fd, cmdline_len, cmdline_ptr, flags = (a[0] & 0xFFFFFFFF, a[1] & 0xFFFFFFFF, a[2], a[3], a[4])
        kernel_fd, initrd_fd = (x - (1 << 32) if x >> 31 else x for x in (kernel_fd, initrd_fd))
        if flags & KEXEC_FILE_UNLOAD:
            return {"op": call, "flags": flags}
        if cmdline_len > MAX_CMDLINE:
            return errno.EINVAL
        kernel = caller.file(kernel_fd)
        initrd = None if flags & KEXEC_FILE_NO_INITRAMFS else caller.file(initrd_fd)
        head = kernel.pop("head") if kernel else None
        if initrd:
            initrd.pop("head")
        return {"op": call, "flags": flags, "kernel": kernel, "kernel_head": head, "initrd": initrd,
                "cmdline": caller.read(cmdline_ptr, cmdline_len).hex()}
    if call == "kexec_load":
        entry, nr_segments, segments_ptr, flags = a[:4]
        segments = []
        if nr_segments <= KEXEC_SEGMENT_MAX:
            for _, bufsz, mem, memsz in _SEGMENT.iter_unpack(caller.read(segments_ptr, nr_segments * _SEGMENT.size)):
                if bufsz > memsz:
                    return errno.EINVAL
                segments.append([mem, memsz])
        else:
            segments = [[0, 0]] * nr_segments  # the machine refuses the count
        return {"op": call, "flags": flags, "entry": entry, "segments": segments}
    if call == "reboot":
        return {"op": call, "magic1": a[0] & 0xFFFFFFFF, "magic2": a[1] & 0xFFFFFFFF, "cmd": a[2] & 0xFFFFFFFF}
    if call == "uname":
        return {"op": call, "buf": a[0]}
    return {"op": "refused", "syscall": call}


def _ask(control_fd: int, request: dict[str, Any]) -> dict[str, Any]:
    os.pwrite(control_fd, json.dumps(request).encode(), 0)
    return json.loads(os.pread(control_fd, 1 << 20, 0) or b"{}")


def _uname_struct(answer: dict[str, Any]) -> bytes:
    fields = ["Linux", os.uname().nodename, answer["release"], answer["version"], answer["machine"], "(none)"]
    return b"".join(f.encode()[:_UTS_FIELD - 1].ljust(_UTS_FIELD, b"\0") for f in fields)


def answer(note: Notification, control_fd: int, proc_fd: int, events: list[str]) -> bool:
    """Answer *note*; returns True when the machine went down (the runner ends the run).

    *control_fd* is the mock's control file, or -1 for a mock without a machine:
    then uname answers with this namespace's own values and everything else is refused.
    """
    call = note.name
    if call == "reboot" and tuple(x & 0xFFFFFFFF for x in note.args[:3]) == PROBE_REBOOT[:3]:
        note.answer(0, PROBE_ERRNO)  # the probe: before any decoding, so no machine can get it wrong
        return False
    if control_fd < 0 and call != "uname":
        note.answer(0, errno.EPERM)
        events.append(f"{call}: refused (no machine)")
        return False
    try:
        caller = Caller(note, proc_fd)
    except Gone:
        return False
    except OSError as exc:
        # Its memory cannot be read (say, ptrace is forbidden): the caller must not wait forever.
        note.answer(0, errno.EPERM)
        events.append(f"{call} by pid {note.pid}: refused (the seal cannot read the caller: {exc.strerror})")
        return False
    try:
        request = _request(call, note, caller)
        if isinstance(request, int):
            note.answer(0, request)
            return False
        request.update(pid=note.pid, comm=caller.comm)
        if call.startswith("kexec"):
            request["argv"] = caller.argv
        if control_fd < 0:  # uname without a machine: this namespace's own answer
            u = os.uname()
            reply = {"result": 0, "release": u.release, "version": u.version, "machine": u.machine}
        else:
            reply = _ask(control_fd, request)
        if call == "uname" and "errno" not in reply:
            caller.write(int(request["buf"]), _uname_struct(reply))
        if call != "uname":
            events.append(f"{call} by {caller.comm}: " + (reply.get("reason", "") or "ok"))
        if reply.get("down"):
            return True  # a reboot that worked never returns: the runner kills the caller with the rest
        note.answer(int(reply.get("result", 0)), int(reply.get("errno", 0)))
        return False
    except OSError as exc:
        note.answer(0, exc.errno if isinstance(exc.errno, int) and 0 < exc.errno < 4096 else errno.EPERM)
        return False
    except Gone:
        return False
    finally:
        caller.close()

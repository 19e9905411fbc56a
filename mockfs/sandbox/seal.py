"""The syscall seal: a run's machine-changing system calls are answered by the mocked machine.

The mount namespace hides the host's files, not its system calls: a working
``kexec -p`` would load a crash kernel into the host, ``reboot -f`` would reboot
it. The runner installs a seccomp filter in the program just before exec
(inherited by everything it starts) that turns each such call into a user
notification (``SECCOMP_RET_USER_NOTIF``, Linux 5.0+); the runner receives it,
reads the arguments from the caller (its memory through ``/proc/PID/mem``, its
files through ``pidfd_getfd``), asks the machine what its kernel would answer
(:func:`mockfs.live.life.handle`, over the mock's control file) and answers.
A sealed call is never continued to the host kernel: the flag that would do it
is not even defined here.

* 32-bit calls (``int 0x80``) of the sealed set, x32 numbers and foreign
  architectures kill the process: the decoders know the 64-bit layouts only,
  and a loud death beats a blind refusal.
* A probe proves the seal from inside: calls a real kernel rejects without
  doing anything (bad magic, bad flags) are answered ``ENOTRECOVERABLE``,
  which no real kernel returns for them (:mod:`mockfs.sandbox.probe`).
* With no runner holding the listener, sealed calls fail with ENOSYS: still
  without reaching the kernel.

Builtin modules only at import: the runner imports this at every start.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

#: The answer to a probe call (see :mod:`mockfs.sandbox.probe`).
PROBE_ERRNO = errno.ENOTRECOVERABLE
#: The calls a run must never make on the host (uname is sealed too, to show the machine's kernel).
SEALED = ("kexec_load", "kexec_file_load", "reboot", "init_module", "finit_module", "delete_module",
          "clock_settime", "settimeofday", "adjtimex", "clock_adjtime", "swapon", "swapoff", "uname")
#: Arguments of the probe: a real kernel refuses them before doing anything.
PROBE_REBOOT = (0x5EA1ED01, 0x5EA1ED02, 0x5EA1ED03, 0)
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
_X32_BIT = 0x40000000
#: i386 numbers of the sealed operations: killed, never notified.
I386_KILL = (283, 88, 128, 350, 129, 264, 404, 343, 405, 79, 25, 124, 87, 115)

_SYS_SECCOMP = 317
_SYS_PIDFD_GETFD = 438
_SYS_OPEN_TREE = 428  # one number on every architecture
_OPEN_TREE_CLONE, _OPEN_TREE_CLOEXEC, _AT_RECURSIVE, _AT_FDCWD = 1, os.O_CLOEXEC, 0x8000, -100
_SECCOMP_SET_MODE_FILTER = 1
_FLAG_NEW_LISTENER = 1 << 3
_FLAG_WAIT_KILLABLE_RECV = 1 << 5  # Linux 5.19: a signal cannot restart a call being answered
_RET_KILL_PROCESS, _RET_USER_NOTIF, _RET_ALLOW = 0x80000000, 0x7FC00000, 0x7FFF0000
_PR_SET_NO_NEW_PRIVS = 38
_NOTIF_RECV, _NOTIF_SEND, _NOTIF_ID_VALID = 0xC0502100, 0xC0182101, 0x40082102
_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_JGE_K, _BPF_RET_K = 0x20, 0x15, 0x35, 0x06


class SealError(OSError):
    """The seal could not be installed or handed over."""


def build_filter(numbers: dict[str, int]) -> bytes:
    """The BPF program (struct sock_filter[]) sealing :data:`SEALED`, given their x86_64 *numbers*.

    Per architecture: x86_64 notifies the sealed calls, kills x32 numbers and
    allows the rest (and -1, what a tracer writes to skip a call); i386 kills
    the sealed operations' numbers and allows the rest; anything else dies.
    """
    program: list[tuple[int, str | None, str | None, int]] = []  # (op, jump-if-true, jump-if-false, k)
    labels: dict[str, int] = {}

    def label(name: str) -> None:
        labels[name] = len(program)

    def op(code: int, k: int, true: str | None = None, false: str | None = None) -> None:
        program.append((code, true, false, k))

    op(_BPF_LD_W_ABS, 4)  # seccomp_data.arch
    op(_BPF_JEQ_K, AUDIT_ARCH_X86_64, "x86_64")
    op(_BPF_JEQ_K, AUDIT_ARCH_I386, "i386", "kill")
    label("x86_64")
    op(_BPF_LD_W_ABS, 0)  # seccomp_data.nr
    op(_BPF_JEQ_K, 0xFFFFFFFF, "allow")
    op(_BPF_JGE_K, _X32_BIT, "kill")
    for name in SEALED:
        op(_BPF_JEQ_K, numbers[name], "notify")
    op(_BPF_RET_K, _RET_ALLOW)
    label("i386")
    op(_BPF_LD_W_ABS, 0)
    for nr in I386_KILL:
        op(_BPF_JEQ_K, nr, "kill")
    label("allow")
    op(_BPF_RET_K, _RET_ALLOW)
    label("kill")
    op(_BPF_RET_K, _RET_KILL_PROCESS)
    label("notify")
    op(_BPF_RET_K, _RET_USER_NOTIF)

    def offset(at: int, target: str | None) -> int:
        if target is None:
            return 0
        delta = labels[target] - at - 1
        if not 0 <= delta <= 255:
            raise ValueError(f"seal filter: jump to {target} out of range")
        return delta

    return b"".join(struct.pack("=HBBI", code, offset(at, t), offset(at, f), k)
                    for at, (code, t, f, k) in enumerate(program))


_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.syscall.restype = ctypes.c_long
        _LIBC.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
    return _LIBC


def raw_syscall(nr: int, *args: int) -> int:
    """syscall(2): the result, or -errno (never raises)."""
    lib = _libc()
    ctypes.set_errno(0)
    ret = int(lib.syscall(ctypes.c_long(nr), *(ctypes.c_long(a - (1 << 64) if a >> 63 else a) for a in args)))
    return -ctypes.get_errno() if ret == -1 else ret


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes) -> int:
    """Seal the calling (single-threaded) process and return the listener fd; raises SealError."""
    lib = _libc()
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if lib.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SealError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    fd = raw_syscall(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, _FLAG_NEW_LISTENER | _FLAG_WAIT_KILLABLE_RECV,
                     ctypes.addressof(prog))
    if fd == -errno.EINVAL:  # before Linux 5.19
        fd = raw_syscall(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, _FLAG_NEW_LISTENER, ctypes.addressof(prog))
    if fd < 0:
        raise SealError(-fd, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(-fd)}")
    return fd


def take_fd(pidfd: int, fd: int) -> int:
    """A copy of another process's *fd* (pidfd_getfd, Linux 5.6+)."""
    got = raw_syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
    if got < 0:
        raise SealError(-got, f"pidfd_getfd: {os.strerror(-got)}")
    return got


def private_proc_handle(path: str = "/proc") -> int:
    """A writable handle on procfs that no path leads to: a detached clone of the mount at *path*.

    The supervisor writes its callers' memory (``/proc/PID/mem``) through it,
    while every procfs path the program can name is read-only (open_tree, Linux 5.2+).
    """
    name = ctypes.create_string_buffer(os.fsencode(path))  # kept alive across the call
    got = raw_syscall(_SYS_OPEN_TREE, _AT_FDCWD, ctypes.addressof(name), _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_RECURSIVE)
    if got < 0:
        raise SealError(-got, f"open_tree({path}): {os.strerror(-got)}")
    return got


class _SeccompData(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int), ("arch", ctypes.c_uint32), ("ip", ctypes.c_uint64), ("args", ctypes.c_uint64 * 6)]


class _Notif(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("data", _SeccompData)]


class _Resp(ctypes.Structure):
    # flags stays 0: the one flag there is (CONTINUE) would let the call reach the host kernel.
    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32), ("flags", ctypes.c_uint32)]


class Notification:
    """One sealed call, pending until :meth:`answer`."""

    def __init__(self, listener: int, notif: _Notif, names: dict[int, str]) -> None:
        self.listener = listener
        self.id = notif.id
        self.pid = notif.pid
        self.arch = notif.data.arch
        self.name = names.get(notif.data.nr, "")
        self.args = tuple(int(a) for a in notif.data.args)

    def valid(self) -> bool:
        """Whether the caller still waits in this very call (its pid was not reused meanwhile)."""
        notif_id = ctypes.c_uint64(self.id)
        return int(_libc().ioctl(self.listener, _NOTIF_ID_VALID, ctypes.addressof(notif_id))) == 0

    def answer(self, value: int = 0, err: int = 0) -> None:
        resp = _Resp(self.id, value, -err if err else 0, 0)
        if _libc().ioctl(self.listener, _NOTIF_SEND, ctypes.addressof(resp)) != 0:
            e = ctypes.get_errno()
            if e != errno.ENOENT:  # ENOENT: the caller is gone or was interrupted meanwhile
                raise OSError(e, f"SECCOMP_IOCTL_NOTIF_SEND: {os.strerror(e)}")


def receive(listener: int, names: dict[int, str]) -> Notification | None:
    """The next pending notification (the listener is readable), or None when its caller went away."""
    notif = _Notif()  # zeroed: the kernel rejects a dirty buffer with EINVAL
    if _libc().ioctl(listener, _NOTIF_RECV, ctypes.addressof(notif)) != 0:
        err = ctypes.get_errno()
        if err in (errno.ENOENT, errno.EINTR):
            return None
        raise OSError(err, f"SECCOMP_IOCTL_NOTIF_RECV: {os.strerror(err)}")
    return Notification(listener, notif, names)

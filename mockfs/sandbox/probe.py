"""Prove, from inside a run, that the seals are in place; then (and only then) run a command.

    python -m mockfs.sandbox.probe [-- CMD ARGS...]

A test that writes /proc/sysrq-trigger, calls reboot(2) or runs kexec must run
it through this: every check is harmless when the seals are missing, and the
command runs only when all pass, as the very process that passed them (exec).

* the syscall seal: reboot(2) with bad magic numbers is refused by any real
  kernel before it looks at anything; the seal answers ``ENOTRECOVERABLE``,
  which no real kernel returns for it (nor an orphaned seal, which gives ENOSYS);
* /proc/sysrq-trigger and /proc/sys are not the host's procfs (statfs), or
  are read-only binds of it (``access(W_OK)`` answers EROFS: nothing is written);
* every procfs mount in this namespace, and every mount below one, is
  read-only, the run's own procfs where /proc's links point
  (``<stage>/proc-run``) among them: writes through its ``sysrq-trigger``,
  ``sys`` and ``self`` fail with EROFS, proved by ``access(W_OK)`` alone;
* this process is in the run's PID namespace (its process 1 is the run's
  init) and the host's procfs, which the runner keeps beside the run's
  (``<stage>/proc``), is not mounted in its mount namespace;
* the root file system is not the host's: an overlay (rootless mode: the runner's
  tmpfs, each directory an overlay or read-only).

Run on the host, outside any runner, it makes no system call but reads, and exits 1.

Exit status 1 with one line naming the missing seal, when one is missing.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

from abi_specs.elf import machine_number

from .mountinfo import mounts as read_mounts
from .seal import PROBE_ERRNO, PROBE_REBOOT, raw_syscall

PROC_SUPER_MAGIC = 0x9FA0
OVERLAYFS_SUPER_MAGIC = 0x794C7630


def host_arch() -> str | None:
    """The architecture this process really runs on, from its own executable's ELF header.

    Not uname: inside a run the seal answers uname with the mocked machine's
    values, and a ppc64 machine's answer says nothing of the syscall table here.
    """
    from abi_specs import builtin_spec
    from abi_specs.elf import structs

    with open("/proc/self/exe", "rb") as exe:
        ident = exe.read(64)
    order = "little" if ident[5] == 1 else "big"
    e_machine = structs(order).Elf_Ehdr.parse(ident)["e_machine"]
    for name, arch in builtin_spec().arches.items():
        if arch.byteorder == order and arch.e_machine == machine_number(e_machine):
            return name
    return None


def _reboot_number() -> tuple[str, int | None]:
    from abi_specs.kexec import syscall_numbers

    arch = host_arch() or os.uname().machine
    try:
        return arch, syscall_numbers(arch)["reboot"]
    except KeyError:
        return arch, None


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_long * 15)]


def fs_type(path: str) -> int | None:
    """The f_type of the file system holding *path* (following links), or None when it does not exist."""
    buf = _Statfs()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        return None
    return int(buf.f_type) & 0xFFFFFFFF


def write_refused(path: str) -> bool:
    """Whether a write to *path* would fail, asked with access(2) so that nothing is written.

    EROFS: its mount is read-only. EACCES: this process may not write it at all
    (rootless mode: the host's files belong to no one mapped in the user namespace).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    ctypes.set_errno(0)
    return libc.access(os.fsencode(path), os.W_OK) != 0 and ctypes.get_errno() in (errno.EROFS, errno.EACCES)


def _mounts() -> list[tuple[str, str, list[str], str]] | str:
    """(mount point, fstype, per-mount options, source) of each mount here, or why they cannot be read."""
    try:
        return read_mounts()
    except OSError as exc:
        return f"mountinfo unreadable: {exc.strerror}"
    except ValueError:
        return "mountinfo unparsable"


def writable_procfs() -> list[str]:
    """Mount points of procfs, or of anything mounted below procfs, that are not read-only.

    Inside a run only the runner's FUSE /proc and read-only binds of the host's
    procfs may be there; on the host, /proc itself is listed.
    """
    mounts = _mounts()
    if isinstance(mounts, str):
        return [f"({mounts})"]
    procs = [point for point, fstype, _, _ in mounts if fstype == "proc"]

    def under_proc(point: str) -> bool:
        return any(point == p or point.startswith(p.rstrip("/") + "/") for p in procs)

    return [point for point, _, options, _ in mounts if under_proc(point) and "ro" not in options]


def root_problem() -> str | None:
    """Why the root is not the run's (None when it is): an overlay, or in rootless mode the runner's
    tmpfs whose every directory is an overlay or read-only (see :mod:`mockfs.sandbox.rootfs`)."""
    if fs_type("/") == OVERLAYFS_SUPER_MAGIC:
        return None
    mounts = _mounts()
    roots = [source for point, _, _, source in mounts if point == "/"] if not isinstance(mounts, str) else []
    if not roots or roots[-1] != "abi-harness-root":  # the last mount at / is the one seen
        return "the root file system is not the run's overlay"
    for name in sorted(os.listdir("/")):
        path = f"/{name}"
        if name in ("proc", "sys", "dev") or os.path.islink(path) or not os.path.isdir(path):
            continue
        if fs_type(path) != OVERLAYFS_SUPER_MAGIC and not write_refused(path):
            return f"{path} is neither the run's overlay nor read-only"
    return None


def stage_proc() -> str | None:
    """The procfs the runner's /proc links into (``/proc/PID -> <stage>/proc-run/PID``), or None."""
    try:
        target = os.readlink(f"/proc/{os.getpid()}")
    except OSError:
        return None  # a real procfs: the pid entries are directories
    return os.path.dirname(target) if os.path.isabs(target) else None


def pid_namespace_problem(host_proc: str) -> str | None:
    """Why this process could reach the host's processes (None when they are out of its sight).

    It must run in the run's PID namespace, whose process 1 is the run's init, and must not find
    the host's procfs at *host_proc*, where the runner keeps it for itself.
    """
    from .run_init import INIT_NAME

    try:
        with open("/proc/1/comm") as comm:
            first = comm.read().strip()
    except OSError as exc:
        return f"cannot read /proc/1/comm to prove the PID namespace: {exc.strerror}"
    if first != INIT_NAME:
        return f"the program shares a PID namespace whose process 1 is {first!r}, not the run's init"
    if os.path.lexists(f"{host_proc}/1"):
        return f"the host's procfs is mounted at {host_proc}"
    return None


def problems() -> list[str]:
    """What is not sealed (empty when everything is)."""
    out = []
    stage = stage_proc()
    if stage is None:
        # Not inside a runner: say so, and make no system call at all (the probe only reads here).
        out.append("/proc is not the runner's (its pid entries do not link into the runner's stage)")
    else:
        out.extend(_syscall_seal())
        for name in ("sysrq-trigger", "sys/kernel/panic_on_oops", "self/comm"):
            if os.path.lexists(f"{stage}/{name}") and not write_refused(f"{stage}/{name}"):
                out.append(f"{stage}/{name} (the run's procfs) is writable")
        if why := pid_namespace_problem(os.path.join(os.path.dirname(stage), "proc")):
            out.append(why)
    for path in ("/proc/sysrq-trigger", "/proc/sys"):
        if fs_type(path) == PROC_SUPER_MAGIC and not write_refused(path):
            out.append(f"{path} is the host's procfs, writable")
    for point in writable_procfs():
        out.append(f"the procfs mount at {point} is writable")
    if why := root_problem():
        out.append(why)
    return out


def _syscall_seal() -> list[str]:
    arch, nr = _reboot_number()
    if nr is None:
        return [f"no reboot(2) number for {arch}: cannot prove the syscall seal"]
    got = raw_syscall(nr, *PROBE_REBOOT)
    if got != -PROBE_ERRNO:
        why = os.strerror(-got) if got < 0 else f"returned {got}"
        return [f"the syscall seal is missing (the probe reboot(2) got: {why})"]
    return []


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--"]:
        args = args[1:]
    missing = problems()
    if missing:
        print(f"abi-harness probe: NOT SEALED: {'; '.join(missing)}", file=sys.stderr)
        return 1
    if not args:
        print("sealed")
        return 0
    os.execvp(args[0], args)
    return 127


if __name__ == "__main__":
    sys.exit(main())

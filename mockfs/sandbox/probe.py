"""Prove, from inside a run, that the seals are in place; then (and only then) run a command.

    python -m mockfs.sandbox.probe [-- CMD ARGS...]

A test that writes /proc/sysrq-trigger, calls reboot(2) or runs kexec must run
it through this: every check is harmless when the seals are missing, and the
command runs only when all pass, as the very process that passed them (exec).

* the syscall seal: reboot(2) with bad magic numbers is refused by any real
  kernel before it looks at anything; the seal answers ``ENOTRECOVERABLE``,
  which no real kernel returns for it (nor an orphaned seal, which gives ENOSYS);
* /proc/sysrq-trigger and /proc/sys are not the host's procfs (statfs);
* the root file system is not the host's (an overlay).

Exit status 1 with one line naming the missing seal, when one is missing.
"""

from __future__ import annotations

import ctypes
import os
import sys

from abi_specs.elf import machine_number

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


def problems() -> list[str]:
    """What is not sealed (empty when everything is)."""
    out = []
    arch, nr = _reboot_number()
    if nr is None:
        out.append(f"no reboot(2) number for {arch}: cannot prove the syscall seal")
    else:
        got = raw_syscall(nr, *PROBE_REBOOT)
        if got != -PROBE_ERRNO:
            why = os.strerror(-got) if got < 0 else f"returned {got}"
            out.append(f"the syscall seal is missing (the probe reboot(2) got: {why})")
    for path in ("/proc/sysrq-trigger", "/proc/sys"):
        if fs_type(path) == PROC_SUPER_MAGIC:
            out.append(f"{path} is the host's procfs")
    if fs_type("/") != OVERLAYFS_SUPER_MAGIC:
        out.append("the root file system is not the run's overlay")
    return out


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

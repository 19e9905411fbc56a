"""What the kernel answers to the calls that arm it: kexec_load, kexec_file_load, reboot.

Pure checks in the kernel's order (``specs/syscalls.toml``): each returns the
errno the kernel would fail with and why, or None when the call goes through.
The mock's machine applies a call that passes (the lifecycle's ``load`` /
``unload`` transitions); nothing here touches a real kernel.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from .specfile import builtin_spec


@dataclass(frozen=True)
class Refusal:
    """The errno a call fails with, and why (for the report)."""

    errno: int
    reason: str


@cache
def _data() -> dict[str, Any]:
    return builtin_spec().syscalls


def syscall_numbers(arch: str) -> dict[str, int]:
    """The numbers of the sealed calls on *arch* (``specs/syscalls.toml``)."""
    numbers = _data()["numbers"]
    if arch not in numbers:
        raise KeyError(f"no syscall numbers for {arch} (known: {', '.join(numbers)})")
    return dict(numbers[arch])


def kexec_load_flags() -> dict[str, int]:
    return dict(_data()["kexec_load"]["flags"])


def kexec_file_flags() -> dict[str, int]:
    return dict(_data()["kexec_file_load"]["flags"])


def check_kexec_load(flags: int, nr_segments: int, e_machine: int, crash_reserved: int,
                     segments: Sequence[tuple[int, int]] = (), crash_range: tuple[int, int] | None = None,
                     in_capture: bool = False) -> Refusal | None:
    """kexec_load(entry, nr_segments, segments, flags): None, or the kernel's refusal.

    *segments* are (mem, memsz) pairs; *crash_range* is (start, size) of the
    crashkernel= reservation (*crash_reserved* its size, 0 when none).
    """
    rule = _data()["kexec_load"]
    known = sum(rule["flags"].values())
    arch = flags & rule["arch_mask"]
    low = flags & ~rule["arch_mask"]
    if low & ~known:
        return Refusal(errno.EINVAL, f"unknown flags {low & ~known:#x}")
    if arch not in (rule["arch_default"], e_machine << 16):
        return Refusal(errno.EINVAL, f"the image arch {arch >> 16} is not this machine's ({e_machine})")
    if nr_segments > rule["segment_max"]:
        return Refusal(errno.EINVAL, f"{nr_segments} segments, at most {rule['segment_max']}")
    crash = bool(flags & rule["flags"]["KEXEC_ON_CRASH"])
    if crash and nr_segments:
        if in_capture or not crash_reserved or crash_range is None:
            return Refusal(errno.EADDRNOTAVAIL, _no_reservation(in_capture))
        lo, size = crash_range
        for mem, memsz in segments:
            if mem < lo or mem + memsz > lo + size:
                return Refusal(errno.EADDRNOTAVAIL, f"segment {mem:#x}+{memsz:#x} is outside the crashkernel area")
    return None


def check_kexec_file_load(flags: int, kernel: bytes | None, cmdline: bytes, crash_reserved: int,
                          arch: str = "x86_64", has_initrd: bool = True, in_capture: bool = False) -> Refusal | None:
    """kexec_file_load(kernel_fd, initrd_fd, cmdline_len, cmdline, flags): None, or the kernel's refusal.

    *kernel* is the image's content (its first pages suffice), None for an
    unusable fd; *cmdline* the cmdline_len bytes passed.
    """
    rule = _data()["kexec_file_load"]
    names = rule["flags"]
    if flags & ~sum(names.values()):
        return Refusal(errno.EINVAL, f"unknown flags {flags & ~sum(names.values()):#x}")
    if flags & names["KEXEC_FILE_UNLOAD"]:
        return None  # the other arguments are ignored
    if kernel is None:
        return Refusal(errno.EBADF, "the kernel fd is not an open file")
    if not has_initrd and not flags & names["KEXEC_FILE_NO_INITRAMFS"]:
        return Refusal(errno.EBADF, "no initrd fd and no KEXEC_FILE_NO_INITRAMFS")
    if len(cmdline) > rule["command_line_size"]:
        return Refusal(errno.EINVAL, f"a command line of {len(cmdline)} bytes, at most {rule['command_line_size']}")
    if cmdline and cmdline[-1:] != b"\0":
        return Refusal(errno.EINVAL, "the command line is not NUL-terminated")
    problem = image_problem(kernel, arch)
    if problem:
        return Refusal(errno.ENOEXEC, problem)
    if flags & names["KEXEC_FILE_ON_CRASH"] and (in_capture or not crash_reserved):
        return Refusal(errno.EADDRNOTAVAIL, _no_reservation(in_capture))
    return None


def _no_reservation(in_capture: bool) -> str:
    # A capture kernel is booted without crashkernel=, so crashk_res is empty there too: the kernel's
    # check is the same (the entry point or the segments outside crashk_res; no hole in it for a buffer).
    if in_capture:
        return "no crashkernel= memory is reserved (a capture kernel boots without one)"
    return "no crashkernel= memory is reserved"


def image_problem(kernel: bytes, arch: str) -> str:
    """Why no image loader of *arch* takes *kernel* ("" when one does)."""
    if arch != "x86_64":
        return ""  # only the x86_64 bzImage probe is modelled; other loaders take what they are given
    probe = _data()["kexec_file_load"]["bzimage"]
    if len(kernel) < probe["min_size"]:
        return f"not a bzImage: {len(kernel)} bytes, shorter than the setup header"
    for check in probe["checks"]:
        value = int.from_bytes(kernel[check["offset"]:check["offset"] + check["size"]], "little")
        if "equals" in check and value != check["equals"]:
            return f"missing {check['what']}"
        if "at_least" in check and value < check["at_least"]:
            return f"missing {check['what']} (found {value:#x})"
        if "bits" in check and not value & check["bits"]:
            return f"missing {check['what']}"
    return ""


def reboot_command(magic1: int, magic2: int, cmd: int) -> str | Refusal:
    """The name of a reboot(2) command (``RESTART``, ``POWER_OFF``...), or the refusal."""
    rule = _data()["reboot"]
    if magic1 & 0xFFFFFFFF != rule["magic1"] or magic2 & 0xFFFFFFFF not in rule["magic2"]:
        return Refusal(errno.EINVAL, "bad magic numbers")
    for name, value in rule["commands"].items():
        if value == cmd & 0xFFFFFFFF:
            return str(name)
    return Refusal(errno.EINVAL, f"unknown command {cmd:#x}")

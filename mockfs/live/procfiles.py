"""The machine's own /proc files beside the dump ABI: what arming tools read and write.

``kexec -p`` reads /proc/iomem (the ``Crash kernel`` range), /proc/cmdline and
/proc/kcore (the kernel text mapping); dump services write /proc/sys
(``sysctl -w kernel.panic_on_oops=1``) and /proc/sysrq-trigger. These render
the machine's answers from the fixture and its state; :mod:`.sysctl` keeps the
sysctls.
"""

from __future__ import annotations

from abi_specs.elf import PF_R, PF_W, PF_X, PT_LOAD, pack_ehdr, pack_phdr
from abi_specs.intervals import IntervalSet
from mockfs.machine import Fixture
from mockfs.machine.kernel import IMAGE_ALIGN, KDATA_BASE

from .state import MachineState


def _mib(n: int) -> int:
    return n >> 20


def cmdline(fixture: Fixture, state: MachineState) -> str:
    """/proc/cmdline: the production kernel's boot options, or the crash kernel's."""
    if state.kernel.kernel == "capture" and fixture.platform == "kdump":
        loaded = (state.crash_kernel or {}).get("cmdline", "")
        return f"{loaded} elfcorehdr={_mib(fixture.ram_end)}M".strip() + "\n"
    options = [f"BOOT_IMAGE=/boot/vmlinuz-{fixture.osrelease}", "root=/dev/sda1", "ro"]
    if fixture.platform == "kdump" and fixture.crashkernel:
        options.append(f"crashkernel={_mib(fixture.crashkernel[1])}M")
    elif fixture.platform == "fadump":
        options.append("fadump=on")
    elif fixture.platform == "phyp":
        options.append("phyp_dump=1")
    return " ".join(options) + "\n"


def iomem(fixture: Fixture, state: MachineState) -> str:
    """/proc/iomem as root reads it: System RAM, the kernel's code, and the crashkernel area."""
    ram = IntervalSet((s, s + z) for s, z in fixture.ram)
    crash = fixture.crashkernel if state.kernel.kernel == "armed" and state.crash_size else None
    if crash:
        ram.add(crash[0], crash[0] + state.crash_size)  # production RAM includes the reservation
    lines = []
    for start, end in ram:
        lines.append(f"{start:08x}-{end - 1:08x} : System RAM")
        if start <= KDATA_BASE < end:
            lines.append(f"  {KDATA_BASE:08x}-{KDATA_BASE + IMAGE_ALIGN - 1:08x} : Kernel code")
        if crash and start <= crash[0] < end:
            lines.append(f"  {crash[0]:08x}-{crash[0] + state.crash_size - 1:08x} : Crash kernel")
    return "\n".join(lines) + "\n"


def kcore(fixture: Fixture) -> bytes:
    """The head of /proc/kcore: an ELF core whose PT_LOAD maps the kernel text (kexec_load reads it)."""
    arch = fixture.arch_info
    text = arch.kernel_map + arch.kernel_start
    head = pack_ehdr(arch.e_machine, arch.byteorder, 1)
    return head + pack_phdr(arch.byteorder, PT_LOAD, PF_R | PF_W | PF_X, 0x1000, text, arch.kernel_start,
                            IMAGE_ALIGN, IMAGE_ALIGN)

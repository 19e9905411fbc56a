"""fadump's memory layout: boot memory, the reservation, and what mem_reserved reads.

A pure model of arch/powerpc/kernel/fadump.c and platforms/pseries/rtas-fadump.c
as they changed over the kernel's history. The constants live in
``[platforms.fadump.layout]`` of ``specs/platforms.toml``, the first kernel of
each era in ``[platforms.fadump.eras]`` and the boot message in
``[platforms.fadump.messages]``; the eras are:

* boot memory (fadump_calculate_reserve_size): 5 % of RAM rounded down to
  256 MiB, at least RTAS_FADUMP_MIN_BOOT_MEM (320 MiB); page aligned;
* the reservation starts right above boot memory (boot_mem_top, page aligned:
  fadump_locate_reserve_mem since the 5.5 rework);
* inside it the CPU state, the hash page table, then the copy of boot memory,
  whose destination is page aligned since 5.19 ("powerpc/fadump: align
  destination address to pagesize");
* mem_reserved (get_fadump_area_size) is, with c the CPU state size, h the
  HPTE size, b the boot memory, f the crash info header, e and p the ELF and
  program header sizes and n the memory regions:
  - before 5.19: PAGE_ALIGN(c + h + b + f + e + p * (n + 3));
  - 5.19 to 6.9: PAGE_ALIGN(PAGE_ALIGN(c + h) + b + f + e + p * (n + 3));
  - 6.10 and later: PAGE_ALIGN(c + h) + b + f (the capture kernel builds the
    ELF header itself since 6.10), not page aligned.
"""

from __future__ import annotations

from dataclasses import dataclass

from .specfile import builtin_spec
from .versions import KernelVersion


def _era(name: str) -> KernelVersion:
    """The first kernel of the fadump era *name* (see the module docstring), from the spec."""
    return builtin_spec().platforms["fadump"].era(name)


@dataclass(frozen=True)
class FadumpAreas:
    """The boot memory firmware copies aside and the reservation that holds the copy."""

    boot_memory_size: int
    reserve_start: int
    reserve_size: int  # what /sys/kernel/fadump/mem_reserved reads
    boot_memory_destination: int  # where firmware copies boot memory to (ibm,kernel-dump's REAL_MODE section)


def _page_align(n: int, page: int) -> int:
    return -(-n // page) * page


def boot_memory_size(ram_size: int, page: int, boot_option: int = 0) -> int:
    """Boot memory: *boot_option* (crashkernel= or fadump_reserve_mem=, capped at RAM/4), else 5 % of RAM
    rounded down to 256 MiB, at least 320 MiB; page aligned."""
    rule = builtin_spec().platforms["fadump"].layout
    if boot_option:
        size = min(boot_option, ram_size // rule["boot_memory_ratio_cap"])
    else:
        share = ram_size * rule["boot_memory_percent"] // 100
        size = max(rule["boot_memory_min"], share - share % rule["boot_memory_align"])
    return _page_align(size, page)


def mem_reserved(version: KernelVersion, boot: int, cpu: int, hpte: int, regions: int, page: int) -> int:
    """What mem_reserved reads (reserve_dump_area_size) in a kernel of *version*."""
    rule = builtin_spec().platforms["fadump"].layout
    header = rule["crash_info_header"]
    elf = rule["elf_header"] + rule["program_header"] * (regions + 3)
    if version >= _era("no_elf_header"):
        return _page_align(cpu + hpte, page) + boot + header
    if version >= _era("aligned_destination"):
        return _page_align(_page_align(cpu + hpte, page) + boot + header + elf, page)
    return _page_align(cpu + hpte + boot + header + elf, page)


def fadump_areas(ram_size: int, version: KernelVersion, page: int, cpu: int = 0x10000, hpte: int = 0x1000,
                 regions: int = 1, boot: int = 0) -> FadumpAreas:
    """The areas of a machine with *ram_size* bytes of RAM from physical 0, in a kernel of *version*,
    with *boot* bytes of boot memory (0: as the kernel sizes it itself).

    Raises ValueError when RAM is too small to hold the reservation above boot memory.
    """
    boot = boot or boot_memory_size(ram_size, page)
    start = _page_align(boot, page)
    reserved = mem_reserved(version, boot, cpu, hpte, regions, page)
    if start + reserved > ram_size:
        raise ValueError(f"{ram_size} bytes of RAM are too small for fadump's {boot} bytes of boot memory")
    return FadumpAreas(boot, start, reserved, boot_destination(start, cpu, hpte, version, page))


def boot_destination(reserve_start: int, cpu: int, hpte: int, version: KernelVersion, page: int) -> int:
    """Where firmware copies boot memory: after the CPU state and the HPTE, page aligned since 5.19."""
    dest = reserve_start + cpu + hpte
    return _page_align(dest, page) if version >= _era("aligned_destination") else dest


def reservation_log_line(version: KernelVersion, reserve_size: int, reserve_start: int, ram_size: int) -> str:
    """The production kernel's boot message about the reservation (fadump_reserve_mem)."""
    mib = 1 << 20
    return builtin_spec().platforms["fadump"].message(
        "reserved", version, size_mib=reserve_size // mib, start=reserve_start, start_mib=reserve_start // mib,
        ram_mib=ram_size // mib)

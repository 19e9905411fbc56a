"""fadump's memory layout: how much boot memory firmware copies aside, and where it is reserved.

The sizing constants live in ``[platforms.fadump.layout]`` of
``specs/platforms.toml``; this is the one place that turns them into numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from .specfile import builtin_spec


@dataclass(frozen=True)
class FadumpAreas:
    """The boot memory firmware copies aside and the reservation that holds the copy."""

    boot_memory_size: int
    reserve_start: int
    reserve_size: int


def fadump_areas(ram_size: int) -> FadumpAreas:
    """The areas of a machine with *ram_size* bytes of RAM from physical 0.

    Raises ValueError when RAM is too small to hold the reservation above boot memory.
    """
    rule = builtin_spec().platforms["fadump"].layout
    share = ram_size * rule["boot_memory_percent"] // 100
    boot = max(rule["boot_memory_min"], share - share % rule["boot_memory_align"])
    reserve = boot + rule["reserve_extra"]  # room for the CPU state and the ELF header too
    start = (ram_size - reserve) // rule["reserve_align"] * rule["reserve_align"]
    if start < boot:
        raise ValueError(f"{ram_size} bytes of RAM are too small for fadump's {boot} bytes of boot memory")
    return FadumpAreas(boot, start, reserve)

"""The notes a crashed kernel leaves: NT_PRSTATUS per CPU and the VMCOREINFO text."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from .elfcore import NT_PRSTATUS, pack_note
from .model import ArchInfo, Cpu

# elf_prstatus on 64-bit: siginfo (3 ints), cursig (short, padded), sigpend,
# sighold, pid, ppid, pgrp, sid, four timevals, then pr_reg at offset 112.
PRSTATUS_PID_OFFSET = 32
PRSTATUS_REG_OFFSET = 112


def prstatus_desc(cpu: Cpu, arch: ArchInfo) -> bytes:
    """The elf_prstatus descriptor the kernel saves for *cpu* at crash time."""
    order = "<" if arch.byteorder == "little" else ">"
    buf = bytearray(arch.prstatus_size)
    struct.pack_into(order + "i", buf, PRSTATUS_PID_OFFSET, cpu.pid)
    regs = [0] * arch.greg_slots
    for i, name in enumerate(arch.registers):
        regs[i] = cpu.registers.get(name, 0)
    struct.pack_into(f"{order}{arch.greg_slots}Q", buf, PRSTATUS_REG_OFFSET, *regs)
    return bytes(buf)


def prstatus_pid(desc: bytes, byteorder: str) -> int:
    """The pr_pid field of an elf_prstatus descriptor."""
    return struct.unpack_from("<i" if byteorder == "little" else ">i", desc, PRSTATUS_PID_OFFSET)[0]


def prstatus_note(cpu: Cpu, arch: ArchInfo) -> bytes:
    """A complete CORE/NT_PRSTATUS note for *cpu*."""
    return pack_note("CORE", NT_PRSTATUS, prstatus_desc(cpu, arch), arch.byteorder)


class VmcoreInfo:
    """Builds the VMCOREINFO text in the kernel's formats, keeping insertion order."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self.values: dict[str, str] = {}

    def _add(self, key: str, value: str) -> None:
        self._lines.append(f"{key}={value}\n")
        self.values[key] = value

    def raw(self, key: str, value: str) -> None:
        """A line written as is, e.g. OSRELEASE or KERNELOFFSET."""
        self._add(key, value)

    def symbol(self, name: str, vaddr: int) -> None:
        """SYMBOL(name)=hex address without 0x."""
        self._add(f"SYMBOL({name})", f"{vaddr:x}")

    def size(self, name: str, value: int) -> None:
        """SIZE(name)=decimal."""
        self._add(f"SIZE({name})", str(value))

    def offset(self, name: str, value: int) -> None:
        """OFFSET(struct.field)=decimal."""
        self._add(f"OFFSET({name})", str(value))

    def offsets(self, struct_name: str, fields: Iterable[tuple[str, int]]) -> None:
        """Several OFFSET lines of one structure."""
        for field_name, value in fields:
            self.offset(f"{struct_name}.{field_name}", value)

    def length(self, name: str, value: int) -> None:
        """LENGTH(name)=decimal."""
        self._add(f"LENGTH({name})", str(value))

    def number(self, name: str, value: int) -> None:
        """NUMBER(name)=signed decimal."""
        self._add(f"NUMBER({name})", str(value))

    def text(self) -> str:
        """The whole note text."""
        return "".join(self._lines)

    def note(self, byteorder: str) -> bytes:
        """The VMCOREINFO note (type 0) carrying the text."""
        return pack_note("VMCOREINFO", 0, self.text().encode(), byteorder)

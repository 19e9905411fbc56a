"""The notes a crashed kernel leaves: NT_PRSTATUS per CPU and the VMCOREINFO text."""

from __future__ import annotations

from collections.abc import Iterable

from abi_specs import builtin_spec
from abi_specs.arches import Arch
from abi_specs.elf import pack_note

from .model import Cpu


def _kind(type_name: str) -> tuple[str, int]:
    kind = builtin_spec().vmcore.note(type_name)
    return kind.name, kind.type


def prstatus_note(cpu: Cpu, arch: Arch) -> bytes:
    """A complete CORE/NT_PRSTATUS note for *cpu*."""
    name, n_type = _kind("NT_PRSTATUS")
    return pack_note(name, n_type, arch.prstatus_desc(cpu.pid, dict(cpu.registers)), arch.byteorder)


def vmcoreinfo_note(text: str, byteorder: str) -> bytes:
    """The VMCOREINFO note carrying *text*."""
    name, n_type = _kind("VMCOREINFO")
    return pack_note(name, n_type, text.encode(), byteorder)


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
        """The VMCOREINFO note carrying the text."""
        return vmcoreinfo_note(self.text(), byteorder)

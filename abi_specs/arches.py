"""The architectures of the spec (``specs/arches.toml``): ELF identity, memory map, registers.

One :class:`Arch` per architecture says what its ELF cores carry (e_machine,
byte order, the ``elf_prstatus`` layout of its CPU notes) and where its kernel
maps memory. The machine model, the /proc/vmcore synthesizer and validator,
the importer and the reference collector all look architectures up here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .binlayout import Layout


@dataclass(frozen=True)
class Arch:
    """One architecture: how its cores and its kernel look."""

    name: str
    e_machine: int
    byteorder: str  # "little" or "big"
    page_size: int  # the page size its distribution kernels use
    direct_map: int  # virtual address of physical address 0
    kernel_map: int  # where the kernel text mapping maps physical 0
    kernel_start: int  # physical address of the kernel text
    registers: tuple[str, ...]  # elf_gregset_t slots, in order
    greg_slots: int
    pc: str  # the register holding the program counter
    sp: str  # the register holding the stack pointer
    prstatus: Layout = field(repr=False)  # struct elf_prstatus in this arch's byte order

    @property
    def prstatus_size(self) -> int:
        """Bytes of an NT_PRSTATUS descriptor (336 on x86_64, 504 on ppc64)."""
        return self.prstatus.size

    def prstatus_desc(self, pid: int, registers: dict[str, int]) -> bytes:
        """The elf_prstatus the kernel saves for a CPU running *pid* with *registers*."""
        regs = [registers.get(name, 0) for name in self.registers]
        return self.prstatus.pack(pr_pid=pid, pr_reg=regs)

    def prstatus_pid(self, desc: bytes) -> int:
        """The pr_pid of an elf_prstatus descriptor."""
        return int(self.prstatus.unpack(desc)["pr_pid"])  # type: ignore[call-overload]


def prstatus_layout(head: list[tuple[str, str]], tail: list[tuple[str, str]], greg_slots: int, byteorder: str,
                    word: int = 8) -> Layout:
    """struct elf_prstatus with a pr_reg of *greg_slots* machine words."""
    return Layout("elf_prstatus", [*head, (f"ulong[{greg_slots}]", "pr_reg"), *tail], byteorder, word)

"""ELF64 core-file structures, declared once: pyelftools' declarations serve both ways.

Reading parses with pyelftools' structs (:func:`abi_specs.corehead.read_elf_headers`); building the
headers of a synthesized /proc/vmcore uses the very same pyelftools structs
(``Elf_Ehdr``, ``Elf_Phdr``, ``Elf_Nhdr``), so field names, sizes and byte
orders are stated in one place.
"""

from __future__ import annotations

from functools import cache

from elftools.construct.lib.container import Container
from elftools.elf.enums import ENUM_E_MACHINE, ENUM_P_TYPE_BASE
from elftools.elf.structs import ELFStructs

#: Segment permission bits (p_flags).
PF_X, PF_W, PF_R = 1, 2, 4
PT_LOAD = ENUM_P_TYPE_BASE["PT_LOAD"]
PT_NOTE = ENUM_P_TYPE_BASE["PT_NOTE"]
_MACHINE_NAMES = {number: name for name, number in ENUM_E_MACHINE.items() if isinstance(number, int)}


@cache
def structs(byteorder: str) -> ELFStructs:
    """pyelftools' ELF64 core structures in *byteorder* (``little`` or ``big``)."""
    s = ELFStructs(little_endian=byteorder == "little", elfclass=64)
    s.create_basic_structs()
    s.create_advanced_structs(e_type="ET_CORE", e_machine="EM_NONE", e_ident_osabi="ELFOSABI_SYSV")
    return s


EHDR_SIZE = structs("little").Elf_Ehdr.sizeof()
PHDR_SIZE = structs("little").Elf_Phdr.sizeof()
NHDR_SIZE = structs("little").Elf_Nhdr.sizeof()


def machine_name(e_machine: int | str) -> str:
    """pyelftools' name of an e_machine value (``EM_X86_64``), or the value itself when unknown."""
    return e_machine if isinstance(e_machine, str) else _MACHINE_NAMES.get(e_machine, str(e_machine))


def machine_number(e_machine: int | str) -> int:
    """The number of an e_machine value as pyelftools reports it (a name, or a number it does not know)."""
    if isinstance(e_machine, int):
        return e_machine
    return int(ENUM_E_MACHINE.get(e_machine, e_machine))


def pack_ehdr(e_machine: int, byteorder: str, phnum: int) -> bytes:
    """The ELF header of a core with *phnum* program headers right after it."""
    ident = Container(EI_MAG=list(b"\x7fELF"), EI_CLASS="ELFCLASS64",
                      EI_DATA="ELFDATA2LSB" if byteorder == "little" else "ELFDATA2MSB",
                      EI_VERSION="EV_CURRENT", EI_OSABI="ELFOSABI_SYSV", EI_ABIVERSION=0)  # fmt: skip
    header = Container(e_ident=ident, e_type="ET_CORE", e_machine=machine_name(e_machine), e_version="EV_CURRENT",
                       e_entry=0, e_phoff=EHDR_SIZE, e_shoff=0, e_flags=0, e_ehsize=EHDR_SIZE,
                       e_phentsize=PHDR_SIZE, e_phnum=phnum, e_shentsize=0, e_shnum=0, e_shstrndx=0)  # fmt: skip
    return structs(byteorder).Elf_Ehdr.build(header)


def pack_phdr(byteorder: str, p_type: int, p_flags: int, p_offset: int, p_vaddr: int, p_paddr: int,
              p_filesz: int, p_memsz: int, p_align: int = 0) -> bytes:
    """One program header."""
    return structs(byteorder).Elf_Phdr.build(Container(
        p_type=p_type, p_flags=p_flags, p_offset=p_offset, p_vaddr=p_vaddr, p_paddr=p_paddr,
        p_filesz=p_filesz, p_memsz=p_memsz, p_align=p_align))  # fmt: skip


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def pack_note(name: str, n_type: int, desc: bytes, byteorder: str) -> bytes:
    """One ELF note: header, NUL-terminated name and descriptor, each padded to 4 bytes."""
    raw_name = name.encode() + b"\0"
    head = structs(byteorder).Elf_Nhdr.build(Container(n_namesz=len(raw_name), n_descsz=len(desc), n_type=n_type))
    return head + raw_name.ljust(_pad4(len(raw_name)), b"\0") + desc.ljust(_pad4(len(desc)), b"\0")

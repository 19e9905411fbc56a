"""ELF64 core-file structures: header, program header and note, packed with struct.

Field names follow the ELF specification (and pyelftools), so the code that fills
them reads like the kernel's and the tools' view of a core file.
"""

from __future__ import annotations

import struct
from dataclasses import astuple, dataclass

ET_CORE = 4
PT_LOAD = 1
PT_NOTE = 4
PF_X, PF_W, PF_R = 1, 2, 4
NT_PRSTATUS = 1
EHDR_SIZE = 64
PHDR_SIZE = 56


def _prefix(byteorder: str) -> str:
    return "<" if byteorder == "little" else ">"


@dataclass(frozen=True)
class Elf64Ehdr:
    """The ELF64 file header of a core (e_ident is built from byteorder)."""

    e_machine: int
    e_phnum: int
    e_type: int = ET_CORE
    e_version: int = 1
    e_entry: int = 0
    e_phoff: int = EHDR_SIZE
    e_shoff: int = 0
    e_flags: int = 0
    e_ehsize: int = EHDR_SIZE
    e_phentsize: int = PHDR_SIZE
    e_shentsize: int = 0
    e_shnum: int = 0
    e_shstrndx: int = 0

    def pack(self, byteorder: str) -> bytes:
        """The 64 header bytes in *byteorder* ("little" or "big")."""
        data = 1 if byteorder == "little" else 2
        # EI_MAG, EI_CLASS=ELFCLASS64, EI_DATA, EI_VERSION=1, EI_OSABI=SYSV, padding.
        ident = b"\x7fELF" + bytes((2, data, 1, 0)) + bytes(8)
        body = struct.pack(
            _prefix(byteorder) + "HHIQQQIHHHHHH",
            self.e_type, self.e_machine, self.e_version, self.e_entry, self.e_phoff,
            self.e_shoff, self.e_flags, self.e_ehsize, self.e_phentsize, self.e_phnum,
            self.e_shentsize, self.e_shnum, self.e_shstrndx,
        )  # fmt: skip
        return ident + body

    @classmethod
    def unpack(cls, raw: bytes) -> tuple[Elf64Ehdr, str]:
        """Parse a header; returns it and its byteorder."""
        byteorder = "little" if raw[5] == 1 else "big"
        f = struct.unpack_from(_prefix(byteorder) + "HHIQQQIHHHHHH", raw, 16)
        names = ("e_type", "e_machine", "e_version", "e_entry", "e_phoff", "e_shoff", "e_flags",
                 "e_ehsize", "e_phentsize", "e_phnum", "e_shentsize", "e_shnum", "e_shstrndx")  # fmt: skip
        return cls(**dict(zip(names, f, strict=True))), byteorder


@dataclass(frozen=True)
class Elf64Phdr:
    """One ELF64 program header."""

    p_type: int
    p_flags: int
    p_offset: int
    p_vaddr: int
    p_paddr: int
    p_filesz: int
    p_memsz: int
    p_align: int = 0

    _FMT = "IIQQQQQQ"

    def pack(self, byteorder: str) -> bytes:
        """The 56 header bytes in *byteorder*."""
        return struct.pack(_prefix(byteorder) + self._FMT, *astuple(self))

    @classmethod
    def unpack(cls, raw: bytes, offset: int, byteorder: str) -> Elf64Phdr:
        """Parse one program header at *offset* of *raw*."""
        return cls(*struct.unpack_from(_prefix(byteorder) + cls._FMT, raw, offset))


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def pack_note(name: str, n_type: int, desc: bytes, byteorder: str) -> bytes:
    """One ELF note: header, NUL-terminated name and descriptor, each padded to 4."""
    raw_name = name.encode() + b"\0"
    head = struct.pack(_prefix(byteorder) + "III", len(raw_name), len(desc), n_type)
    return head + raw_name.ljust(_pad4(len(raw_name)), b"\0") + desc.ljust(_pad4(len(desc)), b"\0")


def iter_notes(buf: bytes, byteorder: str) -> list[tuple[str, int, bytes]]:
    """Split a notes buffer into (name, type, descriptor) triples."""
    out = []
    pos = 0
    fmt = _prefix(byteorder) + "III"
    while pos + 12 <= len(buf):
        namesz, descsz, n_type = struct.unpack_from(fmt, buf, pos)
        if namesz == 0 and descsz == 0:
            break
        name_start = pos + 12
        desc_start = name_start + _pad4(namesz)
        name = buf[name_start : name_start + namesz].rstrip(b"\0").decode("latin-1")
        out.append((name, n_type, bytes(buf[desc_start : desc_start + descsz])))
        pos = desc_start + _pad4(descsz)
    return out

"""The head of an ELF core: headers through pyelftools, notes, VMCOREINFO.

Everything that reads cores (the /proc/vmcore validator, the reference
collector, the importer, dump verification) starts from :func:`read_core_head`:
it reads only the ELF header, the program headers and the note segments,
never the memory, so a live /proc/vmcore of any size costs a few reads.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from elftools.construct import ConstructError
from elftools.elf.structs import ELFStructs

from .binlayout import Layout
from .elf import machine_number
from .errors import CoreError

#: struct elf64_note (Elf64_Nhdr): the header of every note.
NOTE_HEADER = Layout("Elf64_Nhdr", [("u32", "n_namesz"), ("u32", "n_descsz"), ("u32", "n_type")])
#: A sanity bound: a note segment larger than this is not something to trust.
MAX_NOTES_BYTES = 64 << 20


def _pad4(n: int) -> int:
    return (n + 3) & ~3


@dataclass(frozen=True)
class Note:
    """One ELF note: name, type, descriptor and its file offset."""

    name: str
    type: int
    desc: bytes
    offset: int


@dataclass(frozen=True)
class CoreLoad:
    """One PT_LOAD: ``filesz`` file bytes at ``offset`` hold physical ``paddr`` onwards."""

    offset: int
    filesz: int
    memsz: int
    vaddr: int
    paddr: int


@dataclass(frozen=True)
class CoreHead:
    """What the head of a core says, read without touching its memory."""

    byteorder: str
    elfclass: int
    e_machine: int
    e_type: str
    segment_types: tuple[str, ...]  # p_type of every program header, in order
    loads: tuple[CoreLoad, ...]  # in program-header order
    note_segments: tuple[tuple[int, int], ...]  # (p_offset, p_filesz) of each PT_NOTE
    notes: tuple[Note, ...]
    head_end: int  # first byte after the ELF header, the program headers and the notes
    digest: str  # sha256 of those bytes: tells one crash from another

    def note_descs(self, name: str, n_type: int) -> list[bytes]:
        """Descriptors of the notes called *name* of type *n_type*, in order."""
        return [n.desc for n in self.notes if n.name == name and n.type == n_type]

    def vmcoreinfo(self) -> dict[str, str]:
        """The VMCOREINFO note's ``KEY=value`` lines (leniently: malformed lines are skipped)."""
        for note in self.notes:
            if note.name == "VMCOREINFO":
                text = note.desc.rstrip(b"\0").decode("latin-1")
                return dict(line.partition("=")[::2] for line in text.split("\n") if "=" in line)
        return {}

    def page_size(self) -> int:
        """PAGESIZE from VMCOREINFO, 0 when absent or not a number."""
        value = self.vmcoreinfo().get("PAGESIZE", "")
        return int(value) if value.isdigit() else 0


def parse_notes(buf: bytes, base: int, byteorder: str, what: str) -> list[Note]:
    """Split a notes buffer into notes; *base* is its file offset (for messages)."""
    header = NOTE_HEADER.order(byteorder)
    notes = []
    pos = 0
    while pos < len(buf):
        if pos + header.size > len(buf):
            raise CoreError(what, base + pos, f"{len(buf) - pos} stray bytes after the last note")
        h = header.unpack(buf, pos)
        namesz, descsz = int(h["n_namesz"]), int(h["n_descsz"])  # type: ignore[call-overload]
        name_end = pos + header.size + _pad4(namesz)
        desc_end = name_end + _pad4(descsz)
        if namesz == 0 or desc_end > len(buf):
            raise CoreError(what, base + pos, f"note header (namesz {namesz}, descsz {descsz}) runs past p_filesz")
        raw_name = buf[pos + header.size:pos + header.size + namesz]
        if not raw_name.endswith(b"\0"):
            raise CoreError(what, base + pos + header.size, "note name is not NUL-terminated")
        notes.append(Note(raw_name[:-1].decode("latin-1"), int(h["n_type"]), buf[name_end:name_end + descsz],  # type: ignore[call-overload]
                          base + pos))
        pos = desc_end
    return notes


def _read_at(stream: BinaryIO, offset: int, size: int) -> bytes:
    stream.seek(offset)
    return stream.read(size)


#: e_phnum of a file with 0xffff program headers or more: section 0's sh_info holds the count (PN_XNUM).
PN_XNUM = 0xFFFF
#: A sanity bound on the program headers read (56 MiB of table): a count beyond is a broken header.
MAX_PHDRS = 1 << 20


@dataclass(frozen=True)
class ElfHeaders:
    """The ELF header and the program headers of a file, parsed by pyelftools' structs.

    pyelftools' own ``ELFFile`` would do, but importing it brings its DWARF,
    symbol and section machinery: a third of a collector's start.
    """

    structs: ELFStructs
    header: Any  # pyelftools' Container: e_type, e_machine... as pyelftools names them
    phdrs: tuple[Any, ...]
    little_endian: bool
    elfclass: int

    def section_header(self, stream: BinaryIO, index: int) -> Any:
        """Section header *index* (struct errors for a broken table are the caller's to report)."""
        return _section_header(stream, self.structs, self.header, index)


def _section_header(stream: BinaryIO, structs: ELFStructs, header: Any, index: int) -> Any:
    return structs.Elf_Shdr.parse(_read_at(stream, header.e_shoff + index * header.e_shentsize,
                                           structs.Elf_Shdr.sizeof()))


def read_elf_headers(stream: BinaryIO, what: str) -> ElfHeaders:
    """The ELF header and program headers of *stream*; CoreError naming *what* when it is no ELF file."""
    ident = _read_at(stream, 0, 16)
    if ident[:4] != b"\x7fELF":
        raise CoreError(what, 0, "not an ELF file (no \\x7fELF magic)")
    elfclass = {1: 32, 2: 64}.get(ident[4]) if len(ident) > 4 else None
    little = {1: True, 2: False}.get(ident[5]) if len(ident) > 5 else None
    if elfclass is None or little is None:
        raise CoreError(what, 4, f"unreadable ELF headers: EI_CLASS/EI_DATA {ident[4:6]!r} are not ELF's")
    structs = ELFStructs(little_endian=little, elfclass=elfclass)
    structs.create_basic_structs()
    try:
        header = structs.Elf_Ehdr.parse(_read_at(stream, 0, structs.Elf_Ehdr.sizeof()))
        structs.create_advanced_structs(header.e_type, header.e_machine, header.e_ident.EI_OSABI)
    except (ConstructError, struct.error, ValueError) as exc:
        raise CoreError(what, 0, f"unreadable ELF headers: {exc}") from None
    try:
        count = header.e_phnum
        if count == PN_XNUM:
            if not (header.e_shoff and header.e_shnum):
                raise ValueError("e_phnum is PN_XNUM, but there is no section 0 to hold the count")
            count = _section_header(stream, structs, header, 0).sh_info
        size, stride = structs.Elf_Phdr.sizeof(), header.e_phentsize
        if count > MAX_PHDRS:
            raise ValueError(f"{count} program headers claimed, more than any core has ({MAX_PHDRS})")
        if count and stride < size:
            raise ValueError(f"e_phentsize {stride} is smaller than a program header ({size})")
        if stride == size:  # the usual table: one read
            table = _read_at(stream, header.e_phoff, count * size)
            phdrs = tuple(structs.Elf_Phdr.parse(table[i * size:(i + 1) * size]) for i in range(count))
        else:
            phdrs = tuple(structs.Elf_Phdr.parse(_read_at(stream, header.e_phoff + i * stride, size))
                          for i in range(count))
    except (ConstructError, struct.error, ValueError) as exc:
        raise CoreError(what, int(header.e_phoff), f"unreadable program headers: {exc}") from None
    return ElfHeaders(structs, header, phdrs, little, elfclass)


def read_core_head(stream: BinaryIO, what: str = "core", notes_limit: int = MAX_NOTES_BYTES) -> CoreHead:
    """Read the head of the ELF file *stream*; CoreError naming *what* and an offset when it is broken."""
    elf = read_elf_headers(stream, what)
    header, phdrs = elf.header, elf.phdrs
    byteorder = "little" if elf.little_endian else "big"
    phdr_end = header.e_phoff + len(phdrs) * header.e_phentsize
    digest = hashlib.sha256(_read_at(stream, 0, header.e_ehsize))
    digest.update(_read_at(stream, header.e_phoff, phdr_end - header.e_phoff))
    loads, segments, notes = [], [], []
    head_end = max(header.e_ehsize, phdr_end)
    for i, p in enumerate(phdrs):
        if p.p_type == "PT_LOAD":
            loads.append(CoreLoad(p.p_offset, p.p_filesz, p.p_memsz, p.p_vaddr, p.p_paddr))
        elif p.p_type == "PT_NOTE" and p.p_filesz:
            if p.p_filesz > notes_limit:
                raise CoreError(what, header.e_phoff + i * header.e_phentsize, f"PT_NOTE {i} claims {p.p_filesz} bytes")
            blob = _read_at(stream, p.p_offset, p.p_filesz)
            if len(blob) != p.p_filesz:
                raise CoreError(what, p.p_offset, f"PT_NOTE {i}: file ends after {len(blob)} of {p.p_filesz} bytes")
            digest.update(blob)
            segments.append((p.p_offset, p.p_filesz))
            notes += parse_notes(blob, p.p_offset, byteorder, what)
            head_end = max(head_end, p.p_offset + p.p_filesz)
    return CoreHead(byteorder, elf.elfclass, machine_number(header.e_machine), str(header.e_type),
                    tuple(str(p.p_type) for p in phdrs), tuple(loads), tuple(segments), tuple(notes), head_end,
                    digest.hexdigest())

"""Validate an ELF core file against the layout rules of /proc/vmcore.

The kernel (``fs/proc/vmcore.c``) builds /proc/vmcore from the crash kernel's
ELF core header: the ELF header and program headers padded with zeros to a
page, one merged PT_NOTE first whose notes buffer is also padded to a page,
then each PT_LOAD in a page-aligned slot of the file. :func:`validate_core`
checks a file (or any seekable stream) against those rules and the spec's
VMCOREINFO grammar, reading only headers, notes and padding: a live
/proc/vmcore of any size is checked in a few reads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .errors import CoreError
from .model import CoreFormat

EHDR_SIZE = 64
PHDR_SIZE = 56
NT_PRSTATUS = 1
NT_VMCOREDD = 0x700
_PAGE_SIZES = [1 << s for s in range(12, 31)]


def round_up(value: int, align: int) -> int:
    return -(-value // align) * align


@dataclass
class Note:
    """One ELF note: name, type, descriptor and its file offset."""

    name: str
    type: int
    desc: bytes
    offset: int


@dataclass
class CoreSummary:
    """What a valid core holds, for reports and ``check --json``."""

    arch: str
    page_size: int
    size: int
    cpus: int
    pids: list[int]
    vmcoreinfo: dict[str, str]
    loads: list[dict[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "arch": self.arch,
            "page_size": self.page_size,
            "size": self.size,
            "cpus": self.cpus,
            "pids": self.pids,
            "vmcoreinfo": self.vmcoreinfo,
            "loads": self.loads,
        }


def parse_notes(buf: bytes, base: int, byteorder: str, what: str) -> list[Note]:
    """Split a notes buffer into notes; *base* is its file offset (for messages)."""
    fmt = struct.Struct("<III" if byteorder == "little" else ">III")
    notes = []
    pos = 0
    while pos < len(buf):
        if pos + 12 > len(buf):
            raise CoreError(what, base + pos, f"{len(buf) - pos} stray bytes after the last note")
        namesz, descsz, ntype = fmt.unpack_from(buf, pos)
        name_end = pos + 12 + round_up(namesz, 4)
        desc_end = name_end + round_up(descsz, 4)
        if namesz == 0 or desc_end > len(buf):
            raise CoreError(what, base + pos, f"note header (namesz {namesz}, descsz {descsz}) runs past p_filesz")
        raw_name = buf[pos + 12:pos + 12 + namesz]
        if not raw_name.endswith(b"\0"):
            raise CoreError(what, base + pos + 12, "note name is not NUL-terminated")
        notes.append(Note(raw_name[:-1].decode("latin-1"), ntype, buf[name_end:name_end + descsz], base + pos))
        pos = desc_end
    return notes


def parse_vmcoreinfo(text: bytes, rules: CoreFormat, what: str, offset: int) -> dict[str, str]:
    """Check the VMCOREINFO text against the spec's key grammar; return its keys."""
    body = text.rstrip(b"\0")
    if not body.endswith(b"\n"):
        raise CoreError(what, offset, "VMCOREINFO text does not end with a newline")
    values: dict[str, str] = {}
    at = offset
    for line in body.decode("latin-1").split("\n")[:-1]:
        key, eq, value = line.partition("=")
        if not eq or not key:
            raise CoreError(what, at, f"VMCOREINFO line {line!r} is not KEY=value")
        rule = rules.info_rule(key)
        if rule is None:
            raise CoreError(what, at, f"VMCOREINFO key {key!r} is not one the kernel writes")
        if not rule.value_ok(value):
            raise CoreError(what, at, f"VMCOREINFO {key}={value!r}: expected a {rule.value} value")
        if key in values:
            raise CoreError(what, at, f"VMCOREINFO key {key!r} appears twice")
        values[key] = value
        at += len(line) + 1
    return values


def _read_at(stream: BinaryIO, offset: int, size: int) -> bytes:
    stream.seek(offset)
    return stream.read(size)


def _arch_of(rules: CoreFormat, machine: int, endian: str) -> str | None:
    return next((a for a, m in rules.machines.items() if m.e_machine == machine and m.endian == endian), None)


def validate_core(stream: BinaryIO, rules: CoreFormat, size: int, what: str = "vmcore") -> CoreSummary:
    """Check *stream* (*size* bytes) against the /proc/vmcore layout rules.

    Returns a :class:`CoreSummary`; raises :class:`CoreError` naming the first
    rule broken and the file offset where it is broken.
    """
    ident = _read_at(stream, 0, 16)
    if ident[:4] != b"\x7fELF":
        raise CoreError(what, 0, "not an ELF file (no \\x7fELF magic)")
    if len(ident) < 16 or size < EHDR_SIZE:
        raise CoreError(what, len(ident), f"truncated: {size} bytes, shorter than an ELF header")
    if ident[4] != 2:
        raise CoreError(what, 4, "not ELF64 (EI_CLASS is not ELFCLASS64)")
    if ident[6] != 1:
        raise CoreError(what, 6, f"EI_VERSION is {ident[6]}, not EV_CURRENT")
    try:
        elf = ELFFile(stream)
        header = elf.header
        phdrs = [elf.get_segment(i).header for i in range(elf.num_segments())]
    except (ELFError, struct.error, ValueError) as exc:
        raise CoreError(what, 0, f"unreadable ELF headers: {exc}") from None
    endian = "little" if elf.little_endian else "big"
    if header.e_type != "ET_CORE":
        raise CoreError(what, 16, f"e_type is {header.e_type}, not ET_CORE")
    machine = header.e_machine
    machine_number = {"EM_X86_64": 62, "EM_PPC64": 21}.get(machine, machine)
    arch = _arch_of(rules, machine_number, endian)
    if arch is None:
        raise CoreError(what, 18, f"machine {machine} ({endian}-endian) is none of {', '.join(rules.machines)}")
    if header.e_version != "EV_CURRENT":
        raise CoreError(what, 20, f"e_version is {header.e_version}, not EV_CURRENT")
    if header.e_ehsize != EHDR_SIZE or header.e_phentsize != PHDR_SIZE:
        raise CoreError(what, 52, f"e_ehsize/e_phentsize are {header.e_ehsize}/{header.e_phentsize}, not 64/56")
    if header.e_phnum == 0 or header.e_phoff != EHDR_SIZE:
        raise CoreError(what, 32, "program headers must follow the ELF header (e_phoff 64, e_phnum > 0)")
    kinds = [p.p_type for p in phdrs]
    if kinds[0] != "PT_NOTE":
        raise CoreError(what, EHDR_SIZE, f"the first program header is {kinds[0]}, not the merged PT_NOTE")
    for i, kind in enumerate(kinds[1:], 1):
        if kind != "PT_LOAD":
            raise CoreError(what, EHDR_SIZE + i * PHDR_SIZE, f"program header {i} is {kind}: only one PT_NOTE, then PT_LOADs")
    note = phdrs[0]
    hdr_end = EHDR_SIZE + len(phdrs) * PHDR_SIZE
    if note.p_filesz != note.p_memsz or note.p_vaddr or note.p_paddr:
        raise CoreError(what, EHDR_SIZE, "the PT_NOTE must have p_filesz == p_memsz and zero addresses")
    notes = parse_notes(_read_at(stream, note.p_offset, note.p_filesz), note.p_offset, endian, what)
    if not notes:
        raise CoreError(what, note.p_offset, "the PT_NOTE holds no notes")
    info_notes = [n for n in notes if n.name == "VMCOREINFO"]
    if len(info_notes) > 1:
        raise CoreError(what, info_notes[1].offset, "more than one VMCOREINFO note")
    info: dict[str, str] = {}
    if info_notes:
        if info_notes[0].type != 0:
            raise CoreError(what, info_notes[0].offset, f"VMCOREINFO note has type {info_notes[0].type}, not 0")
        info = parse_vmcoreinfo(info_notes[0].desc, rules, what, info_notes[0].offset)

    page = int(info["PAGESIZE"]) if "PAGESIZE" in info else next(
        (p for p in _PAGE_SIZES if round_up(hdr_end, p) == note.p_offset), 0)
    if page not in _PAGE_SIZES:
        raise CoreError(what, EHDR_SIZE, f"cannot tell the page size (PAGESIZE {page}, PT_NOTE at {note.p_offset:#x})")
    if note.p_offset != round_up(hdr_end, page):
        want = round_up(hdr_end, page)
        raise CoreError(what, EHDR_SIZE, f"PT_NOTE p_offset {note.p_offset:#x} is not the headers padded to the page ({want:#x})")
    if _read_at(stream, hdr_end, note.p_offset - hdr_end).strip(b"\0"):
        raise CoreError(what, hdr_end, "the padding after the program headers is not zero")
    notes_end = note.p_offset + note.p_filesz
    if _read_at(stream, notes_end, round_up(notes_end, page) - notes_end).strip(b"\0"):
        raise CoreError(what, notes_end, "the padding after the notes is not zero")

    seen_core = False
    pids = []
    want = rules.machines[arch].prstatus_size
    for n in notes:
        if n.name == "LINUX" and n.type == NT_VMCOREDD:
            if seen_core:
                raise CoreError(what, n.offset, "a device dump note comes after the CPU notes")
        elif n.name == "CORE" and n.type == NT_PRSTATUS:
            seen_core = True
            if len(n.desc) != want:
                raise CoreError(what, n.offset, f"NT_PRSTATUS descriptor is {len(n.desc)} bytes, {arch} has {want}")
            pids.append(int.from_bytes(n.desc[32:36], endian))
    if not pids:
        raise CoreError(what, note.p_offset, "no NT_PRSTATUS (CPU) note")

    cursor = round_up(notes_end, page)
    loads = []
    for i, p in enumerate(phdrs[1:], 1):
        where = EHDR_SIZE + i * PHDR_SIZE
        in_page = p.p_offset - cursor
        if not 0 <= in_page < page:
            raise CoreError(what, where, f"PT_LOAD {i} p_offset {p.p_offset:#x} is not in its page-aligned slot at {cursor:#x}")
        if p.p_filesz != p.p_memsz:
            raise CoreError(what, where, f"PT_LOAD {i} p_filesz {p.p_filesz:#x} differs from p_memsz {p.p_memsz:#x}")
        loads.append({"paddr": p.p_paddr, "vaddr": p.p_vaddr, "offset": p.p_offset, "size": p.p_memsz})
        cursor += round_up(in_page + p.p_memsz, page)
    if size != cursor:
        raise CoreError(what, min(size, cursor), f"file is {size} bytes, the headers describe {cursor}")
    return CoreSummary(arch, page, size, len(pids), pids, info, loads)

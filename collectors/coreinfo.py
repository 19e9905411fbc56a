"""What a collector needs to know from the head of an ELF core (/proc/vmcore).

Only the ELF header, the program headers and the notes are read: they live in
the capture kernel's own memory (the ELF core header it was handed and the
notes it merged), never in memory a collector gives back, so they can be read
again safely on every run. The page size comes from the VMCOREINFO note.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from abi_specs.errors import CoreError
from abi_specs.vmcore import parse_notes

ET_CORE = 4
PT_LOAD = 1
PT_NOTE = 4
PN_XNUM = 0xFFFF  # e_phnum overflow marker: the real count is in section header 0
EHDR_SIZE = 64
# e_machine -> the page size the kernel uses by default, when VMCOREINFO lacks PAGESIZE.
DEFAULT_PAGE_SIZE = {62: 4096, 21: 65536, 183: 4096, 22: 4096}
# A sanity bound: a core header larger than this is not something we should trust.
MAX_HEADER_BYTES = 64 << 20


class CoreFormatError(ValueError):
    """The file does not start like an ELF64 core; the message says where."""


@dataclass(frozen=True)
class Load:
    """One PT_LOAD: ``filesz`` file bytes at ``offset`` hold physical ``paddr`` onwards."""

    offset: int
    filesz: int
    paddr: int


@dataclass(frozen=True)
class CoreInfo:
    """The layout of a core: its loads, page size and a fingerprint of its head."""

    machine: int
    byteorder: str
    loads: tuple[Load, ...]
    page_size: int
    head_end: int  # first byte after the ELF header, program headers and notes
    identity: str  # sha256 of those bytes: tells one crash from another


def _notes(data: bytes, order: str, offset: int) -> dict[str, bytes]:
    """Descriptors of the notes in *data* by name (the first of each name wins)."""
    try:
        notes = parse_notes(data, offset, "little" if order == "<" else "big", "/proc/vmcore")
    except CoreError as exc:
        raise CoreFormatError(str(exc)) from None
    out: dict[str, bytes] = {}
    for note in notes:
        out.setdefault(note.name, note.desc)
    return out


def _vmcoreinfo_page_size(text: bytes) -> int:
    for line in text.decode("latin-1").splitlines():
        if line.startswith("PAGESIZE="):
            try:
                return int(line.split("=", 1)[1])
            except ValueError:
                return 0
    return 0


def read_core_info(pread: Callable[[int, int], bytes]) -> CoreInfo:
    """Parse the head of a core through ``pread(offset, length)``."""

    def exact(offset: int, length: int, what: str) -> bytes:
        if length > MAX_HEADER_BYTES:
            raise CoreFormatError(f"{what} at offset {offset:#x} claims {length} bytes")
        data = pread(offset, length)
        if len(data) != length:
            raise CoreFormatError(f"{what} at offset {offset:#x}: file ends after {len(data)} of {length} bytes")
        return data

    ehdr = exact(0, EHDR_SIZE, "ELF header")
    if ehdr[:4] != b"\x7fELF" or ehdr[4] != 2:
        raise CoreFormatError("not an ELF64 file (bad magic or class at offset 0)")
    if ehdr[5] not in (1, 2):
        raise CoreFormatError(f"unknown ELF data encoding {ehdr[5]} at offset 5")
    order = "<" if ehdr[5] == 1 else ">"
    e_type, e_machine = struct.unpack_from(order + "HH", ehdr, 16)
    if e_type != ET_CORE:
        raise CoreFormatError(f"ELF type {e_type} at offset 16 is not ET_CORE")
    e_phoff, e_shoff = struct.unpack_from(order + "QQ", ehdr, 32)
    e_phentsize, e_phnum = struct.unpack_from(order + "HH", ehdr, 54)
    if e_phentsize < 56:
        raise CoreFormatError(f"program header size {e_phentsize} at offset 54 is below 56")
    if e_phnum == PN_XNUM:
        # More than 65534 segments: section header 0's sh_info holds the count.
        e_phnum = struct.unpack_from(order + "I", exact(e_shoff, 64, "section header 0"), 44)[0]
    phdrs = exact(e_phoff, e_phentsize * e_phnum, "program headers")
    loads: list[Load] = []
    note_blobs: list[tuple[int, bytes]] = []
    head_parts = [ehdr, phdrs]
    head_end = e_phoff + len(phdrs)
    for i in range(e_phnum):
        p_type, _, p_offset, _, p_paddr, p_filesz = struct.unpack_from(order + "IIQQQQ", phdrs, i * e_phentsize)
        if p_type == PT_LOAD and p_filesz:
            loads.append(Load(p_offset, p_filesz, p_paddr))
        elif p_type == PT_NOTE and p_filesz:
            blob = exact(p_offset, p_filesz, f"PT_NOTE {i}")
            note_blobs.append((p_offset, blob))
            head_parts.append(blob)
            head_end = max(head_end, p_offset + p_filesz)
    page_size = 0
    for offset, blob in note_blobs:
        info = _notes(blob, order, offset).get("VMCOREINFO")
        if info:
            page_size = _vmcoreinfo_page_size(info)
            break
    if not page_size:
        page_size = DEFAULT_PAGE_SIZE.get(e_machine, os.sysconf("SC_PAGE_SIZE"))
    if page_size < 4096 or page_size & (page_size - 1):
        raise CoreFormatError(f"page size {page_size} from VMCOREINFO is not a power of two of at least 4096")
    digest = hashlib.sha256()
    for part in head_parts:
        digest.update(part)
    return CoreInfo(
        machine=e_machine,
        byteorder="little" if order == "<" else "big",
        loads=tuple(sorted(loads, key=lambda ld: ld.offset)),
        page_size=page_size,
        head_end=head_end,
        identity=digest.hexdigest(),
    )

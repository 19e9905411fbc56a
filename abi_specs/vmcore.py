"""Validate an ELF core file against the layout rules of /proc/vmcore.

:func:`validate_core` reads a file's head (:func:`~abi_specs.corehead.read_core_head`),
plans the layout its headers imply (:class:`~abi_specs.vmcore_layout.VmcoreLayout`,
the same plan the synthesizer builds from) and checks the file against it and
against the spec's notes and VMCOREINFO grammar. Only headers, notes and
padding are read: a live /proc/vmcore of any size is checked in a few reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

from .core_rules import CoreFormat
from .corehead import CoreHead, read_core_head, read_elf_headers
from .elf import EHDR_SIZE, PHDR_SIZE, machine_name, machine_number
from .errors import CoreError
from .vmcore_layout import VmcoreLayout, round_up

_PAGE_SIZES = [1 << s for s in range(12, 31)]


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


def _check_elf_header(stream: BinaryIO, rules: CoreFormat, size: int, what: str) -> str:
    """The ELF header's rules; returns the arch."""
    ident = _read_at(stream, 0, 16)
    if ident[:4] != b"\x7fELF":
        raise CoreError(what, 0, "not an ELF file (no \\x7fELF magic)")
    if len(ident) < 16 or size < EHDR_SIZE:
        raise CoreError(what, len(ident), f"truncated: {size} bytes, shorter than an ELF header")
    if ident[4] != 2:
        raise CoreError(what, 4, "not ELF64 (EI_CLASS is not ELFCLASS64)")
    if ident[6] != 1:
        raise CoreError(what, 6, f"EI_VERSION is {ident[6]}, not EV_CURRENT")
    elf = read_elf_headers(stream, what)
    header = elf.header
    endian = "little" if elf.little_endian else "big"
    if header.e_type != "ET_CORE":
        raise CoreError(what, 16, f"e_type is {header.e_type}, not ET_CORE")
    e_machine = machine_number(header.e_machine)
    arch = rules.arch_of(e_machine, endian)
    if arch is None:
        raise CoreError(what, 18, f"machine {machine_name(e_machine)} ({endian}-endian) is none of "
                        f"{', '.join(rules.arches)}")
    if header.e_version != "EV_CURRENT":
        raise CoreError(what, 20, f"e_version is {header.e_version}, not EV_CURRENT")
    if header.e_ehsize != EHDR_SIZE or header.e_phentsize != PHDR_SIZE:
        raise CoreError(what, 52, f"e_ehsize/e_phentsize are {header.e_ehsize}/{header.e_phentsize}, "
                        f"not {EHDR_SIZE}/{PHDR_SIZE}")
    if header.e_phnum == 0 or header.e_phoff != EHDR_SIZE:
        raise CoreError(what, 32, f"program headers must follow the ELF header (e_phoff {EHDR_SIZE}, e_phnum > 0)")
    return arch


def _check_segments(stream: BinaryIO, what: str) -> None:
    """One PT_NOTE first, then only PT_LOADs (checked before any note is parsed)."""
    phdrs = read_elf_headers(stream, what).phdrs
    kinds = [p.p_type for p in phdrs]
    if kinds[0] != "PT_NOTE":
        raise CoreError(what, EHDR_SIZE, f"the first program header is {kinds[0]}, not the merged PT_NOTE")
    for i, kind in enumerate(kinds[1:], 1):
        if kind != "PT_LOAD":
            raise CoreError(what, EHDR_SIZE + i * PHDR_SIZE, f"program header {i} is {kind}: only one PT_NOTE, then PT_LOADs")
    note = phdrs[0]
    if note.p_filesz != note.p_memsz or note.p_vaddr or note.p_paddr:
        raise CoreError(what, EHDR_SIZE, "the PT_NOTE must have p_filesz == p_memsz and zero addresses")


def _check_notes(head: CoreHead, rules: CoreFormat, arch: str, what: str) -> tuple[dict[str, str], list[int]]:
    """The notes' rules; returns the VMCOREINFO values and the CPUs' pids."""
    vmcoreinfo, prstatus, device = rules.note("VMCOREINFO"), rules.note("NT_PRSTATUS"), rules.note("NT_VMCOREDD")
    info_notes = [n for n in head.notes if n.name == vmcoreinfo.name]
    if len(info_notes) > 1:
        raise CoreError(what, info_notes[1].offset, f"more than one {vmcoreinfo.name} note")
    info: dict[str, str] = {}
    if info_notes:
        if info_notes[0].type != vmcoreinfo.type:
            raise CoreError(what, info_notes[0].offset, f"VMCOREINFO note has type {info_notes[0].type}, not {vmcoreinfo.type}")
        info = parse_vmcoreinfo(info_notes[0].desc, rules, what, info_notes[0].offset)
    seen_core = False
    pids = []
    spec = rules.arches[arch]
    for n in head.notes:
        if n.name == device.name and n.type == device.type:
            if seen_core:
                raise CoreError(what, n.offset, "a device dump note comes after the CPU notes")
        elif n.name == prstatus.name and n.type == prstatus.type:
            seen_core = True
            if len(n.desc) != spec.prstatus_size:
                raise CoreError(what, n.offset, f"NT_PRSTATUS descriptor is {len(n.desc)} bytes, {arch} has {spec.prstatus_size}")
            pids.append(spec.prstatus_pid(n.desc))
    if not pids:
        raise CoreError(what, head.note_segments[0][0], "no NT_PRSTATUS (CPU) note")
    return info, pids


def _check_layout(head: CoreHead, stream: BinaryIO, info: dict[str, str], size: int, what: str) -> VmcoreLayout:
    notes_offset, notes_size = head.note_segments[0]
    headers_end = EHDR_SIZE + len(head.segment_types) * PHDR_SIZE
    page = int(info["PAGESIZE"]) if "PAGESIZE" in info else next(
        (p for p in _PAGE_SIZES if round_up(headers_end, p) == notes_offset), 0)
    if page not in _PAGE_SIZES:
        raise CoreError(what, EHDR_SIZE, f"cannot tell the page size (PAGESIZE {page}, PT_NOTE at {notes_offset:#x})")
    plan = VmcoreLayout.plan(page, notes_size, [(ld.vaddr, ld.paddr, ld.memsz) for ld in head.loads])
    if notes_offset != plan.notes_offset:
        raise CoreError(what, EHDR_SIZE, f"PT_NOTE p_offset {notes_offset:#x} is not the headers padded to the page "
                        f"({plan.notes_offset:#x})")
    if _read_at(stream, plan.headers_end, plan.notes_offset - plan.headers_end).strip(b"\0"):
        raise CoreError(what, plan.headers_end, "the padding after the program headers is not zero")
    if _read_at(stream, plan.notes_end, plan.loads_start - plan.notes_end).strip(b"\0"):
        raise CoreError(what, plan.notes_end, "the padding after the notes is not zero")
    for i, (ld, slot) in enumerate(zip(head.loads, plan.loads), 1):
        where = EHDR_SIZE + i * PHDR_SIZE
        if ld.offset != slot.offset:
            raise CoreError(what, where, f"PT_LOAD {i} p_offset {ld.offset:#x} is not in its page-aligned slot at "
                            f"{slot.slot:#x} (expected {slot.offset:#x})")
        if ld.filesz != ld.memsz:
            raise CoreError(what, where, f"PT_LOAD {i} p_filesz {ld.filesz:#x} differs from p_memsz {ld.memsz:#x}")
    if size != plan.size:
        raise CoreError(what, min(size, plan.size), f"file is {size} bytes, the headers describe {plan.size}")
    return plan


def validate_core(stream: BinaryIO, rules: CoreFormat, size: int, what: str = "vmcore") -> CoreSummary:
    """Check *stream* (*size* bytes) against the /proc/vmcore layout rules.

    Returns a :class:`CoreSummary`; raises :class:`CoreError` naming the first
    rule broken and the file offset where it is broken.
    """
    arch = _check_elf_header(stream, rules, size, what)
    _check_segments(stream, what)
    head = read_core_head(stream, what)
    if not head.notes:
        raise CoreError(what, head.note_segments[0][0] if head.note_segments else EHDR_SIZE, "the PT_NOTE holds no notes")
    info, pids = _check_notes(head, rules, arch, what)
    plan = _check_layout(head, stream, info, size, what)
    loads = [{"paddr": ld.paddr, "vaddr": ld.vaddr, "offset": ld.offset, "size": ld.memsz} for ld in head.loads]
    return CoreSummary(arch, plan.page_size, size, len(pids), pids, info, loads)

"""Fixtures backed by a real ELF core file, and opening any fixture as bytes.

``import_core(path)`` turns an ELF core (a ``gcore`` of a process, a saved
/proc/vmcore, an exported fixture) into an :class:`ImportedCore`: the file as a
list of pieces, small metadata (ELF header, program headers, notes, section
headers) embedded as bytes and everything else referenced by file range in the
core. Its manifest (``kind = "imported-core"``) is a TOML file of its own; the
synthesized-fixture reader (manifest.py) does not know it, so
:func:`open_image` is the one entry point that accepts both kinds and returns
something with ``size`` and ``read(offset, length)``.

The manifest::

    kind = "imported-core"          # first, so open_image can sniff it cheaply
    format = 1
    name = "sleep"
    description = "imported from /tmp/sleep.core"
    [core]
    path = "/tmp/sleep.core"        # absolute, or relative to the manifest
    size = 595280
    [[pieces]]                      # contiguous from offset 0 to core.size
    offset = 0
    size = 1016
    hex = "7f454c46..."             # embedded bytes
    [[pieces]]
    offset = 1016
    size = 4096
    core_offset = 1016              # bytes of the core file

Byte-for-byte fidelity is the point: an imported core exports exactly the bytes
it was made from. When the core changes after import (size or embedded
metadata differs), opening the manifest fails instead of serving a mix.
"""

from __future__ import annotations

import bisect
import itertools
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import tomli_w
from elftools.construct import ConstructError

from abi_specs import AbiError, CoreError, builtin_spec
from abi_specs.corehead import CoreHead, read_core_head, read_elf_headers
from abi_specs.elf import machine_name
from abi_specs.intervals import IntervalSet
from abi_specs.streams import ReadAtStream
from abi_specs.tomlreader import TableReader
from mockfs.machine import FixtureError

from .kind import KIND, read_manifest

FORMAT_VERSION = 1
CHUNK = 1 << 20
#: Metadata regions (note segments, section tables) up to this size are embedded in the manifest.
EMBED_LIMIT = 1 << 20
_TOP_KEYS = {"kind", "format", "name", "description", "core", "pieces", "machine", "recorded"}
#: What a ``[machine]`` table may say of the machine the core came from (``fixture record`` writes it).
MACHINE_KEYS = {"platform", "osrelease", "kernel_version", "hostname", "crashkernel", "page_size"}


class CoreImportError(AbiError, ValueError):
    """A file that cannot be imported as a core; str() names the file and the problem."""


@dataclass(frozen=True)
class Piece:
    """A run of the imported file: embedded ``data`` or ``size`` bytes of the core at ``core_offset``."""

    offset: int
    size: int
    data: bytes | None = None
    core_offset: int = 0


class ImportedCore:
    """A fixture backed by a core file: ``size`` and ``read(offset, length)`` like VmcoreImage."""

    kind = KIND

    def __init__(self, name: str, core_path: Path, core_size: int, pieces: list[Piece], description: str = "",
                 machine: dict[str, Any] | None = None, recorded: dict[str, Any] | None = None) -> None:
        self.name = name
        self.description = description
        self.machine = dict(machine or {})  # platform, osrelease, crashkernel...: what the recording knew
        self.recorded = dict(recorded or {})  # the real kernel's ABI files and writes, per state
        self.core_path = core_path
        self.size = core_size
        self.pieces = pieces
        self._starts = [p.offset for p in pieces]
        self._file: BinaryIO | None = None
        self._head: CoreHead | None = None

    # -- bytes --------------------------------------------------------------------------

    def _core(self) -> BinaryIO:
        if self._file is None:
            self._file = open(self.core_path, "rb")  # noqa: SIM115 - kept open for reads, closed by close()
        return self._file

    def read(self, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length) of the imported file; short or empty past the end."""
        if offset < 0:
            raise ValueError("negative offset")
        end = min(offset + max(length, 0), self.size)
        out = []
        while offset < end:
            p = self.pieces[bisect.bisect_right(self._starts, offset) - 1]
            take = min(end, p.offset + p.size) - offset
            at = offset - p.offset
            if p.data is not None:
                out.append(p.data[at : at + take])
            else:
                got = os.pread(self._core().fileno(), take, p.core_offset + at)
                if len(got) != take:
                    where = p.core_offset + at
                    raise CoreImportError(f"{self.core_path}: core file shrank since import (short read at {where:#x})")
                out.append(got)
            offset += take
        return out[0] if len(out) == 1 else b"".join(out)

    def close(self) -> None:
        """Close the core file (reads reopen it)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ImportedCore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what it holds ------------------------------------------------------------------

    @property
    def head(self) -> CoreHead:
        """What the core's headers and notes say."""
        if self._head is None:
            try:
                self._head = read_core_head(ReadAtStream(self.read, self.size), str(self.core_path))
            except CoreError as exc:
                raise CoreImportError(str(exc)) from None
        return self._head

    @property
    def arch(self) -> str:
        """The spec's name of the core's architecture, or its ELF machine name when the spec has none."""
        head = self.head
        return builtin_spec().vmcore.arch_of(head.e_machine, head.byteorder) or machine_name(head.e_machine)

    def pids(self) -> list[int]:
        """pr_pid of each CPU note (NT_PRSTATUS), in order."""
        kind = builtin_spec().vmcore.note("NT_PRSTATUS")
        head = self.head
        arch = builtin_spec().arches.get(self.arch)
        word = 8 if head.elfclass == 64 else 4
        layout = (arch.prstatus if arch else _any_prstatus(head.byteorder)).with_word(word)
        return [int(layout.unpack(d)["pr_pid"]) for d in head.note_descs(kind.name, kind.type)  # type: ignore[call-overload]
                if len(d) >= layout.offset_of("pr_reg")]

    def summary(self) -> dict[str, Any]:
        """What ``fixture show --json`` prints for an imported core (what its headers say)."""
        head = self.head
        info = head.vmcoreinfo()
        pids = self.pids()
        return {
            "kind": KIND,
            "name": self.name,
            "core": str(self.core_path),
            "platform": None,  # a core file does not say which dump mechanism wrote it
            "arch": self.arch,
            "page_size": head.page_size() or None,
            "memory_bytes": sum(ld.memsz for ld in head.loads),
            "loads": [{"offset": ld.offset, "vaddr": ld.vaddr, "paddr": ld.paddr, "filesz": ld.filesz, "memsz": ld.memsz}
                      for ld in head.loads],
            "cpus": len(pids),
            "pids": pids,
            "osrelease": info.get("OSRELEASE"),
            "messages": [],  # decoding the log of a foreign kernel needs its debug info; not done
            "vmcore_size": self.size,
            "embedded_bytes": sum(p.size for p in self.pieces if p.data is not None),
            "referenced_bytes": sum(p.size for p in self.pieces if p.data is None),
        }

    def manifest(self) -> dict[str, Any]:
        """The manifest document (for tomli_w)."""
        pieces: list[dict[str, Any]] = []
        for p in self.pieces:
            if p.data is not None:
                pieces.append({"offset": p.offset, "size": p.size, "hex": p.data.hex()})
            else:
                pieces.append({"offset": p.offset, "size": p.size, "core_offset": p.core_offset})
        doc: dict[str, Any] = {"kind": KIND, "format": FORMAT_VERSION, "name": self.name}
        if self.description:
            doc["description"] = self.description
        doc["core"] = {"path": str(self.core_path), "size": self.size}
        if self.machine:
            doc["machine"] = self.machine
        doc["pieces"] = pieces
        if self.recorded:
            doc["recorded"] = self.recorded
        return doc


def _any_prstatus(byteorder: str) -> Any:
    """The elf_prstatus head of an arch the spec does not know: enough to read pr_pid."""
    return next(iter(builtin_spec().arches.values())).prstatus.order(byteorder)


# -- importing ----------------------------------------------------------------------------


def _embedded_ranges(f: BinaryIO, size: int, where: str) -> tuple[IntervalSet, set[int]]:
    """Byte ranges to embed (headers, small notes, section table) and the cuts between pieces."""
    try:
        elf = read_elf_headers(f, where)
    except CoreError as exc:
        raise CoreImportError(f"{where}: {exc.problem}") from None
    h = elf.header
    if h.e_type != "ET_CORE":
        raise CoreImportError(f"{where}: ELF type is {h.e_type}, not ET_CORE (a core file)")
    # Embedded: the ELF header and program header table, every small PT_NOTE,
    # and the section header table (gcore writes one) with its string table.
    embed = IntervalSet([(0, h.e_ehsize), (h.e_phoff, h.e_phoff + h.e_phnum * h.e_phentsize)])
    cuts = {0, size}
    try:
        if h.e_shoff and h.e_shnum:
            embed.add(h.e_shoff, h.e_shoff + h.e_shnum * h.e_shentsize)
            strtab = elf.section_header(f, h.e_shstrndx) if h.e_shstrndx else None
            if strtab is not None and strtab.sh_type != "SHT_NOBITS":
                embed.add(strtab.sh_offset, strtab.sh_offset + strtab.sh_size)
        for p in elf.phdrs:
            if p.p_type == "PT_NOTE" and p.p_filesz <= EMBED_LIMIT:
                embed.add(p.p_offset, p.p_offset + p.p_filesz)
            elif p.p_filesz:
                cuts |= {p.p_offset, p.p_offset + p.p_filesz}  # one referenced piece per segment
    except (ConstructError, struct.error, ValueError) as exc:
        raise CoreImportError(f"{where}: unreadable ELF headers: {exc}") from None
    embed = embed.intersection(IntervalSet([(0, size)]))
    for a, b in embed:
        cuts |= {a, b}
    return embed, {c for c in cuts if 0 <= c <= size}


def import_core(core: str | os.PathLike[str], name: str | None = None) -> ImportedCore:
    """An ImportedCore of the ELF core file *core*: metadata embedded, memory referenced."""
    path = Path(core).resolve()
    where = str(core)
    try:
        size = path.stat().st_size
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise CoreImportError(f"{where}: cannot read: {exc.strerror}") from None
    with f:
        embed, cuts = _embedded_ranges(f, size, where)
        pieces = []
        for a, b in itertools.pairwise(sorted(cuts)):
            if embed.covers(a, b):
                pieces.append(Piece(a, b - a, data=os.pread(f.fileno(), b - a, a)))
            else:
                pieces.append(Piece(a, b - a, core_offset=a))
    return ImportedCore(name or path.stem, path, size, pieces, description=f"imported from {path}")


def write_imported(core: ImportedCore, path: str | os.PathLike[str]) -> None:
    """Write the manifest of *core* to *path*."""
    Path(path).write_text(tomli_w.dumps(core.manifest()), encoding="utf-8")


# -- loading ------------------------------------------------------------------------------


def _pieces(doc: TableReader, size: int) -> list[Piece]:
    pieces, pos = [], 0
    for t in doc.items("pieces"):
        extra = set(t.table) - {"offset", "size"}
        if not {"offset", "size"} <= set(t.table) or len(extra) != 1 or not extra <= {"hex", "core_offset"}:
            raise t.fail("", "expected { offset, size } and exactly one of hex or core_offset")
        off, n = t.get("offset", int), t.get("size", int)
        if off != pos or n <= 0:
            raise t.fail("offset", f"pieces must be non-empty and contiguous: expected offset {pos:#x}, got {off:#x}")
        if "hex" in t.table:
            try:
                data = bytes.fromhex(t.string("hex"))
            except ValueError:
                data = None
            if data is None or len(data) != n:
                raise t.fail("hex", f"expected {n} bytes as a hex string")
            pieces.append(Piece(off, n, data=data))
        else:
            co = t.get("core_offset", int)
            if co < 0 or co + n > size:
                raise t.fail("core_offset", f"range {co:#x}+{n:#x} runs past the core's {size:#x} bytes")
            pieces.append(Piece(off, n, core_offset=co))
        pos += n
    if not pieces:
        raise doc.fail("pieces", "expected a non-empty array of tables")
    if pos != size:
        raise doc.fail("pieces", f"pieces cover {pos:#x} bytes, the core has {size:#x}")
    return pieces


def load_imported(path: str | os.PathLike[str]) -> ImportedCore:
    """Load an ``imported-core`` manifest; FixtureError names the file, key and problem."""
    path = Path(path)
    doc = TableReader(str(path), "", read_manifest(path), FixtureError)
    doc.check_keys(_TOP_KEYS)
    if doc.table.get("kind") != KIND:
        raise doc.fail("kind", f"expected {KIND!r}")
    if doc.table.get("format") != FORMAT_VERSION:
        raise doc.fail("format", f"unsupported format {doc.table.get('format')!r} (this reader knows {FORMAT_VERSION})")
    core_t = doc.sub("core", required=True)
    core_t.check_keys({"path", "size"})
    core_t.require("path", "size")
    core_path = (path.parent / core_t.string("path")).resolve()  # relative paths are relative to the manifest
    size = core_t.get("size", int)
    try:
        actual = core_path.stat().st_size
    except OSError as exc:
        raise core_t.fail("path", f"cannot read core file {core_path}: {exc.strerror}") from None
    if actual != size:
        raise core_t.fail("size", f"core file {core_path} is {actual} bytes, the manifest says {size}: it changed since import")
    pieces = _pieces(doc, size)
    machine = doc.get("machine", dict, {})
    unknown = sorted(set(machine) - MACHINE_KEYS)
    if unknown:
        raise doc.fail(f"machine.{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(MACHINE_KEYS))})")
    image = ImportedCore(doc.string("name", required=True), core_path, size, pieces,
                         description=doc.string("description", ""), machine=machine,
                         recorded=doc.get("recorded", dict, {}))
    # Embedded metadata must still match the core: catches a core rewritten in place.
    with open(core_path, "rb") as f:
        for i, p in enumerate(pieces):
            if p.data is not None and os.pread(f.fileno(), p.size, p.offset) != p.data:
                problem = f"core file {core_path} differs from the embedded bytes at {p.offset:#x}: it changed since import"
                raise doc.fail(f"pieces[{i}]", problem)
    return image

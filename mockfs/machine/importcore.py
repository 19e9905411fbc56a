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
import contextlib
import itertools
import os
import struct
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import tomli_w
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .image import VmcoreImage
from .manifest import builtin_fixture_names, resolve_fixture
from .model import Fixture, FixtureError
from .streams import ReadAtStream

KIND = "imported-core"
FORMAT_VERSION = 1
CHUNK = 1 << 20
#: Metadata regions (note segments, section tables) up to this size are embedded in the manifest.
EMBED_LIMIT = 1 << 20
_TOP_KEYS = {"kind", "format", "name", "description", "core", "pieces"}
_MACHINES = {"EM_X86_64": "x86_64", "EM_PPC64": "ppc64", "EM_386": "i386", "EM_AARCH64": "aarch64", "EM_S390": "s390x"}


class CoreImportError(ValueError):
    """A file that cannot be imported as a core; str() names the file and the problem."""


@dataclass(frozen=True)
class Piece:
    """A run of the imported file: embedded ``data`` or ``size`` bytes of the core at ``core_offset``."""

    offset: int
    size: int
    data: bytes | None = None
    core_offset: int = 0


@dataclass
class CoreInfo:
    """What the ELF headers and notes of a core say (for ``fixture show``)."""

    arch: str
    byteorder: str
    elf_class: int
    loads: list[dict[str, int]] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    vmcoreinfo: dict[str, str] = field(default_factory=dict)


class ImportedCore:
    """A fixture backed by a core file: ``size`` and ``read(offset, length)`` like VmcoreImage."""

    kind = KIND

    def __init__(self, name: str, core_path: Path, core_size: int, pieces: list[Piece], description: str = "") -> None:
        self.name = name
        self.description = description
        self.core_path = core_path
        self.size = core_size
        self.pieces = pieces
        self._starts = [p.offset for p in pieces]
        self._file: BinaryIO | None = None
        self._info: CoreInfo | None = None

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
    def info(self) -> CoreInfo:
        """Architecture, PT_LOADs, CPU pids and VMCOREINFO, read from the headers."""
        if self._info is None:
            self._info = core_info(ImageReader(self), str(self.core_path))
        return self._info

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
        doc["pieces"] = pieces
        return doc


class ImageReader(ReadAtStream):
    """A read-only, seekable file view of anything with ``size`` and ``read()`` (for pyelftools)."""

    def __init__(self, image: VmcoreImage | ImportedCore) -> None:
        super().__init__(image.read, image.size)


# -- importing ----------------------------------------------------------------------------


def _open_elf(stream: BinaryIO, where: str) -> ELFFile:
    head = stream.read(4)
    stream.seek(0)
    if head != b"\x7fELF":
        raise CoreImportError(f"{where}: not an ELF file (no \\x7fELF magic)")
    try:
        elf = ELFFile(stream)
        _ = elf.header.e_type
    except (ELFError, struct.error, ValueError) as exc:
        raise CoreImportError(f"{where}: unreadable ELF headers: {exc}") from None
    if elf.header.e_type != "ET_CORE":
        raise CoreImportError(f"{where}: ELF type is {elf.header.e_type}, not ET_CORE (a core file)")
    return elf


def core_info(stream: BinaryIO, where: str) -> CoreInfo:
    """Read the architecture, PT_LOADs, CPU notes and VMCOREINFO of an ELF core."""
    elf = _open_elf(stream, where)
    machine = elf.header.e_machine
    byteorder = "little" if elf.little_endian else "big"
    arch = _MACHINES.get(machine, str(machine))
    if arch == "ppc64" and byteorder == "little":
        arch = "ppc64le"
    info = CoreInfo(arch, byteorder, elf.elfclass)
    try:
        for seg in elf.iter_segments():
            h = seg.header
            if h.p_type == "PT_LOAD":
                info.loads.append({"offset": h.p_offset, "vaddr": h.p_vaddr, "paddr": h.p_paddr,
                                   "filesz": h.p_filesz, "memsz": h.p_memsz})  # fmt: skip
            elif h.p_type == "PT_NOTE":
                for note in seg.iter_notes():
                    raw = note.get("n_descdata", b"")
                    raw = raw.encode("latin-1") if isinstance(raw, str) else bytes(raw)
                    if note.n_name == "CORE" and note.n_type in ("NT_PRSTATUS", 1):
                        at = 32 if elf.elfclass == 64 else 24  # pr_pid follows pr_info, pr_cursig and two sigsets
                        info.pids.append(int.from_bytes(raw[at : at + 4], byteorder))
                    elif note.n_name == "VMCOREINFO":
                        text = raw.decode("latin-1")
                        info.vmcoreinfo = dict(ln.partition("=")[::2] for ln in text.split("\n") if "=" in ln)
    except (ELFError, struct.error, ValueError, KeyError) as exc:
        raise CoreImportError(f"{where}: unreadable program headers or notes: {exc}") from None
    return info


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
        elf = _open_elf(f, where)
        h = elf.header
        # Embedded: the ELF header and program header table, every small PT_NOTE,
        # and the section header table (gcore writes one) with its string table.
        embed = [(0, h.e_ehsize), (h.e_phoff, h.e_phoff + h.e_phnum * h.e_phentsize)]
        try:
            segments = [seg.header for seg in elf.iter_segments()]
            if h.e_shoff and h.e_shnum:
                embed.append((h.e_shoff, h.e_shoff + h.e_shnum * h.e_shentsize))
                strtab = elf.get_section(h.e_shstrndx).header if h.e_shstrndx else None
                if strtab is not None and strtab.sh_type != "SHT_NOBITS":
                    embed.append((strtab.sh_offset, strtab.sh_offset + strtab.sh_size))
        except (ELFError, struct.error, ValueError) as exc:
            raise CoreImportError(f"{where}: unreadable ELF headers: {exc}") from None
        bounds = {0, size}
        for s in segments:
            if s.p_type == "PT_NOTE" and s.p_filesz <= EMBED_LIMIT:
                embed.append((s.p_offset, s.p_offset + s.p_filesz))
            elif s.p_filesz:
                bounds |= {s.p_offset, s.p_offset + s.p_filesz}  # one referenced piece per segment
        merged: list[list[int]] = []
        for a, b in sorted((max(0, a), min(size, b)) for a, b in embed):
            if a >= b:
                continue
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        for a, b in merged:
            bounds |= {a, b}
        cuts = sorted(x for x in bounds if 0 <= x <= size)
        pieces = []
        for a, b in itertools.pairwise(cuts):
            inside = any(m[0] <= a and b <= m[1] for m in merged)
            if inside:
                pieces.append(Piece(a, b - a, data=os.pread(f.fileno(), b - a, a)))
            else:
                pieces.append(Piece(a, b - a, core_offset=a))
    return ImportedCore(name or path.stem, path, size, pieces, description=f"imported from {path}")


def write_imported(core: ImportedCore, path: str | os.PathLike[str]) -> None:
    """Write the manifest of *core* to *path*."""
    Path(path).write_text(tomli_w.dumps(core.manifest()), encoding="utf-8")


# -- loading ------------------------------------------------------------------------------


def is_imported_manifest(path: str | os.PathLike[str]) -> bool:
    """True if *path* is a TOML manifest whose ``kind`` is ``imported-core``."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    # Cheap sniff before a full parse: the writer puts ``kind`` first.
    return b"imported-core" in head and _read_doc(Path(path)).get("kind") == KIND


def _read_doc(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise FixtureError(str(path), "", f"cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FixtureError(str(path), "", f"not valid TOML: {exc}") from None


def load_imported(path: str | os.PathLike[str]) -> ImportedCore:
    """Load an ``imported-core`` manifest; FixtureError names the file, key and problem."""
    path = Path(path)
    src = str(path)
    doc = _read_doc(path)

    def fail(key: str, problem: str) -> FixtureError:
        return FixtureError(src, key, problem)

    def integer(value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise fail(key, f"expected a non-negative integer, got {value!r}")
        return value

    for k in doc:
        if k not in _TOP_KEYS:
            raise fail(k, f"unknown key (expected one of {', '.join(sorted(_TOP_KEYS))})")
    if doc.get("kind") != KIND:
        raise fail("kind", f"expected {KIND!r}")
    if doc.get("format") != FORMAT_VERSION:
        raise fail("format", f"unsupported format {doc.get('format')!r} (this reader knows {FORMAT_VERSION})")
    core_t = doc.get("core")
    if not isinstance(core_t, dict) or set(core_t) != {"path", "size"}:
        raise fail("core", "expected a table with exactly path and size")
    if not isinstance(core_t["path"], str):
        raise fail("core.path", "expected a string")
    core_path = (path.parent / core_t["path"]).resolve()  # relative paths are relative to the manifest
    size = integer(core_t["size"], "core.size")
    try:
        actual = core_path.stat().st_size
    except OSError as exc:
        raise fail("core.path", f"cannot read core file {core_path}: {exc.strerror}") from None
    if actual != size:
        raise fail("core.size", f"core file {core_path} is {actual} bytes, the manifest says {size}: it changed since import")
    raw = doc.get("pieces")
    if not isinstance(raw, list) or not raw:
        raise fail("pieces", "expected a non-empty array of tables")
    pieces, pos = [], 0
    for i, t in enumerate(raw):
        key = f"pieces[{i}]"
        if not isinstance(t, dict) or not {"offset", "size"} <= set(t) or len(set(t) - {"offset", "size"}) != 1 \
                or not set(t) - {"offset", "size"} <= {"hex", "core_offset"}:
            raise fail(key, "expected { offset, size } and exactly one of hex or core_offset")
        off, n = integer(t["offset"], f"{key}.offset"), integer(t["size"], f"{key}.size")
        if off != pos or n == 0:
            raise fail(f"{key}.offset", f"pieces must be non-empty and contiguous: expected offset {pos:#x}, got {off:#x}")
        if "hex" in t:
            try:
                data = bytes.fromhex(t["hex"]) if isinstance(t["hex"], str) else None
            except ValueError:
                data = None
            if data is None or len(data) != n:
                raise fail(f"{key}.hex", f"expected {n} bytes as a hex string")
            pieces.append(Piece(off, n, data=data))
        else:
            co = integer(t["core_offset"], f"{key}.core_offset")
            if co + n > size:
                raise fail(f"{key}.core_offset", f"range {co:#x}+{n:#x} runs past the core's {size:#x} bytes")
            pieces.append(Piece(off, n, core_offset=co))
        pos += n
    if pos != size:
        raise fail("pieces", f"pieces cover {pos:#x} bytes, the core has {size:#x}")
    name = doc.get("name")
    if not isinstance(name, str):
        raise fail("name", "expected a string")
    image = ImportedCore(name, core_path, size, pieces, description=str(doc.get("description", "")))
    # Embedded metadata must still match the core: catches a core rewritten in place.
    for i, p in enumerate(pieces):
        if p.data is not None and _pread(core_path, p.offset, p.size) != p.data:
            problem = f"core file {core_path} differs from the embedded bytes at {p.offset:#x}: it changed since import"
            raise fail(f"pieces[{i}]", problem)
    return image


def _pread(path: Path, offset: int, n: int) -> bytes:
    with open(path, "rb") as f:
        return os.pread(f.fileno(), n, offset)


def open_image(name_or_path: str | os.PathLike[str]) -> VmcoreImage | ImportedCore:
    """The bytes of any fixture: a built-in name, a synthesized manifest or an imported one."""
    text = str(name_or_path)
    if text not in builtin_fixture_names() and is_imported_manifest(text):
        return load_imported(text)
    return VmcoreImage(resolve_fixture(text))


def load_any(name_or_path: str | os.PathLike[str]) -> Fixture | ImportedCore:
    """The fixture itself (for ``show``): a Fixture, or an ImportedCore for imported manifests."""
    text = str(name_or_path)
    if text not in builtin_fixture_names() and is_imported_manifest(text):
        return load_imported(text)
    return resolve_fixture(text)


# -- exporting ----------------------------------------------------------------------------


def export_file(
    image: VmcoreImage | ImportedCore,
    path: str | os.PathLike[str],
    *,
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
    mode: int = 0o600,
) -> int:
    """Write *image* to *path* atomically: via ``PATH.partial``, mode 0600, then rename.

    Streams *chunk* bytes at a time and calls *progress* with each count written.
    On any failure the partial file is removed and the OSError propagates, so
    *path* is either the complete image or untouched. Returns the size.
    """
    final = Path(path)
    partial = final.with_name(final.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # umask cannot widen it, but an older partial file may have another mode
        for off in range(0, image.size, chunk):
            data = memoryview(image.read(off, chunk))
            while data:
                n = os.write(fd, data)
                data = data[n:]
                if progress:
                    progress(n)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(partial, final)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return image.size

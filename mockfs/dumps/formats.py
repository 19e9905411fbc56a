"""Readers of the dump formats collectors write, each a list of extents by physical address.

* an ELF core (``makedumpfile -E``, ``cp /proc/vmcore``): PT_LOADs mapped by
  ``p_paddr``; bytes between ``p_filesz`` and ``p_memsz`` are excluded pages;
* makedumpfile's kdump-compressed format (``makedumpfile -c/-l/-p``, signature
  ``KDUMP   ``, ``diskdump_mod.h``): bitmaps say which pages exist and which
  were dumped; a page present but not dumped, or dumped as the shared zero
  page, is excluded;
* makedumpfile's flattened format (``-F``, signature ``makedumpfile``): the
  stream of (offset, data) records is indexed and read in place, then the
  inner ELF or kdump-compressed file is read as above.

The on-disk structures are declared with :class:`~abi_specs.binlayout.Layout`.
"""

from __future__ import annotations

import bisect
import os
import re
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from abi_specs import AbiError, CoreError
from abi_specs.binlayout import Layout
from abi_specs.corehead import read_core_head
from abi_specs.intervals import IntervalSet
from abi_specs.streams import ReadAtStream

DATA, EXCLUDED = "data", "excluded"

# makedumpfile's flattened format (makedumpfile.h): a 4 KiB header, then records.
FLAT_HEADER = Layout("makedumpfile_header", [("u8[16]", "signature"), ("s64", "type"), ("s64", "version")], "big")
FLAT_RECORD = Layout("makedumpfile_data_header", [("s64", "offset"), ("s64", "buf_size")], "big")
FLAT_HEADER_SIZE = 4096

# makedumpfile's kdump-compressed format (diskdump_mod.h), in the byte order of
# the machine that wrote it. utsname is six 65-byte fields; timeval is aligned to 8.
DISK_DUMP_HEADER = Layout("disk_dump_header", [
    ("u8[8]", "signature"), ("s32", "header_version"), ("u8[390]", "utsname"), ("pad[6]", "pad0"),
    ("s64[2]", "timestamp"), ("u32", "status"), ("s32", "block_size"), ("s32", "sub_hdr_size"),
    ("u32", "bitmap_blocks"), ("u32", "max_mapnr"), ("u32", "total_ram_blocks"), ("u32", "device_blocks"),
    ("u32", "written_blocks"), ("u32", "current_cpu"), ("s32", "nr_cpus"),
])  # fmt: skip
KDUMP_SUB_HEADER = Layout("kdump_sub_header", [
    ("u64", "phys_base"), ("s32", "dump_level"), ("s32", "split"), ("u64", "start_pfn"), ("u64", "end_pfn"),
    ("s64", "offset_vmcoreinfo"), ("u64", "size_vmcoreinfo"), ("s64", "offset_note"), ("u64", "size_note"),
    ("s64", "offset_eraseinfo"), ("u64", "size_eraseinfo"), ("u64", "start_pfn_64"), ("u64", "end_pfn_64"),
    ("u64", "max_mapnr_64"),
])  # fmt: skip
PAGE_DESC = Layout("page_desc", [("s64", "offset"), ("u32", "size"), ("u32", "flags"), ("u64", "page_flags")])
# disk_dump_header.status and page_desc.flags compression bits.
DUMP_DH_COMPRESSED_ZLIB, DUMP_DH_COMPRESSED_LZO, DUMP_DH_COMPRESSED_SNAPPY, DUMP_DH_COMPRESSED_ZSTD = 0x1, 0x2, 0x4, 0x20
_OTHER_COMPRESSION = {DUMP_DH_COMPRESSED_LZO: "lzo", DUMP_DH_COMPRESSED_SNAPPY: "snappy", DUMP_DH_COMPRESSED_ZSTD: "zstd"}


class DumpFormatError(AbiError, ValueError):
    """A dump that cannot be read; str() names the file and the problem."""


# -- reading files in place ---------------------------------------------------------------


class Source(Protocol):
    size: int

    def pread(self, offset: int, n: int) -> bytes: ...


class PlainFile:
    """A regular file read with pread."""

    def __init__(self, f: BinaryIO) -> None:
        self.fd = f.fileno()
        self.size = os.fstat(self.fd).st_size

    def pread(self, offset: int, n: int) -> bytes:
        return os.pread(self.fd, n, offset)


class FlatFile:
    """The file a makedumpfile flattened stream describes, read without reassembling it.

    Records of (offset, size, data) end with offset -1. Later records win where
    they overlap, as ``makedumpfile -R`` writes them; holes read as zeros.
    """

    def __init__(self, f: BinaryIO, where: str) -> None:
        self.fd = f.fileno()
        total = os.fstat(self.fd).st_size
        extents: list[tuple[int, int, int, int]] = []  # (start, end, stream position, sequence)
        pos = FLAT_HEADER_SIZE
        while True:
            head = os.pread(self.fd, FLAT_RECORD.size, pos)
            if len(head) < FLAT_RECORD.size:
                raise DumpFormatError(f"{where}: flattened dump ends without its end marker at {pos:#x}")
            record = FLAT_RECORD.unpack(head)
            offset, size = int(record["offset"]), int(record["buf_size"])  # type: ignore[call-overload]
            if offset == -1:
                break
            data_at = pos + FLAT_RECORD.size
            if offset < 0 or size < 0 or data_at + size > total:
                raise DumpFormatError(f"{where}: bad flattened record (offset {offset}, size {size}) at {pos:#x}")
            if size:
                extents.append((offset, offset + size, data_at, len(extents)))
            pos = data_at + size
        extents.sort()
        self.extents = extents
        self.starts = [e[0] for e in extents]
        self.max_len = max((e[1] - e[0] for e in extents), default=0)
        self.size = max((e[1] for e in extents), default=0)

    def pread(self, offset: int, n: int) -> bytes:
        end = min(offset + n, self.size)
        if end <= offset:
            return b""
        lo = bisect.bisect_left(self.starts, offset - self.max_len)
        hi = bisect.bisect_left(self.starts, end)
        hits = [e for e in self.extents[lo:hi] if e[1] > offset]
        if len(hits) == 1 and hits[0][0] <= offset and hits[0][1] >= end:
            s, _, p, _ = hits[0]
            return os.pread(self.fd, end - offset, p + offset - s)
        buf = bytearray(end - offset)
        for s, e, p, _ in sorted(hits, key=lambda h: h[3]):
            a, b = max(s, offset), min(e, end)
            buf[a - offset : b - offset] = os.pread(self.fd, b - a, p + a - s)
        return bytes(buf)


# -- dump formats -------------------------------------------------------------------------


@dataclass(frozen=True)
class DumpExtent:
    """A physical range a dump describes: its data, or pages it excluded."""

    paddr: int
    size: int
    kind: str  # DATA or EXCLUDED
    ref: int = 0  # format-specific: file offset (ELF) or first descriptor index (kdump)


class Dump(Protocol):
    format: str

    def extents(self) -> list[DumpExtent]: ...

    def read(self, ext: DumpExtent, paddr: int, n: int) -> tuple[bytes, list[int]]:
        """Bytes [paddr, paddr+n) of a data extent and the offsets of pages stored as 'zero page'."""
        ...


class ElfDump:
    """PT_LOADs of an ELF core, by physical address."""

    format = "elf"

    def __init__(self, src: Source, where: str) -> None:
        self.src = src
        try:
            head = read_core_head(ReadAtStream(src.pread, src.size), where)
        except CoreError as exc:
            raise DumpFormatError(f"{where}: {exc.problem}") from None
        if head.e_type != "ET_CORE":
            raise DumpFormatError(f"{where}: ELF type is {head.e_type}, not ET_CORE (a core file)")
        self.loads = head.loads
        if not self.loads:
            raise DumpFormatError(f"{where}: no PT_LOAD segments")
        for ld in self.loads:
            if ld.offset + ld.filesz > src.size:
                raise DumpFormatError(f"{where}: PT_LOAD at paddr {ld.paddr:#x} runs past the end of the file (truncated dump?)")

    def extents(self) -> list[DumpExtent]:
        out = []
        for ld in self.loads:
            if ld.filesz:
                out.append(DumpExtent(ld.paddr, ld.filesz, DATA, ld.offset))
            if ld.memsz > ld.filesz:  # memory the dumper chose not to write
                out.append(DumpExtent(ld.paddr + ld.filesz, ld.memsz - ld.filesz, EXCLUDED))
        return out

    def read(self, ext: DumpExtent, paddr: int, n: int) -> tuple[bytes, list[int]]:
        return self.src.pread(ext.ref + paddr - ext.paddr, n), []


def bit_runs(bitmap: bytes, nbits: int) -> IntervalSet:
    """Runs of set bits (bit i is byte i // 8, bit i % 8, LSB first), below *nbits*."""
    runs = IntervalSet()
    # Whole 0xff bytes are runs at once; only mixed bytes are looked at bit by bit.
    for m in re.finditer(rb"\xff+|[^\x00\xff]", bitmap):
        s, e = m.span()
        if bitmap[s] == 0xFF:
            runs.add(s * 8, min(e * 8, nbits))
        else:
            byte = bitmap[s]
            for bit in range(8):
                if byte >> bit & 1 and s * 8 + bit < nbits:
                    runs.add(s * 8 + bit, s * 8 + bit + 1)
    return runs


class KdumpDump:
    """makedumpfile's kdump-compressed format."""

    format = "kdump-compressed"

    def __init__(self, src: Source, where: str) -> None:
        self.src, self.where = src, where
        raw = src.pread(0, DISK_DUMP_HEADER.size)
        if len(raw) < DISK_DUMP_HEADER.size:
            raise DumpFormatError(f"{where}: truncated kdump-compressed header")
        # The header is in the byte order of the machine that ran makedumpfile.
        for order in ("little", "big"):
            header = DISK_DUMP_HEADER.order(order).unpack(raw)
            bs = int(header["block_size"])  # type: ignore[call-overload]
            if bs >= 1024 and bs & (bs - 1) == 0:
                break
        else:
            raise DumpFormatError(f"{where}: kdump-compressed header has no sane block_size")
        self.order = order
        self.bs = bs
        sub = src.pread(bs, KDUMP_SUB_HEADER.size)
        if len(sub) < KDUMP_SUB_HEADER.size:
            raise DumpFormatError(f"{where}: truncated kdump sub-header")
        subh = KDUMP_SUB_HEADER.order(order).unpack(sub)
        if subh["split"]:
            raise DumpFormatError(f"{where}: split dumps (makedumpfile --split) are not supported; join them first")
        self.dump_level = int(subh["dump_level"])  # type: ignore[call-overload]
        version = int(header["header_version"])  # type: ignore[call-overload]
        max_mapnr = int(subh["max_mapnr_64"] if version >= 6 else header["max_mapnr"])  # type: ignore[call-overload]
        bitmap_blocks = int(header["bitmap_blocks"])  # type: ignore[call-overload]
        bitmap_off = (1 + int(header["sub_hdr_size"])) * bs  # type: ignore[call-overload]
        bitmaps = src.pread(bitmap_off, bitmap_blocks * bs)
        if len(bitmaps) != bitmap_blocks * bs:
            raise DumpFormatError(f"{where}: truncated bitmaps")
        half = len(bitmaps) // 2
        self.present = bit_runs(bitmaps[:half], max_mapnr)
        self.dumped = bit_runs(bitmaps[half:], max_mapnr)
        self.desc = PAGE_DESC.order(order)
        self.desc_off = bitmap_off + bitmap_blocks * bs
        # makedumpfile writes the shared zero page first, right after the descriptors.
        self.data_off = self.desc_off + self.desc.size * self.dumped.total()

    def extents(self) -> list[DumpExtent]:
        bs, out, rank = self.bs, [], 0
        for a, b in self.dumped:
            out.append(DumpExtent(a * bs, (b - a) * bs, DATA, rank))
            rank += b - a
        out += [DumpExtent(a * bs, (b - a) * bs, EXCLUDED) for a, b in self.present.difference(self.dumped)]
        return out

    def read(self, ext: DumpExtent, paddr: int, n: int) -> tuple[bytes, list[int]]:
        bs = self.bs
        first = ext.ref + (paddr - ext.paddr) // bs
        count = n // bs
        raw = self.src.pread(self.desc_off + first * self.desc.size, count * self.desc.size)
        descs = [(int(d["offset"]), int(d["size"]), int(d["flags"]))  # type: ignore[call-overload]
                 for d in self.desc.unpack_all(raw)]
        # One read for the window's page data when it is contiguous enough (the usual case).
        spans = [(off, off + size) for off, size, _ in descs if off != self.data_off]
        lo, hi = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else (0, 0)
        blob = self.src.pread(lo, hi - lo) if spans and hi - lo <= 8 * n else None
        pages, zeros = [], []
        for i, (off, size, flags) in enumerate(descs):
            data = blob[off - lo : off - lo + size] if blob is not None and off != self.data_off else self.src.pread(off, size)
            data = self._decompress(data, flags, paddr + i * bs)
            if off == self.data_off and self.dump_level & 1 and data.count(0) == bs:
                zeros.append(i * bs)  # the shared zero page: makedumpfile excluded a zero page
            pages.append(data)
        return b"".join(pages), zeros

    def _decompress(self, data: bytes, flags: int, paddr: int) -> bytes:
        if flags & DUMP_DH_COMPRESSED_ZLIB:
            try:
                data = zlib.decompress(data)
            except zlib.error as exc:
                raise DumpFormatError(f"{self.where}: page {paddr:#x}: bad zlib data: {exc}") from None
        elif flags & (other := sum(_OTHER_COMPRESSION)):
            name = _OTHER_COMPRESSION[flags & other]
            raise DumpFormatError(f"{self.where}: {name}-compressed pages are not supported (use makedumpfile -c, zlib)")
        if len(data) != self.bs:
            raise DumpFormatError(f"{self.where}: page {paddr:#x}: {len(data)} bytes, expected {self.bs}")
        return data


def open_dump(f: BinaryIO, where: str) -> Dump:
    """Recognize the format of the open dump *f* and return its reader."""
    src: Source = PlainFile(f)
    magic = src.pread(0, 16)
    if magic.startswith(b"makedumpfile\0"):
        src = FlatFile(f, where)
        magic = src.pread(0, 16)
        where = f"{where} (flattened)"
    if magic.startswith(b"\x7fELF"):
        dump: Dump = ElfDump(src, where)
    elif magic.startswith(b"KDUMP   "):
        dump = KdumpDump(src, where)
    elif not magic:
        raise DumpFormatError(f"{where}: empty file")
    else:
        raise DumpFormatError(f"{where}: not an ELF core, kdump-compressed or flattened dump (starts {magic[:8]!r})")
    if isinstance(src, FlatFile):
        dump.format = f"flattened {dump.format}"  # type: ignore[misc]
    return dump

"""Compare a saved crash dump with the fixture it was taken from, page by page.

:func:`verify_dump` reads a dump in one of the formats collectors write:

* an ELF core (``makedumpfile -E``, ``cp /proc/vmcore``): PT_LOADs mapped by
  ``p_paddr``; bytes between ``p_filesz`` and ``p_memsz`` are excluded pages;
* makedumpfile's kdump-compressed format (``makedumpfile -c/-l/-p``, signature
  ``KDUMP   ``): bitmaps say which pages exist and which were dumped; a page
  present but not dumped, or dumped as the shared zero page, is excluded;
* makedumpfile's flattened format (``-F``, signature ``makedumpfile``): the
  stream of (offset, data) records is indexed and read in place, then the
  inner ELF or kdump-compressed file is read as above.

Each physical page of the fixture's RAM ends up in exactly one class:
identical, different, misplaced (a pattern page of another address: a collector
that wrote a page to the wrong place), excluded, or missing. Dump pages outside
the fixture's RAM are counted as extra. Comparison runs in 1 MiB windows with a
bytes equality per window first, so a good dump costs two memory-speed passes.
"""

from __future__ import annotations

import bisect
import os
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .image import VmcoreImage
from .streams import ReadAtStream

WINDOW = 1 << 20
#: How many problem pages a report lists by address.
MAX_PROBLEMS = 10

DATA, EXCLUDED = "data", "excluded"
CLASSES = ("identical", "different", "misplaced", "missing", "excluded", "extra")


class DumpFormatError(ValueError):
    """A dump that cannot be read; str() names the file and the problem."""


@dataclass(frozen=True)
class PageProblem:
    """One page that is not identical: its physical address, class and what was seen."""

    paddr: int
    kind: str
    detail: str = ""


@dataclass
class VerifyReport:
    """Page counts per class, the first problems, and what was compared."""

    dump: str
    format: str
    page_size: int
    identical: int = 0
    different: int = 0
    misplaced: int = 0
    missing: int = 0
    excluded: int = 0
    extra: int = 0
    problems: list[PageProblem] = field(default_factory=list)
    #: [start, end) physical ranges of the excluded pages (tests check exactly which).
    excluded_ranges: list[tuple[int, int]] = field(default_factory=list)

    def ok(self, complete: bool = False) -> bool:
        """True when nothing differs, is misplaced or extra (and, if *complete*, nothing is missing)."""
        bad = self.different + self.misplaced + self.extra
        return bad == 0 and (not complete or self.missing == 0)

    def note(self, paddr: int, kind: str, detail: str = "") -> None:
        """Count a problem page and remember it if it is among the first few."""
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(PageProblem(paddr, kind, detail))

    def excluded_pages(self) -> list[int]:
        """Physical address of every excluded page, ascending."""
        return [p for a, b in self.excluded_ranges for p in range(a, b, self.page_size)]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "dump": self.dump,
            "format": self.format,
            "page_size": self.page_size,
            **{c: getattr(self, c) for c in CLASSES},
            "problems": [{"paddr": p.paddr, "kind": p.kind, "detail": p.detail} for p in self.problems],
        }


# -- reading files in place ---------------------------------------------------------------


class _Source(Protocol):
    size: int

    def pread(self, offset: int, n: int) -> bytes: ...


class _PlainFile:
    """A regular file read with pread."""

    def __init__(self, f: BinaryIO) -> None:
        self.fd = f.fileno()
        self.size = os.fstat(self.fd).st_size

    def pread(self, offset: int, n: int) -> bytes:
        return os.pread(self.fd, n, offset)


class _FlatFile:
    """The file a makedumpfile flattened stream describes, read without reassembling it.

    The stream is a 4 KiB header (``makedumpfile``, type, version; big-endian),
    then records of (int64 offset, int64 size, data), ending with offset -1.
    Later records win where they overlap, as ``makedumpfile -R`` writes them;
    holes read as zeros.
    """

    HEADER = 4096

    def __init__(self, f: BinaryIO, where: str) -> None:
        self.fd = f.fileno()
        total = os.fstat(self.fd).st_size
        extents: list[tuple[int, int, int, int]] = []  # (start, end, stream position, sequence)
        pos = self.HEADER
        while True:
            head = os.pread(self.fd, 16, pos)
            if len(head) < 16:
                raise DumpFormatError(f"{where}: flattened dump ends without its end marker at {pos:#x}")
            offset, size = struct.unpack(">qq", head)
            if offset == -1:
                break
            if offset < 0 or size < 0 or pos + 16 + size > total:
                raise DumpFormatError(f"{where}: bad flattened record (offset {offset}, size {size}) at {pos:#x}")
            if size:
                extents.append((offset, offset + size, pos + 16, len(extents)))
            pos += 16 + size
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
class Segment:
    """A physical range a dump describes: its data, or pages it excluded."""

    paddr: int
    size: int
    kind: str  # DATA or EXCLUDED
    ref: int = 0  # format-specific: file offset (ELF) or first descriptor index (kdump)


class _Dump(Protocol):
    format: str

    def segments(self) -> list[Segment]: ...

    def read(self, seg: Segment, paddr: int, n: int) -> tuple[bytes, list[int]]:
        """Bytes [paddr, paddr+n) of a data segment and the offsets of pages stored as 'zero page'."""
        ...


class _ElfDump:
    """PT_LOADs of an ELF core, by physical address."""

    format = "elf"

    def __init__(self, src: _Source, where: str) -> None:
        self.src = src
        try:
            elf = ELFFile(ReadAtStream(src.pread, src.size))
            headers = [seg.header for seg in elf.iter_segments()]
        except (ELFError, struct.error, ValueError) as exc:
            raise DumpFormatError(f"{where}: unreadable ELF headers: {exc}") from None
        if elf.header.e_type != "ET_CORE":
            raise DumpFormatError(f"{where}: ELF type is {elf.header.e_type}, not ET_CORE (a core file)")
        self.loads = [h for h in headers if h.p_type == "PT_LOAD"]
        if not self.loads:
            raise DumpFormatError(f"{where}: no PT_LOAD segments")
        for h in self.loads:
            if h.p_offset + h.p_filesz > src.size:
                raise DumpFormatError(f"{where}: PT_LOAD at paddr {h.p_paddr:#x} runs past the end of the file (truncated dump?)")

    def segments(self) -> list[Segment]:
        out = []
        for h in self.loads:
            if h.p_filesz:
                out.append(Segment(h.p_paddr, h.p_filesz, DATA, h.p_offset))
            if h.p_memsz > h.p_filesz:  # memory the dumper chose not to write
                out.append(Segment(h.p_paddr + h.p_filesz, h.p_memsz - h.p_filesz, EXCLUDED))
        return out

    def read(self, seg: Segment, paddr: int, n: int) -> tuple[bytes, list[int]]:
        return self.src.pread(seg.ref + paddr - seg.paddr, n), []


def bit_runs(bitmap: bytes, nbits: int) -> list[tuple[int, int]]:
    """[start, end) runs of set bits (bit i is byte i // 8, bit i % 8, LSB first), below *nbits*."""
    runs: list[tuple[int, int]] = []

    def add(a: int, b: int) -> None:
        b = min(b, nbits)
        if a >= b:
            return
        if runs and runs[-1][1] == a:
            runs[-1] = (runs[-1][0], b)
        else:
            runs.append((a, b))

    # Whole 0xff bytes are runs at once; only mixed bytes are looked at bit by bit.
    for m in re.finditer(rb"\xff+|[^\x00\xff]", bitmap):
        s, e = m.span()
        if bitmap[s] == 0xFF:
            add(s * 8, e * 8)
        else:
            byte = bitmap[s]
            for bit in range(8):
                if byte >> bit & 1:
                    add(s * 8 + bit, s * 8 + bit + 1)
    return runs


def _subtract(runs: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Parts of sorted disjoint *runs* not in sorted disjoint *holes*."""
    out, j = [], 0
    for a, b in runs:
        while j < len(holes) and holes[j][1] <= a:
            j += 1
        k, cur = j, a
        while k < len(holes) and holes[k][0] < b:
            if holes[k][0] > cur:
                out.append((cur, holes[k][0]))
            cur = max(cur, holes[k][1])
            k += 1
        if cur < b:
            out.append((cur, b))
    return out


class _KdumpDump:
    """makedumpfile's kdump-compressed format (``diskdump_mod.h``)."""

    format = "kdump-compressed"
    # disk_dump_header.status compression flags
    ZLIB, LZO, SNAPPY, ZSTD = 0x1, 0x2, 0x4, 0x20
    DESC = 24  # page_desc: int64 offset, uint32 size, uint32 flags, uint64 page_flags

    def __init__(self, src: _Source, where: str) -> None:
        self.src, self.where = src, where
        head = src.pread(0, 464)
        if len(head) < 464:
            raise DumpFormatError(f"{where}: truncated kdump-compressed header")
        # The header is in the byte order of the machine that ran makedumpfile.
        for order in "<>":
            bs = struct.unpack_from(order + "i", head, 428)[0]
            if bs >= 1024 and bs & (bs - 1) == 0:
                break
        else:
            raise DumpFormatError(f"{where}: kdump-compressed header has no sane block_size")
        self.o = order
        version = struct.unpack_from(order + "i", head, 8)[0]
        _status, bs, sub_blocks, bitmap_blocks, max_mapnr32 = struct.unpack_from(order + "IiiII", head, 424)
        self.bs = bs
        sub = src.pread(bs, 104)
        if len(sub) < 104:
            raise DumpFormatError(f"{where}: truncated kdump sub-header")
        _phys_base, self.dump_level, split = struct.unpack_from(order + "Qii", sub, 0)
        if split:
            raise DumpFormatError(f"{where}: split dumps (makedumpfile --split) are not supported; join them first")
        max_mapnr = struct.unpack_from(order + "Q", sub, 96)[0] if version >= 6 else max_mapnr32
        bitmap_off = (1 + sub_blocks) * bs
        bitmaps = src.pread(bitmap_off, bitmap_blocks * bs)
        if len(bitmaps) != bitmap_blocks * bs:
            raise DumpFormatError(f"{where}: truncated bitmaps")
        half = len(bitmaps) // 2
        self.present = bit_runs(bitmaps[:half], max_mapnr)
        self.dumped = bit_runs(bitmaps[half:], max_mapnr)
        self.desc_off = bitmap_off + bitmap_blocks * bs
        ndumped = sum(b - a for a, b in self.dumped)
        # makedumpfile writes the shared zero page first, right after the descriptors.
        self.data_off = self.desc_off + self.DESC * ndumped

    def segments(self) -> list[Segment]:
        bs, out, rank = self.bs, [], 0
        for a, b in self.dumped:
            out.append(Segment(a * bs, (b - a) * bs, DATA, rank))
            rank += b - a
        out += [Segment(a * bs, (b - a) * bs, EXCLUDED) for a, b in _subtract(self.present, self.dumped)]
        return out

    def read(self, seg: Segment, paddr: int, n: int) -> tuple[bytes, list[int]]:
        bs = self.bs
        first = seg.ref + (paddr - seg.paddr) // bs
        count = n // bs
        raw = self.src.pread(self.desc_off + first * self.DESC, count * self.DESC)
        descs = [struct.unpack_from(self.o + "qII", raw, i * self.DESC) for i in range(count)]
        # One read for the window's page data when it is contiguous enough (the usual case).
        spans = [(off, off + size) for off, size, _ in descs if off != self.data_off]
        lo, hi = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else (0, 0)
        blob = self.src.pread(lo, hi - lo) if spans and hi - lo <= 8 * n else None
        pages, zeros = [], []
        for i, (off, size, flags) in enumerate(descs):
            data = blob[off - lo : off - lo + size] if blob is not None and off != self.data_off else self.src.pread(off, size)
            if flags & self.ZLIB:
                try:
                    data = zlib.decompress(data)
                except zlib.error as exc:
                    raise DumpFormatError(f"{self.where}: page {paddr + i * bs:#x}: bad zlib data: {exc}") from None
            elif flags & (self.LZO | self.SNAPPY | self.ZSTD):
                name = {self.LZO: "lzo", self.SNAPPY: "snappy", self.ZSTD: "zstd"}[flags & (self.LZO | self.SNAPPY | self.ZSTD)]
                raise DumpFormatError(f"{self.where}: {name}-compressed pages are not supported (use makedumpfile -c, zlib)")
            if len(data) != bs:
                raise DumpFormatError(f"{self.where}: page {paddr + i * bs:#x}: {len(data)} bytes, expected {bs}")
            if off == self.data_off and self.dump_level & 1 and data.count(0) == bs:
                zeros.append(i * bs)  # the shared zero page: makedumpfile excluded a zero page
            pages.append(data)
        return b"".join(pages), zeros


def open_dump(f: BinaryIO, where: str) -> _Dump:
    """Recognize the format of the open dump *f* and return its reader."""
    src: _Source = _PlainFile(f)
    magic = src.pread(0, 16)
    if magic.startswith(b"makedumpfile\0"):
        src = _FlatFile(f, where)
        magic = src.pread(0, 16)
        where = f"{where} (flattened)"
    if magic.startswith(b"\x7fELF"):
        dump: _Dump = _ElfDump(src, where)
    elif magic.startswith(b"KDUMP   "):
        dump = _KdumpDump(src, where)
    elif not magic:
        raise DumpFormatError(f"{where}: empty file")
    else:
        raise DumpFormatError(f"{where}: not an ELF core, kdump-compressed or flattened dump (starts {magic[:8]!r})")
    if isinstance(src, _FlatFile):
        dump.format = f"flattened {dump.format}"  # type: ignore[misc]
    return dump


# -- comparison ---------------------------------------------------------------------------


def _union(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif a < b:
            out.append((a, b))
    return out


def _intersect(ranges: list[tuple[int, int]], with_: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return _subtract(ranges, _subtract(ranges, with_))


def _pages(ranges: list[tuple[int, int]], ps: int) -> int:
    return sum((b - a) // ps for a, b in ranges)


def verify_dump(
    image: VmcoreImage,
    dump_path: str | os.PathLike[str],
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Classify every RAM page of *image*'s fixture by what the dump at *dump_path* holds.

    *on_total* is called once with the number of bytes to compare, *progress*
    with each compared count. Raises DumpFormatError or OSError for unreadable dumps.
    """
    where = str(dump_path)
    ps = image.page_size
    ram = [(s, s + z) for s, z in image.fixture.ram]
    with open(dump_path, "rb") as f:
        dump = open_dump(f, where)
        if isinstance(dump, _KdumpDump) and dump.bs != ps:
            raise DumpFormatError(f"{where}: block size {dump.bs} differs from the fixture's page size {ps}")
        report = VerifyReport(where, dump.format, ps)
        segs = dump.segments()

        # Page-granular coverage; where PT_LOADs overlap (the x86_64 kernel-text one
        # repeats part of the direct map) each physical page is compared once.
        covered: list[tuple[int, int]] = []
        work: list[tuple[Segment, int, int]] = []
        reach = 0  # end of everything covered so far
        for seg in sorted((s for s in segs if s.kind == DATA), key=lambda s: (s.paddr, -s.size)):
            a = -(-seg.paddr // ps) * ps
            b = (seg.paddr + seg.size) // ps * ps
            if a >= b:
                continue
            # Segments come in start order, so what is covered at or above a is [a, reach).
            if b > reach:
                work += [(seg, x, y) for x, y in _intersect([(max(a, reach), b)], ram)]
            covered.append((a, b))
            reach = max(reach, b)
        covered = _union(covered)
        excluded = _subtract(_union([(s.paddr // ps * ps, -(-(s.paddr + s.size) // ps) * ps)
                                     for s in segs if s.kind == EXCLUDED]), covered)  # fmt: skip
        report.extra = _pages(_subtract(covered, ram), ps)
        for a, b in _intersect(excluded, ram):
            report.excluded += (b - a) // ps
            report.excluded_ranges.append((a, b))
        report.missing = _pages(_subtract(ram, _union([*covered, *excluded])), ps)
        if report.missing:
            first = _subtract(ram, _union([*covered, *excluded]))[:3]  # leave room for worse problems
            report.problems += [PageProblem(a, "missing", f"{(b - a) // ps} pages from here") for a, b in first]

        if on_total:
            on_total(sum(y - x for _, x, y in work))
        zero_page = bytes(ps)
        for seg, x, y in sorted(work, key=lambda w: w[1]):
            for w in range(x, y, WINDOW):
                n = min(WINDOW, y - w)
                got, zeros = dump.read(seg, w, n)
                want = image.phys_read(w, n)
                if len(got) != n:
                    raise DumpFormatError(f"{where}: short read at physical {w:#x} (truncated dump?)")
                if got == want and not zeros:
                    report.identical += n // ps
                else:
                    zero_set = set(zeros)
                    for i in range(0, n, ps):
                        page, ref = got[i : i + ps], want[i : i + ps]
                        if i in zero_set:
                            if ref == zero_page:
                                report.excluded += 1
                                report.excluded_ranges.append((w + i, w + i + ps))
                            else:
                                report.note(w + i, "different", "dumped as a zero page; the fixture's is not zero")
                        elif page == ref:
                            report.identical += 1
                        else:
                            origin = image.page_origin(page)
                            if origin is not None and origin != w + i:
                                report.note(w + i, "misplaced", f"holds the page of {origin:#x}")
                            else:
                                report.note(w + i, "different", _first_diff(page, ref))
                if progress:
                    progress(n)
    report.problems.sort(key=lambda p: (p.paddr, p.kind))
    report.excluded_ranges = _union(report.excluded_ranges)
    return report


def _first_diff(got: bytes, want: bytes) -> str:
    i = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
    return f"first difference at +{i:#x}: {got[i]:#04x}, expected {want[i]:#04x}"

"""A FLATMEM ``mem_map``: one struct page per page frame, generated on demand.

The array is as large as RAM / page size * 64 bytes (16 GiB for 1 TiB of 4 KiB
pages), so it is never stored: any byte range is computed from a default entry
and the few entries of planted pages. The layout follows Linux 5.x x86_64:
flags 0, lru 8, mapping 24, index 32, private 40, _mapcount 48, _refcount 52.
"""

from __future__ import annotations

import bisect
import struct

PAGE_STRUCT_SIZE = 64
OFFSETS = {"flags": 0, "lru": 8, "mapping": 24, "index": 32, "private": 40, "_mapcount": 48, "_refcount": 52}
# Page flag bit numbers (include/linux/page-flags.h, 5.x, no special config).
PG_BITS = {
    "PG_locked": 0, "PG_referenced": 1, "PG_uptodate": 2, "PG_dirty": 3, "PG_lru": 4,
    "PG_active": 5, "PG_slab": 9, "PG_swapcache": 10, "PG_reserved": 12, "PG_private": 13,
    "PG_head": 16, "PG_swapbacked": 19, "PG_hwpoison": 22,
}  # fmt: skip
PAGE_BUDDY_MAPCOUNT_VALUE = -128
PAGE_MAPPING_ANON = 1


class MemMap:
    """Generates the bytes of a FLATMEM mem_map for *max_pfn* frames."""

    def __init__(self, max_pfn: int, byteorder: str) -> None:
        self.max_pfn = max_pfn
        self.size = max_pfn * PAGE_STRUCT_SIZE
        self._order = "<" if byteorder == "little" else ">"
        self._default = self.entry()
        self._special: dict[int, bytes] = {}
        self._sorted: list[int] = []

    def entry(self, flags: int = 0, mapping: int = 0, private: int = 0, mapcount: int = -1, refcount: int = 1) -> bytes:
        """One struct page."""
        buf = bytearray(PAGE_STRUCT_SIZE)
        o = self._order
        struct.pack_into(o + "Q", buf, OFFSETS["flags"], flags)
        struct.pack_into(o + "Q", buf, OFFSETS["mapping"], mapping)
        struct.pack_into(o + "Q", buf, OFFSETS["private"], private)
        struct.pack_into(o + "i", buf, OFFSETS["_mapcount"], mapcount)
        struct.pack_into(o + "i", buf, OFFSETS["_refcount"], refcount)
        return bytes(buf)

    def set(self, pfn: int, entry: bytes) -> None:
        """Give frame *pfn* its own struct page."""
        self._special[pfn] = entry
        self._sorted = sorted(self._special)

    def read(self, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length) of the array (clipped to its size)."""
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        first = offset // PAGE_STRUCT_SIZE
        last = -(-end // PAGE_STRUCT_SIZE)
        lo = bisect.bisect_left(self._sorted, first)
        hi = bisect.bisect_left(self._sorted, last)
        skip = offset - first * PAGE_STRUCT_SIZE
        if lo == hi:  # no planted entries: a plain repetition (the common case)
            data = self._default * (last - first)
            return data if skip == 0 and len(data) == end - offset else data[skip : skip + end - offset]
        buf = bytearray(self._default * (last - first))
        for pfn in self._sorted[lo:hi]:
            at = (pfn - first) * PAGE_STRUCT_SIZE
            buf[at : at + PAGE_STRUCT_SIZE] = self._special[pfn]
        return bytes(buf[skip : skip + end - offset])

"""The self-describing default content of memory pages.

Every page is one 16-byte block repeated: an 8-byte magic derived from the
fixture's seed, then the page's physical address, both in the machine's byte
order. Any whole page therefore proves where it came from, a page assembled
from two different pages (a misplaced read) fails the check, and no pattern page
is ever all zero. Generation is a bytes repetition per page, which CPython runs
at memory speed.
"""

from __future__ import annotations

import struct

_MAGIC_BASE = 0x4D4F434B50414745  # "MOCKPAGE"
BLOCK = 16


def pattern_magic(seed: int) -> int:
    """The per-fixture magic word (never zero, so a block is never zero)."""
    return (_MAGIC_BASE ^ seed) or _MAGIC_BASE


class PagePattern:
    """Generates and decodes the page pattern of one fixture."""

    def __init__(self, page_size: int, seed: int, byteorder: str) -> None:
        self.page_size = page_size
        self.byteorder = byteorder
        order = "<" if byteorder == "little" else ">"
        self._q = struct.Struct(order + "Q")
        self._magic = self._q.pack(pattern_magic(seed))
        self._block = struct.Struct(order + "8sQ")  # one call per page: a fifth less time per MiB than two
        self._reps = page_size // BLOCK

    def page(self, paddr: int) -> bytes:
        """The full pattern page starting at page-aligned *paddr*."""
        return self._block.pack(self._magic, paddr) * self._reps

    def fill(self, paddr: int, length: int) -> bytes:
        """Pattern bytes for physical [paddr, paddr + length)."""
        if length <= 0:
            return b""
        ps = self.page_size
        first = paddr - paddr % ps
        end = paddr + length
        magic, block, reps = self._magic, self._block.pack, self._reps
        data = b"".join([block(magic, p) * reps for p in range(first, end, ps)])
        skip = paddr - first
        if skip == 0 and len(data) == length:
            return data
        return data[skip : skip + length]

    def origin(self, page: bytes) -> int | None:
        """Physical address a whole pattern page came from, or None if it is not one."""
        if len(page) != self.page_size:
            return None
        block = bytes(page[:BLOCK])
        if block[:8] != self._magic or page != block * self._reps:
            return None
        paddr = self._q.unpack(block[8:])[0]
        return paddr if paddr % self.page_size == 0 else None


def page_origin(page: bytes, *, seed: int, byteorder: str) -> int | None:
    """Decode the physical address of a whole pattern *page* (None: not a pattern page)."""
    return PagePattern(len(page), seed, byteorder).origin(page) if len(page) % BLOCK == 0 and page else None

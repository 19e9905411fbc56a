"""The crashed machine's memory as the capture kernel holds it, and what was given back.

/proc/vmcore's file offsets map to *source* addresses: where the capture
machine holds each byte of the crashed kernel. On phyp the hypervisor copied
the low memory to the scratch area before the reboot
(:func:`abi_specs.phyp.saved_at`); everything else is where it was. Memory
released by the collector is reused at once: it reads back as what its new
owner wrote (``REUSED_FILL``), never the saved data.
"""

from __future__ import annotations

from abi_specs.intervals import IntervalSet
from abi_specs.phyp import PhypLayout, saved_at
from mockfs.machine import VmcoreImage

#: What a page given back to the capture kernel holds when read again.
REUSED_FILL = 0xA5


class CrashedMemory:
    """File offsets of a vmcore image mapped to source addresses, and the freed parts."""

    def __init__(self, image: VmcoreImage, phyp: PhypLayout | None) -> None:
        self.image = image
        self.phyp = phyp
        self.freed = IntervalSet()  # source bytes given back to the capture kernel
        self._loads = [(s.offset, s.offset + s.size, s.paddr) for s in image.layout.loads]

    def source_of(self, paddr: int) -> int:
        """Where the capture machine holds the crashed kernel's physical byte *paddr*."""
        if self.phyp is None:
            return paddr
        return saved_at(paddr, self.phyp.rmr_copy_addr, self.phyp.rmr_copy_len)

    def spans(self, offset: int, end: int) -> list[tuple[int, int, int]]:
        """(file offset, file end, source address) of the memory inside ``[offset, end)``."""
        rmr = self.phyp.rmr_copy_len if self.phyp is not None else 0
        out = []
        for lo, hi, paddr in self._loads:
            a, b = max(lo, offset), min(hi, end)
            if a >= b:
                continue
            p = paddr + a - lo
            # Split where the phyp RMR copy ends: the two halves live far apart.
            if p < rmr < p + (b - a):
                cut = a + rmr - p
                out.append((a, cut, self.source_of(p)))
                out.append((cut, b, self.source_of(rmr)))
            else:
                out.append((a, b, self.source_of(p)))
        return out

    def overwrite_freed(self, data: bytes, offset: int,
                        spans: list[tuple[int, int, int]]) -> tuple[bytes, list[tuple[int, int, int]]]:
        """*data* (read at *offset*) with freed memory reused, and the (source, length, file offset) reused."""
        if not self.freed:
            return data, []
        buf: bytearray | None = None
        hits = []
        for a, b, src in spans:
            for fs, fe in self.freed.overlap(src, src + b - a):
                if buf is None:
                    buf = bytearray(data)
                lo = a - offset + fs - src
                buf[lo:lo + fe - fs] = bytes([REUSED_FILL]) * (fe - fs)
                hits.append((fs, fe - fs, a + fs - src))
        return (data if buf is None else bytes(buf)), hits

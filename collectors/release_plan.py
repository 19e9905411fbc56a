"""Which phyp dump memory may be given back, given how much of the core is saved.

/proc/vmcore is saved front to back, so "saved" is one number: the first
file offset not yet durably written. Memory is named by *source* address, the
physical address in the capture kernel that holds the bytes: a PT_LOAD's
physical address, except that the crashed kernel's low memory (vmcore
physical ``0 .. rmr_len``) sits in the hypervisor's RMR copy at ``rmr_addr``.
One source page can back several file offsets (the RMR copy is also visible
at its own physical address), so a piece of memory may be released only when
every file byte it backs is saved.

The kernel frees more than it is asked to (``abi_specs.phyp``): it rounds the
start down to a page, and frees one page past the requested length
(the inclusive end page). :func:`kernel_window` is that worst case, and a
release is allowed only when all of it is saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from abi_specs.corehead import CoreLoad
from abi_specs.phyp import PhypAreas, ReleaseCounters, release, saved_at


@dataclass(frozen=True)
class SourceSpan:
    """File bytes ``[file_start, file_end)`` hold source bytes from ``source`` on."""

    file_start: int
    file_end: int
    source: int

    @property
    def source_end(self) -> int:
        return self.source + self.file_end - self.file_start


def source_spans(loads: Sequence[CoreLoad], rmr: tuple[int, int] | None) -> list[SourceSpan]:
    """Map file offsets to source addresses; *rmr* is (copy address, copied length)."""
    out = []
    for ld in loads:
        off, end, paddr = ld.offset, ld.offset + ld.filesz, ld.paddr
        if rmr is not None and paddr < rmr[1]:
            cut = min(end, off + rmr[1] - paddr)
            out.append(SourceSpan(off, cut, saved_at(paddr, *rmr)))
            off, paddr = cut, rmr[1]
        if off < end:
            out.append(SourceSpan(off, end, paddr))
    return out


#: An area that clamps nothing: only the kernel's page walk matters here.
_UNCLAMPED = 1 << 63


def kernel_window(start: int, length: int, page_size: int) -> tuple[int, int]:
    """The source bytes a write of ``start length`` may free, at most.

    Asks the spec's model of the kernel (:func:`abi_specs.phyp.release`) which
    page frames the write walks, rather than restating its rounding here.
    """
    areas = PhypAreas(page_size, 0, _UNCLAMPED, 0, 0)
    effect = release(areas, ReleaseCounters(), start, length)
    return effect.first_pfn * page_size, (effect.last_pfn + 1) * page_size


@dataclass
class Area:
    """One release_region range and how much of it (a prefix) was released."""

    start: int
    end: int
    released_to: int  # the first address not yet released


class ReleasePlan:
    """Hands out the largest safe prefix of each range as the saved prefix grows."""

    def __init__(self, ranges: Sequence[tuple[int, int]], spans: Sequence[SourceSpan], page_size: int) -> None:
        self.page_size = page_size
        self.spans = list(spans)
        self.areas: list[Area] = []
        # The kernel never lists overlapping ranges; if it ever did, releasing the
        # overlap twice would free pages twice, so each byte belongs to the first range.
        covered_to = 0
        for start, length in sorted((s, n) for s, n in ranges if n > 0):
            start = max(start, covered_to)
            end = max(start, start + length)
            if start < end:
                self.areas.append(Area(start, end, start))
            covered_to = max(covered_to, end)

    def restore(self, released: Sequence[Sequence[int]]) -> None:
        """Mark the (start, length) pieces of an earlier run as released."""
        for start, length in released:
            self.mark_released(start, length)

    def mark_released(self, start: int, length: int) -> None:
        for area in self.areas:
            if area.start <= start < area.end:
                area.released_to = max(area.released_to, min(area.end, start + length))
                return
        raise ValueError(f"release {start:#x}+{length:#x} is in no release_region range")

    def required_saved(self, start: int, length: int) -> int:
        """How much of the file must be saved before writing ``start length``."""
        lo, hi = kernel_window(start, length, self.page_size)
        need = 0
        for seg in self.spans:
            if seg.source < hi and lo < seg.source_end:
                need = max(need, seg.file_start + min(hi, seg.source_end) - seg.source)
        return need

    def releasable(self, saved: int) -> list[tuple[int, int]]:
        """(start, length) writes that are safe now: one per range at most."""
        out = []
        ps = self.page_size
        for area in self.areas:
            a = area.released_to
            if a >= area.end:
                continue
            # Candidate ends: page boundaries inside the range, then the range end
            # (kept as the kernel reported it, even when unaligned).
            first = a - a % ps + ps
            count = max(0, (area.end - 1 - first) // ps + 1) if first < area.end else 0

            def end_of(k: int, first: int = first, count: int = count, area: Area = area) -> int:
                return first + k * ps if k < count else area.end

            lo, hi = -1, count  # binary search for the last safe candidate index
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self.required_saved(a, end_of(mid) - a) <= saved:
                    lo = mid
                else:
                    hi = mid - 1
            if lo >= 0:
                out.append((a, end_of(lo) - a))
        return out

    @property
    def done(self) -> bool:
        return all(area.released_to >= area.end for area in self.areas)

    def held(self) -> list[tuple[int, int]]:
        """(start, length) of what is still held."""
        return [(a.released_to, a.end - a.released_to) for a in self.areas if a.released_to < a.end]

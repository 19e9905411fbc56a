"""A set of half-open integer intervals, kept merged and sorted: the one interval type.

The mock records which bytes a collector read, which ranges it asked to
release and which pages the kernel freed; dump verification works out which
pages a dump covers, excludes or misses; the importer merges the byte ranges
it embeds. All are a handful of intervals, so a sorted list with bisect is plenty.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator


class IntervalSet:
    """Half-open intervals ``[start, end)``, merged when they touch."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges:
            self.add(start, end)

    def __repr__(self) -> str:
        return f"IntervalSet({list(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IntervalSet) and list(self) == list(other)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends))

    def __len__(self) -> int:
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def total(self) -> int:
        """The number of integers covered."""
        return sum(e - s for s, e in self)

    def add(self, start: int, end: int) -> None:
        """Cover ``[start, end)``."""
        if start >= end:
            return
        i = bisect.bisect_left(self._ends, start)
        j = bisect.bisect_right(self._starts, end)
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def overlap(self, start: int, end: int) -> list[tuple[int, int]]:
        """The covered parts of ``[start, end)``."""
        if start >= end or not self._starts:
            return []
        i = bisect.bisect_right(self._ends, start)
        out = []
        while i < len(self._starts) and self._starts[i] < end:
            out.append((max(start, self._starts[i]), min(end, self._ends[i])))
            i += 1
        return out

    def gaps(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` not covered."""
        out = []
        at = start
        for s, e in self.overlap(start, end):
            if s > at:
                out.append((at, s))
            at = e
        if at < end:
            out.append((at, end))
        return out

    def covers(self, start: int, end: int) -> bool:
        """Whether all of ``[start, end)`` is covered."""
        return not self.gaps(start, end)

    def difference(self, other: IntervalSet) -> IntervalSet:
        """What this set covers and *other* does not."""
        out = IntervalSet()
        for s, e in self:
            for a, b in other.gaps(s, e):
                out.add(a, b)
        return out

    def intersection(self, other: IntervalSet) -> IntervalSet:
        """What both sets cover."""
        out = IntervalSet()
        for s, e in self:
            for a, b in other.overlap(s, e):
                out.add(a, b)
        return out

    def union(self, other: IntervalSet) -> IntervalSet:
        """What either set covers."""
        return IntervalSet([*self, *other])

    def count(self, unit: int) -> int:
        """How many whole *unit*-sized blocks the intervals hold (for page-aligned sets)."""
        return sum((e - s) // unit for s, e in self)

"""Compare a saved crash dump with the fixture it was taken from, page by page.

:func:`verify_dump` reads a dump in any format :mod:`mockfs.dumps.formats`
knows. Each physical page of the fixture's RAM ends up in exactly one class:
identical, different, misplaced (a pattern page of another address: a collector
that wrote a page to the wrong place), excluded, or missing. Dump pages outside
the fixture's RAM are counted as extra. Comparison runs in 1 MiB windows with a
bytes equality per window first, so a good dump costs two memory-speed passes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from abi_specs.intervals import IntervalSet
from abi_specs.units import plural
from mockfs.machine import VmcoreImage

from .formats import DATA, EXCLUDED, DumpExtent, DumpFormatError, open_dump

WINDOW = 1 << 20
#: How many problem pages a report lists by address.
MAX_PROBLEMS = 10

CLASSES = ("identical", "different", "misplaced", "missing", "excluded", "extra")


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


def reuse_window_buffers() -> None:
    """Make this process reuse the buffers a verification reads and builds, a window at a time.

    By default glibc maps each window's 1 MiB buffers afresh and unmaps them
    when freed, so their pages fault in again for every window: two thirds of a
    verification's time (a 576 MiB dump: 1.57 s, 0.47 s with reuse). The
    setting is the whole process's allocator's, so the commands that verify
    call this, not :func:`verify_dump` (a library caller keeps its own).
    """
    from mockfs.sandbox.syscalls import keep_heap_memory

    keep_heap_memory()


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
    ram = IntervalSet((s, s + z) for s, z in image.fixture.ram)
    with open(dump_path, "rb") as f:
        dump = open_dump(f, where)
        if getattr(dump, "bs", ps) != ps:
            raise DumpFormatError(f"{where}: block size {dump.bs} differs from the fixture's page size {ps}")  # type: ignore[attr-defined]
        report = VerifyReport(where, dump.format, ps)
        extents = dump.extents()
        covered, work = _coverage(extents, ram, ps)
        excluded = IntervalSet((e.paddr // ps * ps, -(-(e.paddr + e.size) // ps) * ps)
                               for e in extents if e.kind == EXCLUDED).difference(covered)  # fmt: skip
        report.extra = covered.difference(ram).count(ps)
        for a, b in excluded.intersection(ram):
            report.excluded += (b - a) // ps
            report.excluded_ranges.append((a, b))
        missing = ram.difference(covered.union(excluded))
        report.missing = missing.count(ps)
        # Only the first few ranges by address: leave room for worse problems.
        report.problems += [PageProblem(a, "missing", f"{plural((b - a) // ps, 'page')} from here") for a, b in list(missing)[:3]]

        if on_total:
            on_total(sum(y - x for _, x, y in work))
        for ext, x, y in sorted(work, key=lambda w: w[1]):
            for w in range(x, y, WINDOW):
                n = min(WINDOW, y - w)
                got, zeros = dump.read(ext, w, n)
                if len(got) != n:
                    raise DumpFormatError(f"{where}: short read at physical {w:#x} (truncated dump?)")
                _compare(report, image, w, got, zeros)
                if progress:
                    progress(n)
    report.problems.sort(key=lambda p: (p.paddr, p.kind))
    report.excluded_ranges = list(IntervalSet(report.excluded_ranges))
    return report


def _compare(report: VerifyReport, image: VmcoreImage, paddr: int, got: bytes, zeros: list[int]) -> None:
    """Classify the pages of one window of the dump (*got*, from physical *paddr*)."""
    want = image.phys_read(paddr, len(got))
    ps = image.page_size
    if got == want and not zeros:
        report.identical += len(got) // ps
        return
    zero_set = set(zeros)
    for i in range(0, len(got), ps):
        page, ref = got[i : i + ps], want[i : i + ps]
        if i in zero_set:
            if ref.count(0) == ps:
                report.excluded += 1
                report.excluded_ranges.append((paddr + i, paddr + i + ps))
            else:
                report.note(paddr + i, "different", "dumped as a zero page; the fixture's is not zero")
        elif page == ref:
            report.identical += 1
        else:
            origin = image.page_origin(page)
            if origin is not None and origin != paddr + i:
                report.note(paddr + i, "misplaced", f"holds the page of {origin:#x}")
            else:
                report.note(paddr + i, "different", _first_diff(page, ref))


def _coverage(extents: list[DumpExtent], ram: IntervalSet, ps: int) -> tuple[IntervalSet, list[tuple[DumpExtent, int, int]]]:
    """Pages the data extents cover, and the (extent, start, end) windows to compare.

    Where PT_LOADs overlap (the x86_64 kernel-text one repeats part of the
    direct map) each physical page is compared once.
    """
    covered = IntervalSet()
    work: list[tuple[DumpExtent, int, int]] = []
    reach = 0  # end of everything covered so far
    for ext in sorted((e for e in extents if e.kind == DATA), key=lambda e: (e.paddr, -e.size)):
        a = -(-ext.paddr // ps) * ps
        b = (ext.paddr + ext.size) // ps * ps
        if a >= b:
            continue
        # Extents come in start order, so what is covered at or above a is [a, reach).
        if b > reach:
            work += [(ext, x, y) for x, y in ram.overlap(max(a, reach), b)]
        covered.add(a, b)
        reach = max(reach, b)
    return covered, work


def _first_diff(got: bytes, want: bytes) -> str:
    i = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
    return f"first difference at +{i:#x}: {got[i]:#04x}, expected {want[i]:#04x}"

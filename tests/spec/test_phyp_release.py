"""release_region writes: clamping, rounding, counting and re-registration, quirk by quirk."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abi_specs.phyp import QUIRKS, U64, PhypAreas, ReleaseCounters, quirks, release

PAGE = 4096
GiB = 1 << 30
RMR = 256 << 20
# 4 GiB of RAM; the scratch area (CPU 64 KiB, HPTE 16 KiB, RMR copy 256 MiB) at the top.
SCRATCH = 0x10000 + 0x4000 + RMR
AREAS = PhypAreas(PAGE, RMR, 4 * GiB - RMR, 4 * GiB - SCRATCH, SCRATCH)
END = AREAS.reserve_end


def test_quirk_names_come_from_the_spec() -> None:
    assert set(QUIRKS) == {
        "document_form", "count_unclamped", "reregister_on_exact_total", "raise_start_keep_length",
        "length_wraps", "pfn_rounding", "inclusive_end_page",
    }
    # What the kernel did is on; the 2007 document's read form is an option, off.
    assert {name for name, on in QUIRKS.items() if not on} == {"document_form"}
    with pytest.raises(ValueError, match="unknown release_region quirk"):
        quirks(no_such_quirk=False)


def test_one_page_more_than_asked() -> None:
    e = release(AREAS, ReleaseCounters(), RMR, 2 * PAGE)
    assert (e.first_pfn, e.last_pfn, e.pages) == (RMR // PAGE, RMR // PAGE + 2, 3)
    e = release(AREAS, ReleaseCounters(), RMR, 2 * PAGE, quirks(inclusive_end_page=False))
    assert e.pages == 2


def test_a_length_under_a_page_still_frees_one() -> None:
    e = release(AREAS, ReleaseCounters(), RMR, 100)
    assert e.pages == 1
    assert release(AREAS, ReleaseCounters(), RMR, 100, quirks(inclusive_end_page=False)).pages == 0


def test_unaligned_start_loses_its_page_offset() -> None:
    e = release(AREAS, ReleaseCounters(), RMR + 0x800, PAGE)
    assert (e.first_pfn, e.pages) == (RMR // PAGE, 2)
    e = release(AREAS, ReleaseCounters(), RMR + 0x800, 2 * PAGE, quirks(pfn_rounding=False, inclusive_end_page=False))
    assert (e.first_pfn, e.pages) == (RMR // PAGE + 1, 1)


def test_start_below_the_area_is_raised_keeping_the_length() -> None:
    e = release(AREAS, ReleaseCounters(), 0, 3 * PAGE)
    assert (e.clamped_start, e.clamped_length) == (RMR, 3 * PAGE)
    assert e.counters == ReleaseCounters()  # below the area the kernel does not count
    e = release(AREAS, ReleaseCounters(), RMR - PAGE, 3 * PAGE, quirks(raise_start_keep_length=False))
    assert (e.clamped_start, e.clamped_length) == (RMR, 2 * PAGE)


def test_length_is_cut_at_the_reserved_end() -> None:
    e = release(AREAS, ReleaseCounters(), END - PAGE, 10 * PAGE)
    assert e.clamped_length == PAGE
    assert e.counters.reserved == 10 * PAGE  # counted before clamping


def test_start_beyond_the_end_wraps() -> None:
    e = release(AREAS, ReleaseCounters(), END + PAGE, 1)
    assert e.clamped_length == (-PAGE) & U64
    assert e.walks_off_memory
    e = release(AREAS, ReleaseCounters(), END + PAGE, 1, quirks(length_wraps=False))
    assert e.clamped_length == 0


def test_start_plus_length_overflow_escapes_the_clamp() -> None:
    e = release(AREAS, ReleaseCounters(), RMR, U64)
    assert e.clamped_length == U64 and e.walks_off_memory
    e = release(AREAS, ReleaseCounters(), RMR, U64, quirks(length_wraps=False))
    assert e.clamped_length == AREAS.reserve_size and not e.walks_off_memory


def test_over_counting_never_reregisters() -> None:
    counters = ReleaseCounters()
    e = release(AREAS, counters, RMR, 2 * AREAS.reserve_size)
    e = release(AREAS, e.counters, AREAS.scratch_start, SCRATCH)
    assert not e.reregistered
    e = release(AREAS, ReleaseCounters(), RMR, 2 * AREAS.reserve_size, quirks(count_unclamped=False))
    e = release(AREAS, e.counters, AREAS.scratch_start, SCRATCH, quirks(count_unclamped=False))
    assert e.counters == ReleaseCounters(AREAS.reserve_size + SCRATCH, SCRATCH)
    assert not e.reregistered
    assert release(AREAS, e.counters, RMR, 0, quirks(reregister_on_exact_total=False)).reregistered


def test_exact_totals_reregister_and_keep_reregistering() -> None:
    e = release(AREAS, ReleaseCounters(), RMR, AREAS.reserve_size - SCRATCH)
    assert not e.reregistered
    e = release(AREAS, e.counters, AREAS.scratch_start, SCRATCH)
    assert e.reregistered
    # The kernel's counters are static: any later counted write re-registers again.
    assert release(AREAS, e.counters, RMR, 0).reregistered
    assert not release(AREAS, e.counters, 0, 0).reregistered


@st.composite
def partition(draw: st.DrawFn) -> list[tuple[int, int]]:
    """The four release_region ranges cut into random page-aligned pieces, shuffled."""
    cpu, hpte = 0x10000, 0x4000
    ranges = [
        (AREAS.scratch_start, cpu),
        (AREAS.scratch_start + cpu, hpte),
        (AREAS.scratch_start + cpu + hpte, RMR),
        (RMR, AREAS.reserve_size - SCRATCH),
    ]
    pieces = []
    for start, length in ranges:
        pages = length // PAGE
        cuts = sorted(set(draw(st.lists(st.integers(1, pages - 1), max_size=4)))) if pages > 1 else []
        bounds = [0, *cuts, pages]
        pieces += [(start + a * PAGE, (b - a) * PAGE) for a, b in itertools.pairwise(bounds)]
    return draw(st.permutations(pieces))


@given(partition())
def test_releasing_everything_reregisters_exactly_at_the_end(pieces: list[tuple[int, int]]) -> None:
    counters = ReleaseCounters()
    walked: list[tuple[int, int]] = []
    for i, (start, length) in enumerate(pieces):
        e = release(AREAS, counters, start, length)
        counters = e.counters
        walked.append((e.first_pfn, e.last_pfn))
        assert e.reregistered == (i == len(pieces) - 1)
        assert not e.walks_off_memory
    assert counters == ReleaseCounters(AREAS.reserve_size, SCRATCH)
    # The walks cover every reserved frame; the inclusive walk reaches one frame past the end.
    reach = RMR // PAGE
    for first, last in sorted(walked):
        assert first <= reach, f"frame {reach} never walked"
        reach = max(reach, last + 1)
    assert reach == END // PAGE + 1

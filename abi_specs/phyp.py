"""What a write to /sys/kernel/release_region does to the machine.

A pure model of the kernel's store method: from the reserved area, the scratch
area and one parsed ``(start, length)`` write it computes which page frames
are freed, what the freed-memory counters become and whether the dump area is
registered again. Each kernel quirk is a named option (see the ``quirks`` of
``release_region`` in ``specs/phyp.toml``); all are on by default, which is
what the kernel did.
"""

from __future__ import annotations

from dataclasses import dataclass

from .specfile import builtin_spec

U64 = (1 << 64) - 1

#: The quirk names and defaults, as the spec lists them.
QUIRKS: dict[str, bool] = {q.name: q.default for q in builtin_spec().get("release_region").quirks}


def quirks(**overrides: bool) -> frozenset[str]:
    """The enabled quirks: the spec's defaults with *overrides* applied."""
    unknown = set(overrides) - set(QUIRKS)
    if unknown:
        raise ValueError(f"unknown release_region quirk(s): {', '.join(sorted(unknown))}; known: {', '.join(QUIRKS)}")
    return frozenset(name for name, default in QUIRKS.items() if overrides.get(name, default))


@dataclass(frozen=True)
class PhypAreas:
    """The areas the capture kernel tracks: all sizes in bytes."""

    page_size: int
    reserve_start: int
    reserve_size: int
    scratch_start: int
    scratch_size: int

    @property
    def reserve_end(self) -> int:
        return self.reserve_start + self.reserve_size


@dataclass(frozen=True)
class ReleaseCounters:
    """The kernel's running totals of memory released so far (static in the kernel)."""

    reserved: int = 0
    scratch: int = 0


@dataclass(frozen=True)
class ReleaseEffect:
    """The outcome of one write of ``start length``.

    ``first_pfn`` to ``last_pfn`` (inclusive) are the page frames the kernel
    walks; it frees those that are still reserved. ``last_pfn < first_pfn``
    means nothing is walked. ``walks_off_memory`` is set when the wrapped length
    would make the kernel walk past the end of the reserved area (on a real
    machine, past the end of memory).
    """

    start: int
    length: int
    clamped_start: int
    clamped_length: int
    first_pfn: int
    last_pfn: int
    counters: ReleaseCounters
    reregistered: bool
    walks_off_memory: bool

    @property
    def pages(self) -> int:
        return max(0, self.last_pfn - self.first_pfn + 1)


def saved_at(paddr: int, rmr_addr: int, rmr_len: int) -> int:
    """Where the capture kernel holds the crashed kernel's physical byte *paddr*.

    Before the reboot the hypervisor copied the low *rmr_len* bytes (the real
    memory region, the first DUMP pair of release_region) to *rmr_addr*; every
    other byte stayed at its own address, reserved.
    """
    return rmr_addr + paddr if paddr < rmr_len else paddr


def _inside(addr: int, start: int, size: int) -> bool:
    # The kernel compares against start + size inclusively.
    return start <= addr <= start + size


def release(
    areas: PhypAreas,
    counters: ReleaseCounters,
    start: int,
    length: int,
    enabled: frozenset[str] | None = None,
) -> ReleaseEffect:
    """Apply one parsed write of ``start length`` (both unsigned 64-bit)."""
    q = quirks() if enabled is None else enabled
    start &= U64
    length &= U64
    end = areas.reserve_end

    # 1. The kernel first counts the write, then clamps it.
    clamped_start, clamped_length = start, length
    if start < areas.reserve_start:
        clamped_start = areas.reserve_start
        if "raise_start_keep_length" not in q:
            clamped_length = max(0, length - (areas.reserve_start - start))
    wraps = "length_wraps" in q
    reach = clamped_start + clamped_length
    if (reach & U64 if wraps else reach) > end:
        clamped_length = (end - clamped_start) & U64 if wraps else max(0, end - clamped_start)

    counted_start, counted_length = (start, length) if "count_unclamped" in q else (clamped_start, clamped_length)
    new = counters
    reregistered = False
    if counted_start >= areas.reserve_start:  # below it the kernel returns before counting
        # The counters are unsigned longs: they wrap like everything else.
        in_reserve = _inside(counted_start, areas.reserve_start, areas.reserve_size)
        in_scratch = _inside(counted_start, areas.scratch_start, areas.scratch_size)
        new = ReleaseCounters(
            reserved=(new.reserved + (counted_length if in_reserve else 0)) & U64,
            scratch=(new.scratch + (counted_length if in_scratch else 0)) & U64,
        )
        # The kernel checks after every counted write, so once the totals are
        # exact, every later write at or above the reserved start re-registers.
        if "reregister_on_exact_total" in q:
            reregistered = new.reserved == areas.reserve_size and new.scratch == areas.scratch_size
        else:
            reregistered = new.reserved >= areas.reserve_size and new.scratch >= areas.scratch_size

    # 2. Which page frames are walked.
    shift = areas.page_size.bit_length() - 1
    if "pfn_rounding" in q:
        first = clamped_start >> shift
        count = clamped_length >> shift
    else:  # only whole pages inside [start, start + length)
        first = -(-clamped_start >> shift)
        count = max(0, ((clamped_start + clamped_length) >> shift) - first)
    last = first + count if "inclusive_end_page" in q else first + count - 1
    walks_off = last > -(-end >> shift)
    return ReleaseEffect(
        start=start,
        length=length,
        clamped_start=clamped_start,
        clamped_length=clamped_length,
        first_pfn=first,
        last_pfn=last,
        counters=new,
        reregistered=reregistered,
        walks_off_memory=walks_off,
    )

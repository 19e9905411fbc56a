"""phyp dump's memory layout, and what a write to /sys/kernel/release_region does.

Two pure models of arch/powerpc/platforms/pseries/phyp_dump.c:

* :func:`phyp_layout`: where the dump areas sit, from the RAM size, the
  firmware's section sizes and the boot option, with the sizing constants of
  ``[platforms.phyp.layout]`` in ``specs/platforms.toml``;
* :func:`release`: the store method of release_region: from the reserved
  area, the scratch area and one parsed ``(start, length)`` write it computes
  which page frames are freed, what the freed-memory counters become and
  whether the dump area is registered again. Each kernel quirk is a named
  option (see the ``quirks`` of ``release_region`` in ``specs/phyp.toml``); all
  are on by default, which is what the kernel did.
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
class PhypLayout:
    """Where a phyp dump lives in the capture kernel (plain numbers).

    The four ``*_addr``/``*_len`` pairs are exactly what /sys/kernel/release_region
    prints, in order; ``reserve_*`` and ``scratch_*`` are the areas behind them.
    """

    cpu_addr: int
    cpu_len: int
    hpte_addr: int
    hpte_len: int
    rmr_copy_addr: int
    rmr_copy_len: int
    second_addr: int
    second_len: int
    reserve_start: int
    reserve_size: int
    scratch_start: int
    scratch_size: int

    def pairs(self) -> tuple[int, ...]:
        """The eight release_region numbers in the order the kernel prints them."""
        return (
            self.cpu_addr, self.cpu_len, self.hpte_addr, self.hpte_len,
            self.rmr_copy_addr, self.rmr_copy_len, self.second_addr, self.second_len,
        )  # fmt: skip

    @property
    def reserved_range(self) -> tuple[int, int]:
        """(start, size) of the memory the capture kernel holds reserved."""
        return (self.reserve_start, self.reserve_size)

    @property
    def scratch_range(self) -> tuple[int, int]:
        """(start, size) of the firmware's scratch area (CPU, HPTE, RMR copy)."""
        return (self.scratch_start, self.scratch_size)

    def areas(self, page_size: int) -> PhypAreas:
        """The areas the release model works on."""
        return PhypAreas(page_size, self.reserve_start, self.reserve_size, self.scratch_start, self.scratch_size)


def shown_pairs(layout: PhypLayout, rebased: bool, document_form: bool = False) -> tuple[int, ...]:
    """What reading release_region prints: the eight numbers, in order.

    show_release_region() prints the capture kernel's *own* dump header, which
    init_dump_header() filled with offsets (CPU 0, HPTE after the CPU state,
    DUMP after both) and never a length copied; only the last pair, the
    reserved start and the reserved size less the scratch size, is an area.
    Once the kernel registered again (*rebased*) the three destinations have
    had the scratch address added, once. *document_form* prints instead what
    the 2007 design document shows: the firmware's addresses and lengths.
    """
    if document_form:
        return layout.pairs()
    base = layout.scratch_start if rebased else 0
    return (base, 0, base + layout.cpu_len, 0, base + layout.cpu_len + layout.hpte_len, 0,
            layout.second_addr, layout.second_len)


def firmware_areas(header: dict[str, object]) -> dict[str, tuple[int, int]]:
    """Where firmware saved each section: ``{"CPU": (address, length), "HPTE": ..., "DUMP": ...}``.

    *header* is ibm,kernel-dump unpacked by the spec (``{"head", "records"}``):
    what a collector reads when release_region prints the kernel's own header,
    whose first three pairs hold offsets and zero lengths.
    """
    types = builtin_spec().get("ibm,kernel-dump").constants["source_type"]
    names = {types["CPU_STATE"]: "CPU", types["HPTE"]: "HPTE", types["REAL_MODE_REGION"]: "DUMP"}
    out = {}
    for rec in header["records"]:  # type: ignore[union-attr]
        name = names.get(int(rec["source_type"]))
        if name is not None and name not in out:
            out[name] = (int(rec["destination_address"]), int(rec["source_length"]))
    return out


def _sizing() -> dict[str, int]:
    return builtin_spec().platforms["phyp"].layout


def reserve_size(ram_end: int, boot_option: int = 0) -> int:
    """R: the ``phyp_dump_reserve_size=`` boot option, else the larger of the minimum and a
    percentage of RAM rounded down to the alignment (phyp_dump_calculate_reserve_size)."""
    if boot_option:
        return boot_option
    rule = _sizing()
    share = ram_end * rule["reserve_percent"] // 100
    return max(rule["reserve_min"], share - share % rule["reserve_align"])


def rmr_size() -> int:
    """How much low memory the hypervisor copies aside (PHYP_DUMP_RMR_END)."""
    return _sizing()["rmr_size"]


def phyp_layout(ram_end: int, cpu_state_size: int, hpte_size: int, boot_option: int = 0) -> PhypLayout:
    """The dump areas of a machine with RAM up to *ram_end*.

    The crashed kernel reserved cpu + hpte + R at the top of RAM and registered
    the scratch area at its start; the capture kernel reserves everything from
    R to the end of RAM, and its scratch size counts the RMR copy only.
    """
    variable = reserve_size(ram_end, boot_option)
    rmr = rmr_size()
    scratch_start = ram_end - (cpu_state_size + hpte_size + variable)
    scratch_size = cpu_state_size + hpte_size + rmr
    reserve_start, reserved = variable, ram_end - variable
    return PhypLayout(
        cpu_addr=scratch_start,
        cpu_len=cpu_state_size,
        hpte_addr=scratch_start + cpu_state_size,
        hpte_len=hpte_size,
        rmr_copy_addr=scratch_start + cpu_state_size + hpte_size,
        rmr_copy_len=rmr,
        second_addr=reserve_start,
        second_len=reserved - scratch_size,
        reserve_start=reserve_start,
        reserve_size=reserved,
        scratch_start=scratch_start,
        scratch_size=scratch_size,
    )


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

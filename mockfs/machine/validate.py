"""The consistency rules of a fixture, one group per function; the first broken rule is raised."""

from __future__ import annotations

from typing import NoReturn

from abi_specs import builtin_spec

from .model import LOG_FORMATS, PAGE_KINDS, Fixture, FixtureError

#: The kernel's limit on one log record's text (LOG_LINE_MAX and friends).
MAX_RECORD_BYTES = 1024
#: The model stops at 4 PiB of physical address space.
MAX_PHYSICAL = 1 << 52


class _Check:
    def __init__(self, fx: Fixture, source: str) -> None:
        self.fx, self.source = fx, source

    def fail(self, key: str, problem: str) -> NoReturn:
        raise FixtureError(self.source, key, problem)


def _identity(c: _Check) -> None:
    fx, spec = c.fx, builtin_spec()
    if fx.platform not in spec.platforms:
        c.fail("platform", f"unknown platform {fx.platform!r} (expected one of {', '.join(spec.platforms)})")
    if fx.arch not in spec.arches:
        c.fail("arch", f"unknown arch {fx.arch!r} (expected one of {', '.join(spec.arches)})")
    allowed = spec.platforms[fx.platform].arches
    if fx.arch not in allowed:
        c.fail("arch", f"platform {fx.platform} runs on {', '.join(allowed)}, not {fx.arch}")
    ps = fx.page_size
    if ps < 4096 or ps & (ps - 1):
        c.fail("page_size", f"{ps} is not a power of two of at least 4096")
    if fx.log_format not in LOG_FORMATS:
        c.fail("log_format", f"unknown log format {fx.log_format!r} (expected one of {', '.join(LOG_FORMATS)})")
    if not 0 <= fx.seed < 1 << 64:
        c.fail("seed", "seed must fit 64 bits")
    _kernel(c)


def _kernel(c: _Check) -> None:
    """The kernel release must parse, and the platform must exist in that kernel."""
    fx, spec = c.fx, builtin_spec()
    try:
        version = fx.version
    except ValueError as exc:
        c.fail("kernel_version" if fx.kernel_version else "osrelease", str(exc))
    plat = spec.platforms[fx.platform]
    if not plat.in_kernel(version):
        c.fail("osrelease", f"{plat.title} is in Linux {plat.kernel_range()}, not in {version}")
    try:
        spec.enabled_quirks(version, dict(fx.quirks))
    except ValueError as exc:
        c.fail("quirks", str(exc))


def _ram(c: _Check) -> None:
    fx, ps = c.fx, c.fx.page_size
    if not fx.ram:
        c.fail("ram", "no RAM ranges")
    prev_end = -1
    for i, (start, size) in enumerate(fx.ram):
        if start < 0 or size <= 0:
            c.fail(f"ram[{i}]", f"bad range start {start:#x} size {size:#x}")
        if start % ps or size % ps:
            c.fail(f"ram[{i}]", f"range {start:#x}+{size:#x} is not page aligned ({ps:#x})")
        if start < prev_end:
            c.fail(f"ram[{i}]", f"range {start:#x} overlaps or precedes the previous range")
        if start + size > MAX_PHYSICAL:
            c.fail(f"ram[{i}]", "range ends above 4 PiB")
        prev_end = start + size


def _cpus(c: _Check) -> None:
    fx = c.fx
    if not fx.cpus:
        c.fail("cpus", "no CPUs")
    names = set(fx.arch_info.registers)
    seen: set[int] = set()
    for i, cpu in enumerate(fx.cpus):
        if not 0 <= cpu.pid < 1 << 31:
            c.fail(f"cpus[{i}].pid", f"pid {cpu.pid} out of range")
        if cpu.pid in seen:
            c.fail(f"cpus[{i}].pid", f"duplicate pid {cpu.pid}")
        seen.add(cpu.pid)
        for reg, value in cpu.registers.items():
            if reg not in names:
                c.fail(f"cpus[{i}].registers.{reg}", f"no register {reg!r} on {fx.arch}")
            if not 0 <= value < 1 << 64:
                c.fail(f"cpus[{i}].registers.{reg}", f"value {value} does not fit 64 bits")


def _log(c: _Check) -> None:
    for i, rec in enumerate(c.fx.log):
        try:
            raw = rec.text.encode("utf-8")
        except UnicodeEncodeError:
            c.fail(f"log[{i}].text", "text is not encodable as UTF-8")
        if len(raw) > MAX_RECORD_BYTES:
            c.fail(f"log[{i}].text", f"text of {len(raw)} bytes exceeds the kernel's {MAX_RECORD_BYTES}-byte record limit")
        if not 0 <= rec.ts_nsec < 1 << 63:
            c.fail(f"log[{i}].ts_nsec", f"{rec.ts_nsec} out of range")


def _memory(c: _Check) -> None:
    fx, ps = c.fx, c.fx.page_size
    kinds: dict[int, str] = {}
    for kind in PAGE_KINDS:
        for j, addr in enumerate(fx.planted(kind)):
            key = f"pages.{kind}[{j}]"
            if addr % ps:
                c.fail(key, f"{addr:#x} is not page aligned ({ps:#x})")
            if not fx.in_ram(addr, ps):
                c.fail(key, f"{addr:#x} is not in RAM")
            if addr in kinds:
                c.fail(key, f"{addr:#x} is already planted as {kinds[addr]}")
            kinds[addr] = kind
    for j, ov in enumerate(fx.overlays):
        if not ov.data:
            c.fail(f"overlays[{j}]", "empty data")
        if not fx.in_ram(ov.paddr, len(ov.data)):
            c.fail(f"overlays[{j}]", f"{ov.paddr:#x}+{len(ov.data):#x} is not inside one RAM range")


def _dump_areas(c: _Check) -> None:
    fx = c.fx
    if fx.platform == "phyp":
        if fx.phyp is None:
            c.fail("phyp", "platform phyp needs a [phyp] section")
        lay = fx.phyp_layout()
        if lay.second_len < 0 or lay.scratch_start < lay.reserve_start:
            c.fail("phyp", f"RAM of {fx.ram_end:#x} bytes is too small for the dump areas")
    if fx.platform == "fadump":
        fa = fx.fadump
        if fa is None:
            c.fail("fadump", "platform fadump needs a [fadump] section")
        if fa.boot_memory_size <= 0 or fa.boot_memory_size % fx.page_size:
            c.fail("fadump.boot_memory_size", f"{fa.boot_memory_size:#x} is not a positive number of whole pages")
        try:
            areas = fx.fadump_areas()
        except ValueError as exc:
            c.fail("fadump.boot_memory_size", str(exc))
        for key in ("reserve_start", "reserve_size"):
            stated, computed = getattr(fa, key), getattr(areas, key)
            if stated and stated != computed:
                c.fail(f"fadump.{key}", f"{stated:#x}, but Linux {fx.osrelease}'s fadump gives {computed:#x} for "
                       f"{fa.boot_memory_size:#x} bytes of boot memory (leave it out: it is computed)")
        if not fx.in_ram(areas.reserve_start, areas.reserve_size):
            c.fail("fadump.reserve_start", "reserved area is not inside one RAM range")


def _crashkernel(c: _Check) -> None:
    fx = c.fx
    if fx.crashkernel is None:
        return
    if fx.platform != "kdump":
        c.fail("kdump.crashkernel", f"a crashkernel= reservation belongs to kdump machines, not {fx.platform}")
    start, size = fx.crashkernel
    if size <= 0 or start % fx.page_size or size % fx.page_size:
        c.fail("kdump.crashkernel", f"{start:#x}+{size:#x} is not a page-aligned range")
    # The capture kernel's view of RAM leaves the crashkernel area out: it is not the crashed kernel's memory.
    if any(s < start + size and start < s + z for s, z in fx.ram):
        c.fail("kdump.crashkernel", f"{start:#x}+{size:#x} overlaps the crashed kernel's RAM")


def check_fixture(fx: Fixture, source: str) -> None:
    """Raise FixtureError (naming *source*, the key and the problem) on the first broken rule."""
    c = _Check(fx, source)
    for rules in (_identity, _ram, _cpus, _log, _memory, _dump_areas, _crashkernel):
        rules(c)

"""Build new fixtures from a few parameters (``abi-harness fixture new``, strategies).

:func:`new_fixture` turns "a 4 GiB phyp machine with 8 CPUs that logged these
lines" into a valid :class:`Fixture`: one RAM range from physical 0, CPUs with
distinct pids and plausible registers, the log with increasing timestamps, one
planted page of each kind near the top of RAM (so ``makedumpfile -d 31`` has
something to exclude) and the platform's dump section. Everything derived from
randomness comes from ``seed``, so equal arguments give equal fixtures.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import tomli_w

from abi_specs import builtin_spec
from abi_specs.fadump import fadump_areas
from abi_specs.units import format_size, parse_size

from .manifest import fixture_to_doc
from .model import PAGE_KINDS, Cpu, Fadump, Fixture, FixtureError, LogRecord, PhypDump

MiB = 1 << 20
GiB = 1 << 30

DEFAULT_MEMORY = GiB
from mockfs.defaults import DEFAULT_CPUS  # noqa: E402  (re-exported)

#: Smallest RAM a generated fixture accepts: the kernel data region starts at
#: 16 MiB and takes at least 2 MiB plus mem_map; phyp needs its 256 MiB RMR twice
#: (the capture kernel's and the copy in the scratch area) plus a reserved rest;
#: fadump needs 256 MiB of boot memory and a reservation of its size plus 16 MiB.
# fadump: 320 MiB of boot memory and its reservation above it.
MIN_MEMORY = {"kdump": 64 * MiB, "fadump": 656 * MiB, "phyp": 576 * MiB}
#: Largest RAM: 4-level x86_64 page tables reach 64 TiB; the model stops at 4 PiB.
MAX_MEMORY = 64 << 40

_DEFAULT_LOG = ("Linux version {osrelease} (mock@build) #1 SMP", "sysrq: Trigger a crash",
                "Kernel panic - not syncing: sysrq triggered crash")  # fmt: skip


def default_arch(platform: str) -> str:
    """The architecture a *platform* machine gets when none is asked for (the spec says)."""
    return builtin_spec().platforms[platform].default_arch


#: Where generated stack pointers point: the vmalloc area (x86_64) or high in the direct map (POWER).
_STACK_BASE = {"x86_64": 0xFFFFC90000000000}
_DEFAULT_STACK_BASE = 0xC00000000F000000


def _fail(key: str, problem: str) -> FixtureError:
    return FixtureError("new", key, problem)


def _checked_size(platform: str, arch: str, memory: int | str, cpus: int, seed: int) -> int:
    """The RAM size in bytes, after checking every parameter; FixtureError naming the one at fault."""
    spec = builtin_spec()
    if platform not in spec.platforms:
        raise _fail("platform", f"unknown platform {platform!r} (expected one of {', '.join(spec.platforms)})")
    if arch not in spec.arches:
        raise _fail("arch", f"unknown arch {arch!r} (expected one of {', '.join(spec.arches)})")
    try:
        size = parse_size(memory)
    except ValueError as exc:
        raise _fail("memory", str(exc)) from None
    ps = spec.arches[arch].page_size
    if size % ps:
        raise _fail("memory", f"{size:#x} is not a multiple of the {arch} page size {ps:#x}")
    if not MIN_MEMORY[platform] <= size <= MAX_MEMORY:
        lo, hi = format_size(MIN_MEMORY[platform]), format_size(MAX_MEMORY)
        raise _fail("memory", f"{format_size(size)} is outside {lo}..{hi} for platform {platform}")
    if not 1 <= cpus <= 8192:
        raise _fail("cpus", f"{cpus} CPUs is outside 1..8192")
    if not 0 <= seed < 1 << 64:
        raise _fail("seed", f"{seed} does not fit 64 bits")
    return size


def _cpus(rng: random.Random, arch: str, count: int) -> tuple[Cpu, ...]:
    """CPUs with distinct pids (by construction) and a plausible program counter and stack pointer."""
    spec = builtin_spec().arch(arch)
    text_base = spec.kernel_map + spec.kernel_start  # where the kernel text starts
    stack_base = _STACK_BASE.get(arch, _DEFAULT_STACK_BASE)
    first_pid = rng.randrange(100, 30000)
    return tuple(
        # The first CPU is the one that crashed.
        Cpu(pid=first_pid + i, registers={spec.pc: text_base + rng.randrange(0, 1 << 24, 4),
                                          spec.sp: stack_base + rng.randrange(0, 1 << 24, 16)})
        for i in range(count)
    )


def _log(rng: random.Random, messages: Sequence[str], osrelease: str, boot: Sequence[str] = ()) -> tuple[LogRecord, ...]:
    """*messages* (or the default boot-and-panic log, with the *boot* messages after the banner)
    with strictly increasing timestamps, up to 2 s apart."""
    default = [t.format(osrelease=osrelease) for t in _DEFAULT_LOG]
    texts = list(messages) or [default[0], *boot, *default[1:]]
    ts, log = 0, []
    for text in texts:
        log.append(LogRecord(text, ts))
        ts += rng.randrange(1, 2_000_000_000)
    return tuple(log)


def _planted(size: int, ps: int) -> dict[str, tuple[int, ...]]:
    """One page of each kind just below the top of RAM: far from the kernel data
    region at 16 MiB, and (on phyp) inside the dump area, where collectors look."""
    top = size - ps * (len(PAGE_KINDS) + 1)
    return {f"{kind}_pages": (top + i * ps,) for i, kind in enumerate(PAGE_KINDS)}


def new_fixture(
    platform: str,
    arch: str | None = None,
    memory: int | str = DEFAULT_MEMORY,
    cpus: int = DEFAULT_CPUS,
    messages: Sequence[str] = (),
    seed: int = 0,
    name: str | None = None,
    osrelease: str = "",
    plant_pages: bool = True,
    dump_status: str = "ok",
) -> Fixture:
    """A valid fixture of a *platform* machine with *memory* bytes of RAM and *cpus* CPUs.

    *messages* become the kernel log in order, timestamps strictly increasing;
    with none, a short boot-and-panic log is used. Raises FixtureError (source
    ``new``) naming the parameter at fault.
    """
    arch = arch or (default_arch(platform) if platform in builtin_spec().platforms else "")
    if dump_status != "ok" and platform != "phyp":
        raise _fail("dump_status", f"only phyp dump knows a firmware dump status, not {platform}")
    size = _checked_size(platform, arch, memory, cpus, seed)
    ps = builtin_spec().arches[arch].page_size
    rng = random.Random(seed)
    release = osrelease or default_osrelease(platform)
    fixture = Fixture(
        name=name or f"{platform}-{arch}-{format_size(size).replace(' ', '')}",
        platform=platform,
        arch=arch,
        ram=((0, size),),
        cpus=_cpus(rng, arch, cpus),
        osrelease=osrelease,
        log=_log(rng, messages, release, _boot_messages(platform, size, release, ps)),
        seed=seed,
        phyp=PhypDump(dump_status=dump_status) if platform == "phyp" else None,
        fadump=_fadump_areas(size, release, ps) if platform == "fadump" else None,
        crashkernel=_crashkernel(size) if platform == "kdump" else None,
        **(_planted(size, ps) if plant_pages else {}),  # type: ignore[arg-type]
    )
    try:
        return fixture.validate("new")
    except FixtureError as exc:
        raise _fail(exc.key, exc.problem) from None


def default_osrelease(platform: str) -> str:
    """The kernel release a new *platform* machine runs unless told otherwise."""
    plat = builtin_spec().platforms.get(platform)
    return f"{plat.default_kernel}-mock" if plat else "5.15.0-mock"


def manifest_text(fixture: Fixture, description: str = "") -> str:
    """*fixture* as manifest text, with a ``description`` (the model itself keeps none)."""
    doc = fixture_to_doc(fixture)
    if description:
        doc = {"format": doc.pop("format"), "name": doc.pop("name"), "description": description, **doc}
    return tomli_w.dumps(doc)


#: crashkernel=256M, as distributions configure it; the kernel aligns the area to 16 MiB.
CRASHKERNEL_SIZE = 256 << 20
CRASHKERNEL_ALIGN = 16 << 20


def _crashkernel(size: int) -> tuple[int, int]:
    """The production kernel's crashkernel= area: just above the RAM the capture kernel exports.

    The capture kernel's view of memory leaves the area out, so a machine of
    *size* bytes of crashed-kernel RAM had size + 256 MiB in all.
    """
    start = -(-size // CRASHKERNEL_ALIGN) * CRASHKERNEL_ALIGN
    return (start, CRASHKERNEL_SIZE)


def _boot_messages(platform: str, size: int, osrelease: str, page: int) -> list[str]:
    """What the production kernel said at boot about its dump mechanism (fadump: the reservation)."""
    if platform != "fadump":
        return []
    from abi_specs.fadump import reservation_log_line
    from abi_specs.versions import KernelVersion

    version = KernelVersion.parse(osrelease)
    try:
        areas = fadump_areas(size, version, page)
    except ValueError:
        return []  # too small: _fadump_areas says so
    return [reservation_log_line(version, areas.reserve_size, areas.reserve_start, size)]


def _fadump_areas(size: int, osrelease: str, page: int) -> Fadump:
    """Boot memory the way the kernel sizes it (the reservation follows from it)."""
    from abi_specs.versions import KernelVersion

    try:
        areas = fadump_areas(size, KernelVersion.parse(osrelease), page)
    except ValueError:
        raise FixtureError("new", "memory", f"{format_size(size)} is too small for fadump's boot memory") from None
    return Fadump(boot_memory_size=areas.boot_memory_size)



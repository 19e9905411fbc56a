"""The fixture model: a frozen description of one crashed machine.

A :class:`Fixture` says what the crashed kernel left in memory (RAM map, CPU
registers, kernel log, planted page kinds, byte overlays) and, for the two
POWER dump platforms, what the firmware reported about its dump areas. The
architectures, platforms and dump-area rules come from the spec
(:mod:`abi_specs`); everything else (the ELF core, kernel structures, page
contents) is derived from the fixture by the rest of this package.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from abi_specs import AbiError, builtin_spec
from abi_specs.arches import Arch
from abi_specs.fadump import FadumpAreas, fadump_areas
from abi_specs.phyp import PhypLayout, phyp_layout
from abi_specs.versions import KernelVersion

MiB = 1 << 20
GiB = 1 << 30

LOG_FORMATS = ("ringbuffer", "printk_log")
PAGE_KINDS = ("zero", "free", "cache", "user")


def platforms() -> tuple[str, ...]:
    """The dump platforms the spec knows."""
    return tuple(builtin_spec().platforms)


def arches() -> tuple[str, ...]:
    """The architectures the spec knows."""
    return tuple(builtin_spec().arches)


class FixtureError(AbiError, ValueError):
    """A fixture that cannot be used; str() is ``source: key: problem``."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        parts = [p for p in (source, key) if p]
        super().__init__(": ".join([*parts, problem]))


@dataclass(frozen=True)
class Cpu:
    """One CPU's saved state: the pid of the task it ran and its registers.

    Registers not named are zero. Names follow the kernel's pt_regs layout
    (``rip``, ``rsp``... on x86_64; ``r0``..``r31``, ``nip``, ``link``... on ppc64).
    """

    pid: int
    registers: Mapping[str, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "registers", MappingProxyType(dict(self.registers)))


@dataclass(frozen=True)
class LogRecord:
    """One kernel log message, text without the trailing newline."""

    text: str
    ts_nsec: int = 0


@dataclass(frozen=True)
class Overlay:
    """Bytes that override memory content at a physical address."""

    paddr: int
    data: bytes


@dataclass(frozen=True)
class PhypDump:
    """Sizes the pSeries firmware reports for a phyp dump.

    ``cpu_state_size`` and ``hpte_size`` come from ``ibm,configure-kernel-dump-sizes``;
    ``reserve_bootvar`` is the ``phyp_dump_reserve_size=`` boot option (0: unset).
    """

    cpu_state_size: int = 0x10000
    hpte_size: int = 0x1000
    reserve_bootvar: int = 0
    dump_status: str = "ok"  # "error": firmware flagged the dump (DUMP_ERROR_FLAG): nothing to collect


@dataclass(frozen=True)
class Fadump:
    """Firmware-assisted dump: how much boot memory firmware copies aside.

    The reservation follows from it and the kernel version
    (:meth:`Fixture.fadump_areas`); a manifest may state ``reserve_start``
    and ``reserve_size`` too, and then they must agree (0: not stated).
    """

    boot_memory_size: int
    reserve_start: int = 0
    reserve_size: int = 0


@dataclass(frozen=True)
class Fixture:
    """A crashed machine. Build with keyword arguments; ``validate()`` checks it.

    ``ram`` is a tuple of (start, size) physical ranges in ascending order. Planted
    page lists hold physical page addresses. ``seed`` varies the memory pattern
    so cores of different fixtures never look alike.
    """

    name: str
    platform: str
    arch: str
    ram: tuple[tuple[int, int], ...]
    cpus: tuple[Cpu, ...]
    osrelease: str = ""  # the kernel's release (uname -r); "": the platform's default kernel
    kernel_version: str = ""  # the upstream version it behaves as, when uname -r hides it (Debian's 6.1.0-57 is 6.1.192)
    log: tuple[LogRecord, ...] = ()
    log_format: str = "ringbuffer"
    page_size: int = 0  # 0: the architecture's default
    zero_pages: tuple[int, ...] = ()
    free_pages: tuple[int, ...] = ()
    cache_pages: tuple[int, ...] = ()
    user_pages: tuple[int, ...] = ()
    overlays: tuple[Overlay, ...] = ()
    seed: int = 0
    hostname: str = "mock"
    crashtime: int = 1700000000
    phyp: PhypDump | None = None
    fadump: Fadump | None = None
    crashkernel: tuple[int, int] | None = None  # kdump: (start, size) of the crashkernel= reservation
    quirks: tuple[tuple[str, bool], ...] = ()  # kernel behaviours switched from the spec's for this version
    core_manifest: str = ""  # a real core's manifest (imported or recorded): its bytes are served, not synthesized

    def __post_init__(self) -> None:
        # Accept lists from hand-written code; store tuples so the fixture stays frozen.
        object.__setattr__(self, "quirks", tuple(sorted((str(k), bool(v)) for k, v in dict(self.quirks).items())))
        for name in ("ram", "cpus", "log", "zero_pages", "free_pages", "cache_pages", "user_pages", "overlays"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "ram", tuple((int(s), int(z)) for s, z in self.ram))
        if self.crashkernel is not None:
            object.__setattr__(self, "crashkernel", (int(self.crashkernel[0]), int(self.crashkernel[1])))
        if not self.osrelease and self.platform in builtin_spec().platforms:
            object.__setattr__(self, "osrelease", builtin_spec().platforms[self.platform].default_kernel + "-mock")
        if self.page_size == 0 and self.arch in builtin_spec().arches:
            object.__setattr__(self, "page_size", builtin_spec().arches[self.arch].page_size)

    # -- derived facts -----------------------------------------------------------------

    @property
    def arch_info(self) -> Arch:
        """The spec's description of ``arch``."""
        return builtin_spec().arch(self.arch)

    @property
    def ram_end(self) -> int:
        """First physical address above all RAM."""
        return max(s + z for s, z in self.ram)

    @property
    def ram_size(self) -> int:
        """Total bytes of RAM."""
        return sum(z for _, z in self.ram)

    def planted(self, kind: str) -> tuple[int, ...]:
        """The planted pages of *kind* (one of PAGE_KINDS)."""
        return getattr(self, f"{kind}_pages")

    def replace(self, **changes: object) -> Fixture:
        """A copy with *changes* applied (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def version(self) -> KernelVersion:
        """The kernel version whose behaviour the machine has: ``kernel_version``, else uname -r's."""
        return KernelVersion.parse(self.kernel_version or self.osrelease)

    def fadump_areas(self) -> FadumpAreas:
        """The fadump areas as this fixture's kernel lays them out (:func:`abi_specs.fadump.fadump_areas`)."""
        if self.fadump is None:
            raise FixtureError(self.name, "fadump", "fixture has no fadump section")
        boot = self.fadump.boot_memory_size
        return fadump_areas(self.ram_end, self.version, self.page_size,
                            regions=len(self.ram), boot=boot)

    def phyp_layout(self) -> PhypLayout:
        """The phyp dump areas as the capture kernel sees them (:func:`abi_specs.phyp.phyp_layout`)."""
        if self.phyp is None:
            raise FixtureError(self.name, "phyp", "fixture has no phyp dump section")
        p = self.phyp
        return phyp_layout(self.ram_end, p.cpu_state_size, p.hpte_size, p.reserve_bootvar)

    # -- validation --------------------------------------------------------------------

    def validate(self, source: str = "") -> Fixture:
        """Raise FixtureError on the first inconsistency; return self otherwise."""
        from .validate import check_fixture

        check_fixture(self, source or self.name)
        return self

    def in_ram(self, addr: int, length: int = 1) -> bool:
        """True if [addr, addr+length) lies inside one RAM range."""
        return any(s <= addr and addr + length <= s + z for s, z in self.ram)

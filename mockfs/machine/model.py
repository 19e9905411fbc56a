"""The fixture model: a frozen description of one crashed machine.

A :class:`Fixture` says what the crashed kernel left in memory (RAM map, CPU
registers, kernel log, planted page kinds, byte overlays) and, for the two
POWER dump platforms, where the firmware put its dump areas. Everything else
(the ELF core, kernel structures, page contents) is derived from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

MiB = 1 << 20
GiB = 1 << 30

PLATFORMS = ("phyp", "fadump", "kdump")
ARCHES = ("ppc64", "ppc64le", "x86_64")
LOG_FORMATS = ("ringbuffer", "printk_log")
PAGE_KINDS = ("zero", "free", "cache", "user")

# Low memory the POWER hypervisor copies aside on a phyp dump (PHYP_DUMP_RMR_END).
PHYP_RMR_SIZE = 256 * MiB

X86_64_REGISTERS = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
    "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags",
    "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
)  # fmt: skip
PPC64_REGISTERS = (
    *(f"r{i}" for i in range(32)),
    "nip", "msr", "orig_gpr3", "ctr", "link", "xer", "ccr", "softe",
    "trap", "dar", "dsisr", "result",
)  # fmt: skip


class FixtureError(ValueError):
    """A fixture that cannot be used; str() is ``source: key: problem``."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        parts = [p for p in (source, key) if p]
        super().__init__(": ".join([*parts, problem]))


@dataclass(frozen=True)
class ArchInfo:
    """Constants of one architecture as the core file and kernel show them."""

    name: str
    byteorder: str  # "little" or "big"
    e_machine: int
    default_page_size: int
    direct_map: int  # virtual address of physical address 0
    registers: tuple[str, ...]
    greg_slots: int  # elf_gregset_t length in 8-byte slots
    prstatus_size: int


ARCH_INFO: Mapping[str, ArchInfo] = MappingProxyType(
    {
        "x86_64": ArchInfo("x86_64", "little", 62, 4096, 0xFFFF888000000000, X86_64_REGISTERS, 27, 336),
        "ppc64": ArchInfo("ppc64", "big", 21, 65536, 0xC000000000000000, PPC64_REGISTERS, 48, 504),
        "ppc64le": ArchInfo("ppc64le", "little", 21, 65536, 0xC000000000000000, PPC64_REGISTERS, 48, 504),
    }
)


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


@dataclass(frozen=True)
class Fadump:
    """Firmware-assisted dump areas: the boot memory copied aside and the reservation."""

    boot_memory_size: int
    reserve_start: int
    reserve_size: int


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
    osrelease: str = "5.15.0-mock"
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

    def __post_init__(self) -> None:
        # Accept lists from hand-written code; store tuples so the fixture stays frozen.
        for name in ("ram", "cpus", "log", "zero_pages", "free_pages", "cache_pages", "user_pages", "overlays"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "ram", tuple((int(s), int(z)) for s, z in self.ram))
        if self.page_size == 0 and self.arch in ARCH_INFO:
            object.__setattr__(self, "page_size", ARCH_INFO[self.arch].default_page_size)

    # -- derived facts -----------------------------------------------------------------

    @property
    def arch_info(self) -> ArchInfo:
        """Architecture constants for ``arch``."""
        return ARCH_INFO[self.arch]

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

    def phyp_layout(self) -> PhypLayout:
        """The phyp dump areas as the capture kernel sees them.

        Follows arch/powerpc: the crashed kernel reserved cpu+hpte+R at the top of
        RAM (R = boot option, else max(256 MiB, 5 % of RAM rounded down to 256 MiB))
        and registered the scratch area at its start; the capture kernel reserves
        everything from R to the end of RAM, and its scratch size counts the 256 MiB
        RMR copy only.
        """
        if self.phyp is None:
            raise FixtureError(self.name, "phyp", "fixture has no phyp dump section")
        p = self.phyp
        end = self.ram_end
        variable = p.reserve_bootvar or max(PHYP_RMR_SIZE, (end // 20) & ~(PHYP_RMR_SIZE - 1))
        scratch_start = end - (p.cpu_state_size + p.hpte_size + variable)
        scratch_size = p.cpu_state_size + p.hpte_size + PHYP_RMR_SIZE
        reserve_start, reserve_size = variable, end - variable
        return PhypLayout(
            cpu_addr=scratch_start,
            cpu_len=p.cpu_state_size,
            hpte_addr=scratch_start + p.cpu_state_size,
            hpte_len=p.hpte_size,
            rmr_copy_addr=scratch_start + p.cpu_state_size + p.hpte_size,
            rmr_copy_len=PHYP_RMR_SIZE,
            second_addr=reserve_start,
            second_len=reserve_size - scratch_size,
            reserve_start=reserve_start,
            reserve_size=reserve_size,
            scratch_start=scratch_start,
            scratch_size=scratch_size,
        )

    # -- validation --------------------------------------------------------------------

    def validate(self, source: str = "") -> Fixture:
        """Raise FixtureError on the first inconsistency; return self otherwise."""
        src = source or self.name

        def fail(key: str, problem: str) -> None:
            raise FixtureError(src, key, problem)

        if self.platform not in PLATFORMS:
            fail("platform", f"unknown platform {self.platform!r} (expected one of {', '.join(PLATFORMS)})")
        if self.arch not in ARCH_INFO:
            fail("arch", f"unknown arch {self.arch!r} (expected one of {', '.join(ARCHES)})")
        if self.platform in ("phyp", "fadump") and self.arch == "x86_64":
            fail("arch", f"platform {self.platform} needs a POWER arch, not x86_64")
        ps = self.page_size
        if ps < 4096 or ps & (ps - 1):
            fail("page_size", f"{ps} is not a power of two of at least 4096")
        if self.log_format not in LOG_FORMATS:
            fail("log_format", f"unknown log format {self.log_format!r} (expected one of {', '.join(LOG_FORMATS)})")
        if not self.ram:
            fail("ram", "no RAM ranges")
        prev_end = -1
        for i, (start, size) in enumerate(self.ram):
            if start < 0 or size <= 0:
                fail(f"ram[{i}]", f"bad range start {start:#x} size {size:#x}")
            if start % ps or size % ps:
                fail(f"ram[{i}]", f"range {start:#x}+{size:#x} is not page aligned ({ps:#x})")
            if start < prev_end:
                fail(f"ram[{i}]", f"range {start:#x} overlaps or precedes the previous range")
            if start + size > 1 << 52:
                fail(f"ram[{i}]", "range ends above 4 PiB")
            prev_end = start + size
        if not self.cpus:
            fail("cpus", "no CPUs")
        names = set(self.arch_info.registers)
        seen: dict[int, int] = {}
        for i, cpu in enumerate(self.cpus):
            if not 0 <= cpu.pid < 1 << 31:
                fail(f"cpus[{i}].pid", f"pid {cpu.pid} out of range")
            if cpu.pid in seen:
                fail(f"cpus[{i}].pid", f"duplicate pid {cpu.pid}")
            seen[cpu.pid] = i
            for reg, value in cpu.registers.items():
                if reg not in names:
                    fail(f"cpus[{i}].registers.{reg}", f"no register {reg!r} on {self.arch}")
                if not 0 <= value < 1 << 64:
                    fail(f"cpus[{i}].registers.{reg}", f"value {value} does not fit 64 bits")
        for i, rec in enumerate(self.log):
            try:
                raw = rec.text.encode("utf-8")
            except UnicodeEncodeError:
                fail(f"log[{i}].text", "text is not encodable as UTF-8")
            if len(raw) > 1024:
                fail(f"log[{i}].text", f"text of {len(raw)} bytes exceeds the kernel's 1024-byte record limit")
            if not 0 <= rec.ts_nsec < 1 << 63:
                fail(f"log[{i}].ts_nsec", f"{rec.ts_nsec} out of range")
        kinds: dict[int, str] = {}
        for kind in PAGE_KINDS:
            for j, addr in enumerate(self.planted(kind)):
                key = f"pages.{kind}[{j}]"
                if addr % ps:
                    fail(key, f"{addr:#x} is not page aligned ({ps:#x})")
                if not self.in_ram(addr, ps):
                    fail(key, f"{addr:#x} is not in RAM")
                if addr in kinds:
                    fail(key, f"{addr:#x} is already planted as {kinds[addr]}")
                kinds[addr] = kind
        for j, ov in enumerate(self.overlays):
            if not ov.data:
                fail(f"overlays[{j}]", "empty data")
            if not self.in_ram(ov.paddr, len(ov.data)):
                fail(f"overlays[{j}]", f"{ov.paddr:#x}+{len(ov.data):#x} is not inside one RAM range")
        if not 0 <= self.seed < 1 << 64:
            fail("seed", "seed must fit 64 bits")
        if self.platform == "phyp":
            if self.phyp is None:
                fail("phyp", "platform phyp needs a [phyp] section")
            lay = self.phyp_layout()
            if lay.second_len < 0 or lay.scratch_start < lay.reserve_start:
                fail("phyp", f"RAM of {self.ram_end:#x} bytes is too small for the dump areas")
        if self.platform == "fadump":
            if self.fadump is None:
                fail("fadump", "platform fadump needs a [fadump] section")
            fa = self.fadump
            if fa.boot_memory_size <= 0 or fa.reserve_size <= 0:
                fail("fadump", "sizes must be positive")
            if not self.in_ram(fa.reserve_start, fa.reserve_size):
                fail("fadump.reserve_start", "reserved area is not inside one RAM range")
            if fa.reserve_start < fa.boot_memory_size:
                fail("fadump.reserve_start", "reserved area overlaps boot memory")
        return self

    def in_ram(self, addr: int, length: int = 1) -> bool:
        """True if [addr, addr+length) lies inside one RAM range."""
        return any(s <= addr and addr + length <= s + z for s, z in self.ram)

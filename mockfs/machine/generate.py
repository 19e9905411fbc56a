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
import re
from collections.abc import Sequence

import tomli_w

from .manifest import fixture_to_doc
from .model import ARCH_INFO, PAGE_KINDS, PLATFORMS, Cpu, Fadump, Fixture, FixtureError, LogRecord, PhypDump

MiB = 1 << 20
GiB = 1 << 30

#: The architecture each platform gets when none is asked for.
DEFAULT_ARCH = {"phyp": "ppc64", "fadump": "ppc64le", "kdump": "x86_64"}
DEFAULT_MEMORY = GiB
DEFAULT_CPUS = 2
#: Smallest RAM a generated fixture accepts: the kernel data region starts at
#: 16 MiB and takes at least 2 MiB plus mem_map; phyp needs its 256 MiB RMR twice
#: (the capture kernel's and the copy in the scratch area) plus a reserved rest;
#: fadump needs 256 MiB of boot memory and a reservation of its size plus 16 MiB.
MIN_MEMORY = {"kdump": 64 * MiB, "fadump": 544 * MiB, "phyp": 576 * MiB}
#: Largest RAM: 4-level x86_64 page tables reach 64 TiB; the model stops at 4 PiB.
MAX_MEMORY = 64 << 40

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 1 << 10, "m": MiB, "mib": MiB, "mb": MiB,
          "g": GiB, "gib": GiB, "gb": GiB, "t": 1 << 40, "tib": 1 << 40, "tb": 1 << 40}  # fmt: skip
_SIZE_RE = re.compile(r"^\s*(0[xX][0-9a-fA-F_]+|[0-9][0-9_]*)\s*([A-Za-z]*)\s*$")

_DEFAULT_LOG = ("Linux version {osrelease} (mock@build) #1 SMP", "sysrq: Trigger a crash",
                "Kernel panic - not syncing: sysrq triggered crash")  # fmt: skip
_PC_SP = {"x86_64": ("rip", "rsp"), "ppc64": ("nip", "r1"), "ppc64le": ("nip", "r1")}


def parse_size(text: str | int) -> int:
    """Bytes in a size such as ``"4G"``, ``"1TiB"``, ``"512M"``, ``"0x1000"`` or ``4096``.

    Units are binary (K = 1024) whether or not they carry an ``i``; ``B`` is optional.
    Raises ValueError with a one-line message for anything else.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"negative size {text}")
        return text
    m = _SIZE_RE.match(str(text))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise ValueError(f"cannot read {text!r} as a size (e.g. 4G, 1TiB, 512M, 0x1000)")
    return int(m.group(1).replace("_", ""), 0) * _UNITS[unit]


def format_size(n: int) -> str:
    """*n* bytes the short way a person writes it: ``4 GiB``, ``768 MiB``, ``1.75 GiB``, ``100 B``."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= scale:
            # Whole units print exactly; anything else with two decimals.
            return f"{n // scale} {unit}" if n % scale == 0 else f"{n / scale:.2f} {unit}"
    return f"{n} B"


def new_fixture(
    platform: str,
    arch: str | None = None,
    memory: int | str = DEFAULT_MEMORY,
    cpus: int = DEFAULT_CPUS,
    messages: Sequence[str] = (),
    seed: int = 0,
    name: str | None = None,
    osrelease: str = "5.15.0-mock",
    plant_pages: bool = True,
) -> Fixture:
    """A valid fixture of a *platform* machine with *memory* bytes of RAM and *cpus* CPUs.

    *messages* become the kernel log in order, timestamps strictly increasing;
    with none, a short boot-and-panic log is used. Raises FixtureError (source
    ``new``) naming the parameter at fault.
    """

    def fail(key: str, problem: str) -> FixtureError:
        return FixtureError("new", key, problem)

    if platform not in PLATFORMS:
        raise fail("platform", f"unknown platform {platform!r} (expected one of {', '.join(PLATFORMS)})")
    arch = arch or DEFAULT_ARCH[platform]
    if arch not in ARCH_INFO:
        raise fail("arch", f"unknown arch {arch!r} (expected one of {', '.join(ARCH_INFO)})")
    try:
        size = parse_size(memory)
    except ValueError as exc:
        raise fail("memory", str(exc)) from None
    ps = ARCH_INFO[arch].default_page_size
    if size % ps:
        raise fail("memory", f"{size:#x} is not a multiple of the {arch} page size {ps:#x}")
    if not MIN_MEMORY[platform] <= size <= MAX_MEMORY:
        lo, hi = format_size(MIN_MEMORY[platform]), format_size(MAX_MEMORY)
        raise fail("memory", f"{format_size(size)} is outside {lo}..{hi} for platform {platform}")
    if not 1 <= cpus <= 8192:
        raise fail("cpus", f"{cpus} CPUs is outside 1..8192")
    if not 0 <= seed < 1 << 64:
        raise fail("seed", f"{seed} does not fit 64 bits")

    rng = random.Random(seed)
    pc, sp = _PC_SP[arch]
    text_base = 0xFFFFFFFF81000000 if arch == "x86_64" else 0xC000000000000000
    stack_base = 0xFFFFC90000000000 if arch == "x86_64" else 0xC00000000F000000
    first_pid = rng.randrange(100, 30000)
    cpu_list = [
        # pids differ by construction; the first CPU is the one that crashed.
        {"pid": first_pid + i, "registers": {pc: text_base + rng.randrange(0, 1 << 24, 4),
                                             sp: stack_base + rng.randrange(0, 1 << 24, 16)}}
        for i in range(cpus)
    ]
    texts = list(messages) or [t.format(osrelease=osrelease) for t in _DEFAULT_LOG]
    ts, log = 0, []
    for text in texts:
        log.append(LogRecord(text, ts))
        ts += rng.randrange(1, 2_000_000_000)  # strictly increasing, up to 2 s apart

    # One page of each kind just below the top of RAM: far from the kernel data
    # region at 16 MiB, and (on phyp) inside the dump area, where collectors look.
    planted: dict[str, tuple[int, ...]] = {}
    if plant_pages:
        top = size - ps * (len(PAGE_KINDS) + 1)
        planted = {f"{kind}_pages": (top + i * ps,) for i, kind in enumerate(PAGE_KINDS)}

    fixture = Fixture(
        name=name or f"{platform}-{arch}-{format_size(size).replace(' ', '')}",
        platform=platform,
        arch=arch,
        ram=((0, size),),
        cpus=tuple(Cpu(**c) for c in cpu_list),  # type: ignore[arg-type]
        osrelease=osrelease,
        log=tuple(log),
        seed=seed,
        phyp=PhypDump() if platform == "phyp" else None,
        fadump=_fadump_areas(size) if platform == "fadump" else None,
        **planted,  # type: ignore[arg-type]
    )
    try:
        return fixture.validate("new")
    except FixtureError as exc:
        raise fail(exc.key, exc.problem) from None


def manifest_text(fixture: Fixture, description: str = "") -> str:
    """*fixture* as manifest text, with a ``description`` (the model itself keeps none)."""
    doc = fixture_to_doc(fixture)
    if description:
        doc = {"format": doc.pop("format"), "name": doc.pop("name"), "description": description, **doc}
    return tomli_w.dumps(doc)


def _fadump_areas(size: int) -> Fadump:
    """Boot memory and reservation the way fadump sizes them: 5 % of RAM, at least 256 MiB."""
    boot = max(256 * MiB, (size // 20) // (256 * MiB) * (256 * MiB))
    reserve = boot + 16 * MiB  # room for the CPU state and the ELF header too
    start = (size - reserve) // (16 * MiB) * (16 * MiB)
    if start < boot:
        raise FixtureError("new", "memory", f"{format_size(size)} is too small for fadump's {format_size(boot)} boot memory")
    return Fadump(boot_memory_size=boot, reserve_start=start, reserve_size=reserve)

"""The crashed kernel's data that dump tools read, and its VMCOREINFO description.

All structures live in one region starting at KDATA_BASE (16 MiB physical):
first a small static "image" (utsname, page tables, log buffer, pointer
variables), padded to 2 MiB, then the on-demand FLATMEM ``mem_map``. On x86_64
the image is what the kernel-text PT_LOAD (0xffffffff81000000) covers, and
symbols have kernel-map addresses; on POWER every address is 0xc000... + paddr.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from . import printk
from .memmap import OFFSETS, PAGE_BUDDY_MAPCOUNT_VALUE, PAGE_MAPPING_ANON, PAGE_STRUCT_SIZE, PG_BITS, MemMap
from .model import PAGE_KINDS, Fixture, FixtureError
from .notes import VmcoreInfo
from .x86_pagetables import build_page_tables, table_pages

KDATA_BASE = 0x1000000
IMAGE_ALIGN = 2 << 20


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


@dataclass(frozen=True)
class KernelRegion:
    """Where the kernel data sits and what it contains."""

    image_start: int
    image: bytes  # static structures from image_start
    image_end: int  # end of the kernel image (2 MiB aligned)
    memmap_start: int
    memmap: MemMap
    end: int  # end of the whole region (page aligned)
    vmcoreinfo: str
    symbols: dict[str, int]
    text_load: tuple[int, int, int] | None  # x86_64 kernel-text PT_LOAD (vaddr, paddr, size)


class KernelData:
    """Allocator and encoder for the static part of the kernel region."""

    def __init__(self, fixture: Fixture) -> None:
        self.fixture = fixture
        arch = fixture.arch_info
        self.byteorder = arch.byteorder
        self.x86 = fixture.arch == "x86_64"
        self.direct_map = arch.direct_map
        self.kernel_map = arch.kernel_map
        self.buf = bytearray()
        self.vmcoreinfo = VmcoreInfo()
        self._o = "<" if self.byteorder == "little" else ">"

    def u16(self, v: int) -> bytes:
        return struct.pack(self._o + "H", v)

    def u32(self, v: int) -> bytes:
        return struct.pack(self._o + "I", v)

    def u64(self, v: int) -> bytes:
        return struct.pack(self._o + "Q", v & 0xFFFFFFFFFFFFFFFF)

    def place(self, data: bytes, align: int = 8) -> int:
        """Append *data* to the image at the next *align* boundary; return its paddr."""
        pad = _align(len(self.buf), align) - len(self.buf)
        self.buf += bytes(pad)
        paddr = KDATA_BASE + len(self.buf)
        self.buf += data
        return paddr

    def patch(self, paddr: int, data: bytes) -> None:
        """Overwrite already placed bytes."""
        at = paddr - KDATA_BASE
        self.buf[at : at + len(data)] = data

    def kva(self, paddr: int) -> int:
        """Virtual address of a kernel-image (static) object."""
        return self.kernel_map + paddr

    def dva(self, paddr: int) -> int:
        """Direct-map virtual address of *paddr*."""
        return self.direct_map + paddr


def _utsname(fx: Fixture) -> bytes:
    # utsname.machine is what `uname -m` prints: the arch names of the spec are exactly that.
    fields = ["Linux", fx.hostname, fx.osrelease, "#1 SMP mock", fx.arch, "(none)"]
    return b"".join(f.encode()[:64].ljust(65, b"\0") for f in fields)


def _plant_page_tables(kd: KernelData, fx: Fixture) -> int:
    """The top-level page table (x86_64: real 4-level tables); returns its physical address."""
    if not kd.x86:
        return kd.place(kd.u64(0) * 512, 4096)  # an empty top-level table
    if fx.ram_end > 64 << 40:
        raise FixtureError(fx.name, "ram", "x86_64 RAM above 64 TiB does not fit the 4-level direct map")
    pgd_pa = _align(KDATA_BASE + len(kd.buf), 4096)
    kd.place(build_page_tables(pgd_pa, fx.ram_end), 4096)
    assert len(kd.buf) == pgd_pa - KDATA_BASE + 4096 * table_pages(fx.ram_end)
    return pgd_pa


def _describe_mem_map(vi: VmcoreInfo) -> None:
    """The struct page layout and flag numbers makedumpfile's page filters need."""
    vi.size("page", PAGE_STRUCT_SIZE)
    vi.offsets("page", [(k, OFFSETS[k]) for k in ("flags", "_refcount", "mapping", "lru", "_mapcount", "private")])
    for name, bit in PG_BITS.items():
        if name in ("PG_lru", "PG_private", "PG_swapcache", "PG_swapbacked", "PG_slab", "PG_hwpoison"):
            vi.number(name, bit)
    vi.number("PG_head_mask", 1 << PG_BITS["PG_head"])
    vi.number("PAGE_BUDDY_MAPCOUNT_VALUE", PAGE_BUDDY_MAPCOUNT_VALUE)
    vi.number("PAGE_OFFLINE_MAPCOUNT_VALUE", -257)


def build_kernel(fx: Fixture) -> KernelRegion:
    """Lay out the kernel region of *fx* and write its VMCOREINFO text."""
    kd = KernelData(fx)
    vi = kd.vmcoreinfo
    ps = fx.page_size
    vi.raw("OSRELEASE", fx.osrelease)
    vi.raw("PAGESIZE", str(ps))
    # struct uts_namespace { struct kref kref; struct new_utsname name; ... }
    uts = kd.place(bytes(4) + _utsname(fx), 64)
    vi.symbol("init_uts_ns", kd.kva(uts))
    vi.offset("uts_namespace.name", 4)
    pgd_pa = _plant_page_tables(kd, fx)
    vi.symbol("swapper_pg_dir", kd.kva(pgd_pa))
    vi.symbol("_stext", kd.kva(KDATA_BASE))
    mem_map_var = kd.place(kd.u64(0))
    vi.symbol("mem_map", kd.kva(mem_map_var))
    vi.symbol("contig_page_data", kd.kva(kd.place(bytes(64), 64)))
    (printk.plant_ringbuffer if fx.log_format == "ringbuffer" else printk.plant_printk_log)(kd, fx.log)

    image_end = memmap_start = _align(KDATA_BASE + len(kd.buf), IMAGE_ALIGN)
    memmap = MemMap(-(-fx.ram_end // ps), kd.byteorder)
    kd.patch(mem_map_var, kd.u64(kd.dva(memmap_start)))
    end = _align(memmap_start + memmap.size, ps)
    if not fx.in_ram(KDATA_BASE, end - KDATA_BASE):
        raise FixtureError(fx.name, "ram", f"RAM must hold the kernel data region [{KDATA_BASE:#x}, {end:#x}) in one range")
    _plant_page_structs(fx, memmap, kd, (KDATA_BASE, end))
    _describe_mem_map(vi)
    if kd.x86:
        vi.symbol("init_top_pgt", kd.kva(pgd_pa))
        vi.number("phys_base", 0)
        vi.number("pgtable_l5_enabled", 0)
        vi.raw("KERNELOFFSET", "0")
    vi.raw("CRASHTIME", str(fx.crashtime))
    return KernelRegion(
        image_start=KDATA_BASE,
        image=bytes(kd.buf),
        image_end=image_end,
        memmap_start=memmap_start,
        memmap=memmap,
        end=end,
        vmcoreinfo=vi.text(),
        symbols={key[7:-1]: int(value, 16) for key, value in vi.values.items() if key.startswith("SYMBOL(")},
        # The x86_64 kernel-text PT_LOAD (0xffffffff81000000 -> 16 MiB), as kexec-tools writes it.
        text_load=(kd.kva(KDATA_BASE), KDATA_BASE, image_end - KDATA_BASE) if kd.x86 else None,
    )


def _plant_page_structs(fx: Fixture, memmap: MemMap, kd: KernelData, region: tuple[int, int]) -> None:
    """Mark planted free, cache and user pages in mem_map so dump filters see them."""
    ps = fx.page_size
    lru = 1 << PG_BITS["PG_lru"]
    # A file mapping pointer: any non-null, non-anonymous kernel address.
    file_mapping = kd.dva(KDATA_BASE) & ~3
    anon_mapping = file_mapping | PAGE_MAPPING_ANON
    entries = {
        "free": memmap.entry(mapcount=PAGE_BUDDY_MAPCOUNT_VALUE, refcount=0, private=0),
        "cache": memmap.entry(flags=lru, mapping=file_mapping, refcount=1, mapcount=-1),
        "user": memmap.entry(flags=lru | (1 << PG_BITS["PG_swapbacked"]), mapping=anon_mapping, mapcount=0),
    }
    for kind in PAGE_KINDS:
        for j, addr in enumerate(fx.planted(kind)):
            if region[0] <= addr < region[1]:
                where = f"{region[0]:#x}-{region[1]:#x}"
                raise FixtureError(fx.name, f"pages.{kind}[{j}]", f"{addr:#x} is inside the kernel data region {where}")
            if kind in entries:
                memmap.set(addr // ps, entries[kind])

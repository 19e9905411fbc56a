"""x86_64 4-level page tables that map the direct map and the kernel text map.

Only two levels are filled: the top table (PGD, ``init_top_pgt``) and PUD pages
whose entries map 1 GiB pages. That is enough for page-table walkers such as
makedumpfile and drgn to translate the kernel's virtual addresses.
"""

from __future__ import annotations

import struct

from abi_specs import builtin_spec

GiB = 1 << 30
PGD_SPAN = 1 << 39  # one PGD entry: 512 GiB
_X86 = builtin_spec().arch("x86_64")
KERNEL_MAP = _X86.kernel_map  # __START_KERNEL_map
DIRECT_MAP = _X86.direct_map  # page_offset_base without KASLR
DIRECT_MAP_MAX = 64 << 40  # 4-level paging gives the direct map 64 TiB

_TABLE = 0x063  # present | writable | accessed | dirty
_LEAF_1G = 0x1E3  # the same plus page-size and global


def _index(vaddr: int, shift: int) -> int:
    return (vaddr >> shift) & 511


def table_pages(ram_end: int) -> int:
    """How many 4 KiB pages build_page_tables needs for RAM up to *ram_end*."""
    return 2 + -(-ram_end // PGD_SPAN)


def build_page_tables(base: int, ram_end: int) -> bytes:
    """Page tables placed at physical *base* (4 KiB aligned): PGD first, then PUDs.

    The direct map covers [0, ram_end) at DIRECT_MAP; the kernel map sends
    KERNEL_MAP to physical 0 (phys_base 0), with two 1 GiB pages.
    """
    if ram_end > DIRECT_MAP_MAX:
        raise ValueError("RAM beyond 64 TiB does not fit a 4-level direct map")
    n_direct = -(-ram_end // PGD_SPAN)
    pgd = [0] * 512
    puds: list[list[int]] = []
    for i in range(n_direct):
        pud_pa = base + 4096 * (1 + i)
        pgd[_index(DIRECT_MAP + i * PGD_SPAN, 39)] = pud_pa | _TABLE
        entries = [0] * 512
        for j in range(512):
            pa = i * PGD_SPAN + j * GiB
            if pa < ram_end:
                entries[j] = pa | _LEAF_1G
        puds.append(entries)
    kpud_pa = base + 4096 * (1 + n_direct)
    pgd[_index(KERNEL_MAP, 39)] = kpud_pa | _TABLE
    kpud = [0] * 512
    kpud[_index(KERNEL_MAP, 30)] = 0 | _LEAF_1G
    kpud[_index(KERNEL_MAP + GiB, 30)] = GiB | _LEAF_1G
    puds.append(kpud)
    return b"".join(struct.pack("<512Q", *t) for t in [pgd, *puds])

"""On-demand /proc/vmcore: the exact bytes the capture kernel would serve.

Layout, as fs/proc/vmcore.c builds it from the ELF core header kexec-tools
(or the firmware) prepared: the ELF header and program headers padded to a
page; one merged PT_NOTE whose data (all notes back to back) is padded to a
page; then one page-aligned slot per PT_LOAD holding the segment's pages, its
p_offset pointing at the segment's first byte inside the slot.

Nothing proportional to memory size is ever built: reads are served from the
small header buffer or computed from the fixture page by page.
"""

from __future__ import annotations

import bisect
import os
from typing import BinaryIO

from .elfcore import PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE, Elf64Ehdr, Elf64Phdr
from .kernel import KernelRegion, build_kernel
from .model import Fixture
from .notes import prstatus_note
from .pattern import PagePattern

CHUNK = 1 << 20


def _up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


class VmcoreImage:
    """The /proc/vmcore of a fixture: ``size`` and ``read(offset, length)``."""

    def __init__(self, fixture: Fixture) -> None:
        fixture.validate()
        self.fixture = fixture
        arch = fixture.arch_info
        ps = self.page_size = fixture.page_size
        self.byteorder = arch.byteorder
        self.kernel: KernelRegion = build_kernel(fixture)
        self.pattern = PagePattern(ps, fixture.seed, arch.byteorder)

        self.notes = b"".join(prstatus_note(cpu, arch) for cpu in fixture.cpus) + self._vmcoreinfo_note()
        loads: list[tuple[int, int, int]] = []  # (vaddr, paddr, size)
        if self.kernel.text_load:
            loads.append(self.kernel.text_load)
        loads += [(arch.direct_map + start, start, size) for start, size in fixture.ram]

        phnum = 1 + len(loads)
        self.header_size = _up(64 + 56 * phnum, ps)
        self.notes_offset = self.header_size
        notes_padded = _up(len(self.notes), ps)
        phdrs = [Elf64Phdr(PT_NOTE, 0, self.notes_offset, 0, 0, len(self.notes), len(self.notes))]
        self._slot_starts: list[int] = []
        self._slots: list[tuple[int, int, int]] = []  # (file start, file end, physical start)
        off = self.header_size + notes_padded
        for vaddr, paddr, size in loads:
            first = paddr - paddr % ps
            last = _up(paddr + size, ps)
            phdrs.append(Elf64Phdr(PT_LOAD, PF_R | PF_W | PF_X, off + paddr - first, vaddr, paddr, size, size))
            self._slot_starts.append(off)
            self._slots.append((off, off + last - first, first))
            off += last - first
        self.size = off
        self.phdrs = tuple(phdrs)
        head = Elf64Ehdr(e_machine=arch.e_machine, e_phnum=phnum).pack(arch.byteorder)
        head += b"".join(p.pack(arch.byteorder) for p in phdrs)
        self._head = head.ljust(self.header_size, b"\0") + self.notes.ljust(notes_padded, b"\0")

        self._zero = sorted(fixture.zero_pages)
        self._overlays = sorted(((ov.paddr, i, ov.data) for i, ov in enumerate(fixture.overlays)), key=lambda t: (t[0], t[1]))
        self._overlay_starts = [o[0] for o in self._overlays]
        self._overlay_max = max((len(o[2]) for o in self._overlays), default=0)

    def _vmcoreinfo_note(self) -> bytes:
        from .elfcore import pack_note

        return pack_note("VMCOREINFO", 0, self.kernel.vmcoreinfo.encode(), self.byteorder)

    # -- file view ----------------------------------------------------------------------

    def read(self, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length) of /proc/vmcore; short or empty past the end."""
        if offset < 0:
            raise ValueError("negative offset")
        end = min(offset + max(length, 0), self.size)
        pieces = []
        while offset < end:
            if offset < len(self._head):
                take = min(end, len(self._head)) - offset
                pieces.append(self._head[offset : offset + take])
            else:
                i = bisect.bisect_right(self._slot_starts, offset) - 1
                fstart, fend, pstart = self._slots[i]
                take = min(end, fend) - offset
                pieces.append(self.phys_read(pstart + offset - fstart, take))
            offset += take
        if len(pieces) == 1:
            return pieces[0]
        return b"".join(pieces)

    # -- physical memory ----------------------------------------------------------------

    def phys_read(self, paddr: int, length: int) -> bytes:
        """Content of crashed-kernel physical memory [paddr, paddr+length)."""
        end = paddr + length
        k = self.kernel
        mm_end = k.memmap_start + k.memmap.size
        inside_memmap = k.memmap_start <= paddr and end <= mm_end
        # Windows inside mem_map skip the pattern: it would be overwritten anyway.
        data = k.memmap.read(paddr - k.memmap_start, length) if inside_memmap else self.pattern.fill(paddr, length)
        buf: bytearray | None = None
        ps = self.page_size

        def put(at: int, chunk: bytes | memoryview) -> None:
            nonlocal buf
            if buf is None:
                buf = bytearray(data)
            buf[at : at + len(chunk)] = chunk

        lo = bisect.bisect_left(self._zero, paddr - ps + 1)
        hi = bisect.bisect_left(self._zero, end)
        for z in self._zero[lo:hi]:
            a, b = max(z, paddr), min(z + ps, end)
            put(a - paddr, bytes(b - a))

        img_end = k.image_start + len(k.image)
        if paddr < img_end and end > k.image_start:
            a, b = max(paddr, k.image_start), min(end, img_end)
            put(a - paddr, k.image[a - k.image_start : b - k.image_start])
        if not inside_memmap and paddr < mm_end and end > k.memmap_start:
            a, b = max(paddr, k.memmap_start), min(end, mm_end)
            put(a - paddr, k.memmap.read(a - k.memmap_start, b - a))

        if self._overlays:
            lo = bisect.bisect_left(self._overlay_starts, paddr - self._overlay_max + 1)
            hi = bisect.bisect_left(self._overlay_starts, end)
            for start, _, ov in sorted(self._overlays[lo:hi], key=lambda t: t[1]):
                a, b = max(start, paddr), min(start + len(ov), end)
                if a < b:
                    put(a - paddr, ov[a - start : b - start])
        return data if buf is None else bytes(buf)

    def page_origin(self, page: bytes) -> int | None:
        """Physical address a whole pattern page came from (None: not a pattern page)."""
        return self.pattern.origin(page)

    def vaddr_to_paddr(self, vaddr: int) -> int | None:
        """Translate through the PT_LOADs, as simple core readers do."""
        for ph in self.phdrs[1:]:
            if ph.p_vaddr <= vaddr < ph.p_vaddr + ph.p_memsz:
                return ph.p_paddr + vaddr - ph.p_vaddr
        return None


def export_vmcore(fixture: Fixture | VmcoreImage, path: str | os.PathLike[str] | BinaryIO, chunk: int = CHUNK) -> int:
    """Write the whole /proc/vmcore of *fixture* to *path*, streaming; return its size."""
    image = fixture if isinstance(fixture, VmcoreImage) else VmcoreImage(fixture)
    if hasattr(path, "write"):
        out = path
        close = False
    else:
        out = open(path, "wb")  # noqa: SIM115 - closed below
        close = True
    try:
        for off in range(0, image.size, chunk):
            out.write(image.read(off, chunk))  # type: ignore[union-attr]
    finally:
        if close:
            out.close()  # type: ignore[union-attr]
    return image.size

"""On-demand /proc/vmcore: the exact bytes the capture kernel would serve.

The layout is the spec's (:class:`abi_specs.vmcore_layout.VmcoreLayout`, the
plan the validator checks files against): headers padded to a page, one merged
PT_NOTE padded to a page, then one page-aligned slot per PT_LOAD. The headers
are built with pyelftools' ELF declarations (:mod:`abi_specs.elf`).

Nothing proportional to memory size is ever built: reads are served from the
small header buffer or computed from the fixture page by page.
"""

from __future__ import annotations

import bisect

from abi_specs.elf import PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE, pack_ehdr, pack_phdr
from abi_specs.vmcore_layout import VmcoreLayout

from .kernel import KernelRegion, build_kernel
from .model import Fixture
from .notes import prstatus_note, vmcoreinfo_note
from .pattern import PagePattern


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

        cpu_notes = b"".join(prstatus_note(cpu, arch) for cpu in fixture.cpus)
        self.notes = cpu_notes + vmcoreinfo_note(self.kernel.vmcoreinfo, arch.byteorder)
        loads: list[tuple[int, int, int]] = []  # (vaddr, paddr, size)
        if self.kernel.text_load:
            loads.append(self.kernel.text_load)
        loads += [(arch.direct_map + start, start, size) for start, size in fixture.ram]
        self.layout = layout = VmcoreLayout.plan(ps, len(self.notes), loads)
        self.header_size = layout.notes_offset
        self.notes_offset = layout.notes_offset
        self.size = layout.size
        order = arch.byteorder
        head = pack_ehdr(arch.e_machine, order, layout.phnum)
        head += pack_phdr(order, PT_NOTE, 0, layout.notes_offset, 0, 0, len(self.notes), len(self.notes))
        for slot in layout.loads:
            head += pack_phdr(order, PT_LOAD, PF_R | PF_W | PF_X, slot.offset, slot.vaddr, slot.paddr, slot.size, slot.size)
        self._head = head.ljust(layout.notes_offset, b"\0") + self.notes.ljust(layout.loads_start - layout.notes_offset, b"\0")
        self._slot_starts = [slot.slot for slot in layout.loads]
        self._slots = [(slot.slot, slot.slot_end, slot.first_paddr) for slot in layout.loads]

        self._zero = sorted(fixture.zero_pages)
        self._overlays = sorted(((ov.paddr, i, ov.data) for i, ov in enumerate(fixture.overlays)), key=lambda t: (t[0], t[1]))
        self._overlay_starts = [o[0] for o in self._overlays]
        self._overlay_max = max((len(o[2]) for o in self._overlays), default=0)

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
        for slot in self.layout.loads:
            if slot.vaddr <= vaddr < slot.vaddr + slot.size:
                return slot.paddr + vaddr - slot.vaddr
        return None

"""Where everything sits in /proc/vmcore: one description for building a core and for checking one.

fs/proc/vmcore.c builds the file from the crash kernel's ELF core header:

1. the ELF header and the program headers, zero-padded to a page;
2. one PT_NOTE (the first program header) holding every note back to back,
   zero-padded to a page;
3. one slot per PT_LOAD, each a whole number of pages: the segment's memory
   from its first page boundary, its ``p_offset`` pointing at its first byte
   inside the slot.

:meth:`VmcoreLayout.plan` computes those offsets from the page size, the
notes' size and the loads. The synthesizer builds its headers from the plan;
the validator plans the layout a file's own headers imply and compares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .elf import EHDR_SIZE, PHDR_SIZE


def round_up(value: int, align: int) -> int:
    """*value* rounded up to a multiple of *align*."""
    return -(-value // align) * align


@dataclass(frozen=True)
class LoadSlot:
    """One PT_LOAD and the page-aligned slot of the file that holds it."""

    vaddr: int
    paddr: int
    size: int
    slot: int  # file offset of the slot: a page boundary
    slot_end: int
    offset: int  # p_offset: the segment's first byte inside the slot

    @property
    def first_paddr(self) -> int:
        """The physical address the slot starts with (paddr rounded down to the page)."""
        return self.paddr - (self.offset - self.slot)


@dataclass(frozen=True)
class VmcoreLayout:
    """The offsets of a /proc/vmcore file (see the module docstring)."""

    page_size: int
    phnum: int
    headers_end: int  # end of the program headers
    notes_offset: int  # the PT_NOTE's p_offset: the headers padded to a page
    notes_size: int
    loads: tuple[LoadSlot, ...]
    size: int  # st_size of the whole file

    @property
    def notes_end(self) -> int:
        return self.notes_offset + self.notes_size

    @property
    def loads_start(self) -> int:
        """Where the first slot begins: the notes padded to a page."""
        return round_up(self.notes_end, self.page_size)

    @classmethod
    def plan(cls, page_size: int, notes_size: int, loads: Sequence[tuple[int, int, int]]) -> VmcoreLayout:
        """The layout of a core with *notes_size* bytes of notes and *loads* ``(vaddr, paddr, size)``."""
        phnum = 1 + len(loads)
        headers_end = EHDR_SIZE + PHDR_SIZE * phnum
        notes_offset = round_up(headers_end, page_size)
        at = round_up(notes_offset + notes_size, page_size)
        slots = []
        for vaddr, paddr, size in loads:
            in_page = paddr % page_size
            end = at + round_up(in_page + size, page_size)
            slots.append(LoadSlot(vaddr, paddr, size, at, end, at + in_page))
            at = end
        return cls(page_size, phnum, headers_end, notes_offset, notes_size, tuple(slots), at)

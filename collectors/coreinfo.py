"""What a collector needs to know from the head of an ELF core (/proc/vmcore).

Only the ELF header, the program headers and the notes are read (by the
spec's :func:`abi_specs.corehead.read_core_head`, through pyelftools): they
live in the capture kernel's own memory (the ELF core header it was handed and
the notes it merged), never in memory a collector gives back, so they can be
read again safely on every run. The page size comes from the VMCOREINFO note.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from abi_specs import CoreError, builtin_spec
from abi_specs.corehead import CoreLoad, read_core_head
from abi_specs.streams import ReadAtStream

#: A sanity bound: a core header larger than this is not something we should trust.
MAX_HEADER_BYTES = 64 << 20


class CoreFormatError(ValueError):
    """The file does not start like an ELF64 core; the message says where."""


@dataclass(frozen=True)
class CoreLayout:
    """The layout of a core: its loads, page size and a fingerprint of its head."""

    machine: int
    byteorder: str
    loads: tuple[CoreLoad, ...]  # PT_LOADs with file bytes, by file offset
    page_size: int
    head_end: int  # first byte after the ELF header, program headers and notes
    identity: str  # sha256 of those bytes: tells one crash from another


def read_core_layout(pread: Callable[[int, int], bytes], size: int) -> CoreLayout:
    """Parse the head of a core of *size* bytes through ``pread(offset, length)``."""
    try:
        head = read_core_head(ReadAtStream(pread, size), "/proc/vmcore", notes_limit=MAX_HEADER_BYTES)
    except CoreError as exc:
        raise CoreFormatError(str(exc).removeprefix("/proc/vmcore ")) from None
    if head.elfclass != 64:
        raise CoreFormatError("not an ELF64 file (EI_CLASS at offset 4)")
    if head.e_type != "ET_CORE":
        raise CoreFormatError(f"ELF type {head.e_type} at offset 16 is not ET_CORE")
    page_size = head.page_size()
    if not page_size:
        # No PAGESIZE in VMCOREINFO: the page size the arch's kernels use, else ours.
        arch = builtin_spec().vmcore.arch_of(head.e_machine, head.byteorder)
        page_size = builtin_spec().arches[arch].page_size if arch else os.sysconf("SC_PAGE_SIZE")
    if page_size < 4096 or page_size & (page_size - 1):
        raise CoreFormatError(f"page size {page_size} from VMCOREINFO is not a power of two of at least 4096")
    return CoreLayout(
        machine=head.e_machine,
        byteorder=head.byteorder,
        loads=tuple(sorted((ld for ld in head.loads if ld.filesz), key=lambda ld: ld.offset)),
        page_size=page_size,
        head_end=head.head_end,
        identity=head.digest,
    )

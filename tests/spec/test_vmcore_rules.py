"""The /proc/vmcore layout validator, on ELF cores built here byte by byte."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abi_specs import CoreError, builtin_spec
from abi_specs.check import check_bytes

from ..support import ARCHES, build_core

VMCORE = builtin_spec().get("vmcore")


@pytest.mark.parametrize("arch", ARCHES)
def test_valid_cores_are_accepted(arch: str) -> None:
    page = 65536 if arch.startswith("ppc") else 4096
    core = build_core(arch, page, pids=(7, 8, 9), ranges=((0, page), (0x200000 + 0x10, 3 * page)))
    summary = check_bytes(VMCORE, core)
    assert summary["arch"] == arch
    assert summary["page_size"] == page
    assert summary["pids"] == [7, 8, 9]
    assert summary["vmcoreinfo"]["OSRELEASE"] == "6.1.0-test"
    assert [ld["paddr"] for ld in summary["loads"]] == [0, 0x200010]


@given(
    arch=st.sampled_from(sorted(ARCHES)),
    pids=st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=6).map(tuple),
    ranges=st.lists(st.tuples(st.integers(0, 1 << 40), st.integers(1, 20000)), min_size=1, max_size=4).map(tuple),
)
def test_generated_valid_cores_are_accepted(arch, pids, ranges) -> None:
    core = build_core(arch, 4096, pids, ranges)
    summary = check_bytes(VMCORE, core)
    assert summary["cpus"] == len(pids) and summary["size"] == len(core)


def _flip(core: bytes, offset: int, value: bytes) -> bytes:
    return core[:offset] + value + core[offset + len(value):]


CORE = build_core()
_NOTES_END = 4096 + struct.unpack_from("<Q", CORE, 64 + 32)[0]


@pytest.mark.parametrize(
    ("problem", "core"),
    [
        ("not an ELF file", _flip(CORE, 0, b"\x7fELG")),
        ("not ELF64", _flip(CORE, 4, b"\x01")),
        ("not ET_CORE", _flip(CORE, 16, struct.pack("<H", 2))),
        ("machine", _flip(CORE, 18, struct.pack("<H", 40))),
        ("not the merged PT_NOTE", _flip(CORE, 64, struct.pack("<I", 1))),
        ("only one PT_NOTE", _flip(CORE, 64 + 56, struct.pack("<I", 4))),
        ("padding after the program headers", _flip(CORE, 64 + 3 * 56 + 5, b"\1")),
        ("padding after the notes", _flip(CORE, _NOTES_END + 3, b"\1")),
        ("slot", _flip(CORE, 64 + 56 + 8, struct.pack("<Q", 3 * 4096))),
        ("p_filesz", _flip(CORE, 64 + 56 + 32, struct.pack("<Q", 0x2000))),
        ("the headers describe", CORE + b"\0"),
        ("is not KEY=value", build_core(info="OSRELEASE=1\nBROKEN\n")),
        ("expected a hex value", build_core(info="SYMBOL(prb)=0xffff\nPAGESIZE=4096\n")),
        ("expected a dec value", build_core(info="PAGESIZE=4k\n")),
        ("does not end with a newline", build_core(info="PAGESIZE=4096")),
        ("not one the kernel writes", build_core(info="PAGESIZE=4096\nlowercase=1\n")),
        ("appears twice", build_core(info="PAGESIZE=4096\nPAGESIZE=4096\n")),
        ("no NT_PRSTATUS", build_core(pids=())),
        ("headers padded to the page", build_core(page=4096, info="PAGESIZE=65536\n")),
    ],
)
def test_broken_cores_name_the_rule(problem: str, core: bytes) -> None:
    with pytest.raises(CoreError) as info:
        check_bytes(VMCORE, core)
    assert problem in str(info.value)
    assert str(info.value).startswith("vmcore")


def test_prstatus_size_must_match_the_arch() -> None:
    ppc = build_core("ppc64le", 4096)
    x86_machine = _flip(ppc, 18, struct.pack("<H", 62))  # claims x86_64 with 504-byte notes
    with pytest.raises(CoreError, match="NT_PRSTATUS descriptor is 504 bytes, x86_64 has 336"):
        check_bytes(VMCORE, x86_machine)


def test_validator_reads_only_headers_and_padding() -> None:
    """A core with 1 TiB of PT_LOAD is validated without reading its memory."""
    small = bytearray(build_core(ranges=((0, 4096),)))
    # Grow the one PT_LOAD to 1 TiB: the file is a sparse stream the validator must not read.
    struct.pack_into("<QQ", small, 64 + 56 + 32, 1 << 40, 1 << 40)
    head = bytes(small[: 2 * 4096])

    class Sparse(io.RawIOBase):
        def __init__(self) -> None:
            self.pos = 0
            self.read_bytes = 0

        def seekable(self) -> bool:
            return True

        def seek(self, pos: int, whence: int = 0) -> int:
            self.pos = pos if whence == 0 else self.pos + pos
            return self.pos

        def tell(self) -> int:
            return self.pos

        def read(self, n: int = -1) -> bytes:
            out = head[self.pos:self.pos + n] if self.pos < len(head) else b""
            out += b"\0" * max(0, min(n, 2 * 4096 + (1 << 40) - self.pos) - len(out))
            self.read_bytes += len(out)
            self.pos += len(out)
            return out

    from abi_specs.vmcore import validate_core

    stream = Sparse()
    summary = validate_core(stream, VMCORE.core, 2 * 4096 + (1 << 40))
    assert summary.loads[0]["size"] == 1 << 40
    assert stream.read_bytes < 1 << 20


# -- the ELF header reader every core reader starts from --------------------------------


@pytest.mark.parametrize(("core", "problem"), [
    (_flip(CORE, 4, b"\x03"), "EI_CLASS/EI_DATA"),
    (_flip(CORE, 5, b"\x00"), "EI_CLASS/EI_DATA"),
    (CORE[:40], "unreadable ELF headers"),
    (CORE[:64 + 56 + 10], "unreadable program headers"),
    (_flip(CORE, 54, struct.pack("<H", 8)), "e_phentsize 8 is smaller"),
    (_flip(_flip(CORE, 56, struct.pack("<H", 0xFFFF)), 40, struct.pack("<Q", 0)), "unreadable program headers"),
])
def test_elf_headers_that_cannot_be_read_are_one_core_error(core: bytes, problem: str) -> None:
    from abi_specs.corehead import read_elf_headers

    with pytest.raises(CoreError, match=problem):
        read_elf_headers(io.BytesIO(core), "core")


@pytest.mark.parametrize("arch", ARCHES)
def test_elf_headers_read_as_pyelftools_reads_them(arch: str) -> None:
    from elftools.elf.elffile import ELFFile

    from abi_specs.corehead import read_elf_headers

    core = build_core(arch, 4096, pids=(1, 2), ranges=((0, 4096), (1 << 32, 8192)))
    ours, theirs = read_elf_headers(io.BytesIO(core), "core"), ELFFile(io.BytesIO(core))
    assert (ours.header, ours.little_endian, ours.elfclass) == (theirs.header, theirs.little_endian, theirs.elfclass)
    assert list(ours.phdrs) == [seg.header for seg in theirs.iter_segments()]


def test_extended_program_header_numbering_reads_the_count_from_section_zero() -> None:
    # e_phnum PN_XNUM (0xffff): the count is section 0's sh_info (gdb and the kernel write this past 65534).
    from abi_specs.corehead import read_elf_headers

    phnum = struct.unpack_from("<H", CORE, 56)[0]
    shdr = struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, phnum, 0, 0)  # sh_info = the real count
    core = _flip(_flip(_flip(_flip(CORE, 56, struct.pack("<H", 0xFFFF)), 40, struct.pack("<Q", len(CORE))),
                       58, struct.pack("<H", 64)), 60, struct.pack("<H", 1)) + shdr
    assert len(read_elf_headers(io.BytesIO(core), "core").phdrs) == phnum


def test_a_program_header_count_beyond_reason_is_refused_before_anything_is_read() -> None:
    # PN_XNUM and a section 0 claiming 2**32-1 program headers: a broken header, not 240 GB to read.
    from abi_specs.corehead import read_elf_headers

    shdr = struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0xFFFFFFFF, 0, 0)
    core = _flip(_flip(_flip(_flip(CORE, 56, struct.pack("<H", 0xFFFF)), 40, struct.pack("<Q", len(CORE))),
                       58, struct.pack("<H", 64)), 60, struct.pack("<H", 1)) + shdr
    with pytest.raises(CoreError, match="4294967295 program headers claimed"):
        read_elf_headers(io.BytesIO(core), "core")

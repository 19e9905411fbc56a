"""The /proc/vmcore layout validator, on ELF cores built here byte by byte."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abi_specs import CoreError, builtin_spec
from abi_specs.check import check_bytes

VMCORE = builtin_spec().get("vmcore")
ARCHES = {"x86_64": (62, "<", 336), "ppc64": (21, ">", 504), "ppc64le": (21, "<", 504)}


def _note(e: str, name: bytes, ntype: int, desc: bytes) -> bytes:
    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)
    return struct.pack(e + "III", len(name) + 1, len(desc), ntype) + pad(name + b"\0") + pad(desc)


def build_core(
    arch: str = "x86_64",
    page: int = 4096,
    pids: tuple[int, ...] = (1, 2),
    ranges: tuple[tuple[int, int], ...] = ((0, 0x3000), (0x100000, 0x1800)),
    info: str | None = None,
) -> bytes:
    """A core laid out as fs/proc/vmcore.c lays it out."""
    machine, e, prsize = ARCHES[arch]
    if info is None:
        info = f"OSRELEASE=6.1.0-test\nPAGESIZE={page}\nSYMBOL(init_uts_ns)=ffffffff82a0c000\nCRASHTIME=1700000000\n"
    notes = b""
    for pid in pids:
        desc = bytearray(prsize)
        struct.pack_into(e + "I", desc, 32, pid)
        notes += _note(e, b"CORE", 1, bytes(desc))
    notes += _note(e, b"VMCOREINFO", 0, info.encode())
    phnum = 1 + len(ranges)
    hdr_end = 64 + 56 * phnum
    note_off = -(-hdr_end // page) * page
    cursor = note_off + -(-len(notes) // page) * page
    phdrs = struct.pack(e + "IIQQQQQQ", 4, 0, note_off, 0, 0, len(notes), len(notes), 0)
    body = b""
    for paddr, size in ranges:
        in_page = paddr % page
        slot = -(-(in_page + size) // page) * page
        phdrs += struct.pack(e + "IIQQQQQQ", 1, 7, cursor + in_page, 0xFFFF888000000000 + paddr, paddr, size, size, 0)
        body += bytes(range(256)) * (slot // 256)
        cursor += slot
    ident = b"\x7fELF" + bytes([2, 1 if e == "<" else 2, 1, 0]) + b"\0" * 8
    ehdr = ident + struct.pack(e + "HHIQQQIHHHHHH", 4, machine, 1, 0, 64, 0, 0, 64, 56, phnum, 0, 0, 0)
    head = ehdr + phdrs
    return head + b"\0" * (note_off - len(head)) + notes + b"\0" * (-len(notes) % page) + body


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

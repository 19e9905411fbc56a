"""verify_dump: saved dumps (ELF, kdump-compressed, flattened) against their fixture, page by page.

Dumps are written by the real makedumpfile where it can (x86_64) and by a small
ELF writer here where a test needs a precise defect: a flipped byte, a dropped
PT_LOAD, a page moved to another address, a tail left out, memory outside RAM.
"""

from __future__ import annotations

import itertools
import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockfs.dumps import DumpFormatError, export_file, verify_dump
from mockfs.dumps.formats import FlatFile, bit_runs
from mockfs.machine import Fixture, VmcoreImage, new_fixture

from ..support import tool, write_dump

MiB = 1 << 20


def small(arch: str = "x86_64", seed: int = 1) -> Fixture:
    return new_fixture("kdump", arch=arch, memory=64 * MiB, cpus=2, messages=["hello", "crash"], seed=seed)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VmcoreImage, Path]]:
    """One 64 MiB x86_64 export shared by the module (tests copy it before damaging it)."""
    d = tmp_path_factory.mktemp("verify")
    img = VmcoreImage(small())
    export_file(img, d / "vmcore")
    yield img, d / "vmcore"


def write_elf(path: Path, img: VmcoreImage, loads: list[tuple[int, int, int]],
              content: Callable[[int, int], bytes] | None = None) -> None:
    """An ELF core of *img* with PT_LOADs (paddr, filesz, memsz); *content*(paddr, n) overrides memory."""
    arch = img.fixture.arch_info
    write_dump(path, img.fixture.arch, arch.direct_map, loads, content or img.phys_read)


# -- ELF --------------------------------------------------------------------------------------


def test_export_is_identical(exported: tuple[VmcoreImage, Path]) -> None:
    img, path = exported
    rep = verify_dump(img, path)
    pages = img.fixture.ram_size // img.page_size
    # The kernel-text PT_LOAD repeats part of the direct map: still one count per page.
    assert (rep.identical, rep.different, rep.misplaced, rep.missing, rep.excluded, rep.extra) == (pages, 0, 0, 0, 0, 0)
    assert rep.ok(complete=True) and rep.format == "elf"


def test_flipped_byte_is_one_different_page(exported: tuple[VmcoreImage, Path], tmp_path: Path) -> None:
    img, path = exported
    bad = tmp_path / "flipped"
    shutil.copyfile(path, bad)
    ph = img.layout.loads[-1]  # the direct-map PT_LOAD
    paddr = 0x2345678
    with open(bad, "r+b") as f:
        f.seek(ph.offset + paddr - ph.paddr)
        byte = f.read(1)[0]
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte ^ 0x40]))
    rep = verify_dump(img, bad)
    assert rep.different == 1 and rep.misplaced == 0 and not rep.ok()
    assert rep.problems[0].paddr == paddr & ~0xFFF and rep.problems[0].kind == "different"
    assert "+0x678" in rep.problems[0].detail


def test_missing_load_and_tail(tmp_path: Path) -> None:
    img = VmcoreImage(small())
    size = img.fixture.ram_size
    path = tmp_path / "partial"
    # RAM [0, 64M): first 32 MiB dumped, [32M, 48M) absent, [48M, 64M) with its last MiB excluded.
    write_elf(path, img, [(0, 32 * MiB, 32 * MiB), (48 * MiB, 15 * MiB, 16 * MiB)])
    rep = verify_dump(img, path)
    assert rep.missing == 16 * MiB // 4096 and rep.excluded == MiB // 4096
    assert rep.identical == (size - 17 * MiB) // 4096 and rep.different == 0
    assert rep.ok() and not rep.ok(complete=True)
    assert rep.excluded_ranges == [(63 * MiB, 64 * MiB)]
    assert [p.paddr for p in rep.problems if p.kind == "missing"] == [32 * MiB]


def test_misplaced_page(tmp_path: Path) -> None:
    img = VmcoreImage(small())
    src, dst = 0x3000000, 0x3456000

    def moved(paddr: int, n: int) -> bytes:
        data = bytearray(img.phys_read(paddr, n))
        if paddr <= dst < paddr + n:
            data[dst - paddr : dst - paddr + 4096] = img.phys_read(src, 4096)
        return bytes(data)

    path = tmp_path / "moved"
    write_elf(path, img, [(0, img.fixture.ram_size, img.fixture.ram_size)], moved)
    rep = verify_dump(img, path)
    assert rep.misplaced == 1 and rep.different == 0 and not rep.ok()
    assert rep.problems[0].paddr == dst and f"{src:#x}" in rep.problems[0].detail


def test_other_seed_is_different_not_misplaced(tmp_path: Path) -> None:
    img, other = VmcoreImage(small(seed=1)), VmcoreImage(small(seed=2))
    path = tmp_path / "other"
    write_elf(path, other, [(0, 16 * MiB, 16 * MiB)])
    rep = verify_dump(img, path)
    assert rep.different == 16 * MiB // 4096 and rep.misplaced == 0 and rep.identical == 0


def test_memory_outside_ram_is_extra(tmp_path: Path) -> None:
    img = VmcoreImage(small())
    path = tmp_path / "extra"
    size = img.fixture.ram_size
    write_elf(path, img, [(0, size, size), (size, MiB, MiB)], lambda p, n: img.pattern.fill(p, n))
    rep = verify_dump(img, path)
    assert rep.extra == MiB // 4096 and not rep.ok()


def test_big_endian_64k_pages(tmp_path: Path) -> None:
    img = VmcoreImage(small("ppc64"))
    export_file(img, tmp_path / "vmcore")
    rep = verify_dump(img, tmp_path / "vmcore")
    assert rep.identical == img.fixture.ram_size // 65536 and rep.ok(complete=True)


@pytest.mark.parametrize("data", [b"", b"hello", b"\x7fELF" + bytes(60), b"KDUMP   " + bytes(100),
                                  b"makedumpfile\0" + bytes(4000)])
def test_unreadable_dumps(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "dump"
    path.write_bytes(data)
    with pytest.raises(DumpFormatError) as exc:
        verify_dump(VmcoreImage(small()), path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_truncated_elf_dump(exported: tuple[VmcoreImage, Path], tmp_path: Path) -> None:
    img, path = exported
    cut = tmp_path / "cut"
    with open(path, "rb") as f, open(cut, "wb") as g:
        g.write(f.read(8 * MiB))
    with pytest.raises(DumpFormatError, match="truncated"):
        verify_dump(img, cut)


# -- makedumpfile ----------------------------------------------------------------------------


def makedumpfile(*args: str, stdout: Path | None = None) -> None:
    with open(stdout, "wb") if stdout else open(os.devnull, "wb") as out:
        res = subprocess.run([tool("makedumpfile"), *args], stdout=out, stderr=subprocess.PIPE, timeout=300)
    assert res.returncode == 0, res.stderr.decode()


def natural_zero_pages(img: VmcoreImage) -> set[int]:
    ps, zero, out = img.page_size, bytes(img.page_size), set()
    for start, size in img.fixture.ram:
        for pos in range(start, start + size, 4 * MiB):
            data = img.phys_read(pos, min(4 * MiB, start + size - pos))
            out |= {pos + i for i in range(0, len(data), ps) if data[i : i + ps] == zero}
    return out


def test_makedumpfile_elf_d0_is_complete(exported: tuple[VmcoreImage, Path], tmp_path: Path) -> None:
    img, path = exported
    makedumpfile("-E", "-d", "0", str(path), str(tmp_path / "out.elf"))
    rep = verify_dump(img, tmp_path / "out.elf")
    assert rep.ok(complete=True) and rep.identical == img.fixture.ram_size // 4096


def test_makedumpfile_compressed_d31_excludes_planted_pages(exported: tuple[VmcoreImage, Path], tmp_path: Path) -> None:
    img, path = exported
    fx = img.fixture
    makedumpfile("-c", "-d", "31", str(path), str(tmp_path / "dump"))
    rep = verify_dump(img, tmp_path / "dump")
    planted = set(fx.zero_pages + fx.free_pages + fx.cache_pages + fx.user_pages)
    assert len(planted) == 4
    assert set(rep.excluded_pages()) == planted | natural_zero_pages(img)
    assert rep.format == "kdump-compressed" and rep.ok(complete=True)
    assert rep.identical + rep.excluded == fx.ram_size // 4096


def test_makedumpfile_elf_d31_leaves_a_long_run_out(tmp_path: Path) -> None:
    """makedumpfile -E keeps short excluded runs in the file but ends a PT_LOAD's file data
    (p_filesz < p_memsz) before a run of 256 pages or more: those count as excluded."""
    fx = small().replace(free_pages=tuple(0x2000000 + i * 4096 for i in range(300)))
    img = VmcoreImage(fx)
    export_file(img, tmp_path / "vmcore")
    makedumpfile("-E", "-d", "31", str(tmp_path / "vmcore"), str(tmp_path / "out.elf"))
    rep = verify_dump(img, tmp_path / "out.elf")
    assert rep.excluded_ranges == [(0x2000000, 0x2000000 + 300 * 4096)]
    assert rep.identical == fx.ram_size // 4096 - 300 and rep.ok(complete=True)


def test_makedumpfile_flattened_reads_like_reassembled(exported: tuple[VmcoreImage, Path], tmp_path: Path) -> None:
    img, path = exported
    flat, joined = tmp_path / "dump.flat", tmp_path / "dump.joined"
    makedumpfile("-F", "-c", "-d", "31", str(path), stdout=flat)
    with open(flat, "rb") as f:
        subprocess.run([tool("makedumpfile"), "-R", str(joined)], stdin=f, capture_output=True, check=True, timeout=300)
    a, b = verify_dump(img, flat), verify_dump(img, joined)
    assert a.format == "flattened kdump-compressed" and b.format == "kdump-compressed"
    assert (a.identical, a.excluded, a.excluded_ranges) == (b.identical, b.excluded, b.excluded_ranges)
    assert a.ok(complete=True)
    # Reading in place gives the reassembled file byte for byte.
    with open(flat, "rb") as f:
        view = FlatFile(f, str(flat))
        data = joined.read_bytes()
        assert view.size == len(data) and view.pread(0, view.size) == data


def test_makedumpfile_flattened_elf(exported: tuple[VmcoreImage, Path], tmp_path: Path) -> None:
    img, path = exported
    makedumpfile("-F", "-E", "-d", "0", str(path), stdout=tmp_path / "elf.flat")
    rep = verify_dump(img, tmp_path / "elf.flat")
    assert rep.format == "flattened elf" and rep.ok(complete=True)


@pytest.mark.parametrize("compress", [False, True])
def test_kdump_format_with_a_damaged_page(exported: tuple[VmcoreImage, Path], tmp_path: Path, compress: bool) -> None:
    """The last byte of the file is the last page's data: raw, it is one different page;
    zlib-compressed, the stream no longer decodes and the error says so in one line."""
    img, path = exported
    dump = tmp_path / "dump"
    makedumpfile(*(["-c"] if compress else []), "-d", "0", str(path), str(dump))
    raw = bytearray(dump.read_bytes())
    raw[-1] ^= 0xFF
    dump.write_bytes(bytes(raw))
    if compress:
        with pytest.raises(DumpFormatError, match="zlib"):
            verify_dump(img, dump)
    else:
        rep = verify_dump(img, dump)
        assert rep.different == 1 and rep.problems[0].paddr == img.fixture.ram_end - 4096 and not rep.ok()


# -- building blocks (property tests) --------------------------------------------------------


@given(st.binary(max_size=64), st.integers(0, 600))
def test_bit_runs_matches_naive(bitmap: bytes, nbits: int) -> None:
    bits = [i for i in range(min(nbits, len(bitmap) * 8)) if bitmap[i >> 3] >> (i & 7) & 1]
    runs = bit_runs(bitmap, nbits)
    assert [i for a, b in runs for i in range(a, b)] == bits
    assert all(b < c for (_, b), (c, _) in itertools.pairwise(runs))  # maximal runs


@settings(max_examples=50)
@given(st.lists(st.tuples(st.integers(0, 300), st.binary(min_size=1, max_size=40)), max_size=12), st.data())
def test_flat_file_is_later_writes_win(tmp_path_factory: pytest.TempPathFactory, records: list[tuple[int, bytes]],
                                       data: st.DataObject) -> None:
    path = tmp_path_factory.mktemp("flat") / "f"
    expect = bytearray()
    with open(path, "wb") as f:
        f.write(b"makedumpfile".ljust(16, b"\0") + struct.pack(">qq", 1, 1))
        f.write(bytes(4096 - 32))
        for off, chunk in records:
            f.write(struct.pack(">qq", off, len(chunk)) + chunk)
            expect.extend(bytes(max(0, off + len(chunk) - len(expect))))
            expect[off : off + len(chunk)] = chunk
        f.write(struct.pack(">qq", -1, -1))
    with open(path, "rb") as f:
        view = FlatFile(f, str(path))
        assert view.size == len(expect)
        a = data.draw(st.integers(0, len(expect)))
        n = data.draw(st.integers(0, 400))
        assert view.pread(a, n) == bytes(expect[a : a + n])


@settings(max_examples=15)
@given(data=st.data())
def test_random_damage_is_counted_exactly(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    """Flip, move and drop random pages of a 64 MiB dump: every class is counted exactly."""
    img = VmcoreImage(small(seed=5))
    pages = img.fixture.ram_size // 4096
    chosen = data.draw(st.lists(st.integers(0, pages - 1), min_size=0, max_size=12, unique=True))
    split = data.draw(st.integers(0, len(chosen)))
    flips, moves = set(chosen[:split]), set(chosen[split:])
    # A hole of whole pages at the end of RAM (dropped from the dump).
    hole = data.draw(st.integers(0, 64)) * 4096
    flips = {p for p in flips if p * 4096 < img.fixture.ram_size - hole}
    moves = {p for p in moves if p * 4096 < img.fixture.ram_size - hole}

    def damaged(paddr: int, n: int) -> bytes:
        buf = bytearray(img.phys_read(paddr, n))
        for p in range(paddr // 4096, (paddr + n) // 4096):
            at = p * 4096 - paddr
            if p in flips:
                buf[at + 100] ^= 0x80
            elif p in moves:  # the pattern page of a page that is not there
                buf[at : at + 4096] = img.pattern.page((p + pages) * 4096)
        return bytes(buf)

    path = tmp_path_factory.mktemp("damage") / "dump"
    write_elf(path, img, [(0, img.fixture.ram_size - hole, img.fixture.ram_size - hole)], damaged)
    rep = verify_dump(img, path)
    assert (rep.different, rep.misplaced, rep.missing) == (len(flips), len(moves), hole // 4096)
    assert rep.identical == pages - len(flips) - len(moves) - hole // 4096
    assert rep.ok() == (not flips and not moves) and rep.ok(complete=True) == (rep.ok() and not hole)

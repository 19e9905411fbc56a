"""Exported cores read by real dump tools; outputs are compared with the fixture.

Exit codes lie (vmcore-dmesg exits 0 printing nothing or garbage), so every
check compares what a tool printed or wrote with what the fixture says. A
missing tool fails the test.
"""

from __future__ import annotations

import re
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import drgn
import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockfs.dumps import export_file
from mockfs.machine import Cpu, Fixture, LogRecord, Overlay, VmcoreImage, expected_dmesg, resolve_fixture
from mockfs.machine.kernel import KDATA_BASE

from ..support import tool

MiB = 1 << 20
ARCHES = ("x86_64", "ppc64", "ppc64le")
GDB_ARCH = {"x86_64": "i386:x86-64", "ppc64": "powerpc:common64", "ppc64le": "powerpc:common64"}
PC_SP = {"x86_64": ("rip", "rsp"), "ppc64": ("nip", "r1"), "ppc64le": ("nip", "r1")}
GDB_PC_SP = {"x86_64": ("$rip", "$rsp"), "ppc64": ("$pc", "$r1"), "ppc64le": ("$pc", "$r1")}


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, capture_output=True, timeout=timeout, check=False)


def make_fixture(arch: str, log_format: str = "ringbuffer", **changes: object) -> Fixture:
    fx = Fixture(
        name=f"t-{arch}",
        platform="kdump",
        arch=arch,
        ram=((0, 64 * MiB), (96 * MiB, 32 * MiB)),
        cpus=(
            Cpu(pid=3071, registers={PC_SP[arch][0]: 0xFFFF0000DEAD0010, PC_SP[arch][1]: 0x7FFE1234}),
            Cpu(pid=11, registers={PC_SP[arch][0]: 0x1234}),
            Cpu(pid=12),
        ),
        log=(LogRecord("Linux version mock", 0), LogRecord("sysrq: Trigger a crash", 95_123_456_789)),
        log_format=log_format,
        seed=0xABCDEF,
        zero_pages=(0x2000000, 0x2001000 if arch == "x86_64" else 0x2010000, 0x6100000),
        free_pages=(0x2200000, 0x6200000),
        cache_pages=(0x2300000,),
        user_pages=(0x2400000, 0x6400000),
        overlays=(Overlay(0x3000100, b"fixture overlay bytes"),),
    )
    return fx.replace(**changes)


@pytest.fixture
def tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vmcore-") as d:
        yield Path(d)


def exported(fx: Fixture, directory: Path) -> tuple[VmcoreImage, Path]:
    img = VmcoreImage(fx)
    path = directory / "vmcore"
    assert export_file(img, path) == img.size == path.stat().st_size
    return img, path


def sparse_export(img: VmcoreImage, path: Path) -> None:
    """Headers, notes and the kernel image only (holes elsewhere): enough for tools
    that read just kernel structures, without writing gigabytes for big fixtures."""
    with open(path, "wb") as f:
        f.truncate(img.size)
        f.write(img.read(0, img.header_size + len(img.notes)))
        k = img.kernel
        for ph in img.layout.loads:
            a, b = max(ph.paddr, k.image_start), min(ph.paddr + ph.size, k.image_end)
            if a < b:
                f.seek(ph.offset + a - ph.paddr)
                f.write(img.phys_read(a, b - a))


# -- strategies ---------------------------------------------------------------------------

printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120)
records = st.lists(st.builds(LogRecord, printable, st.integers(0, 10**13)), max_size=40)


@st.composite
def fixtures(draw: st.DrawFn) -> Fixture:
    arch = draw(st.sampled_from(ARCHES))
    ps = 4096 if arch == "x86_64" else 65536
    pids = draw(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=8, unique=True))
    reg_values = st.integers(0, 2**64 - 1)
    cpus = tuple(Cpu(pid=p, registers={PC_SP[arch][0]: draw(reg_values)}) for p in pids)
    first = draw(st.integers(32 * MiB // ps, 48 * MiB // ps)) * ps
    ram = [(0, first)]
    if draw(st.booleans()):
        gap = draw(st.integers(1, 64)) * ps
        ram.append((first + gap, draw(st.integers(1, 8 * MiB // ps)) * ps))
    return Fixture(
        name="hyp",
        platform="kdump",
        arch=arch,
        ram=tuple(ram),
        cpus=cpus,
        log=tuple(draw(records)),
        log_format=draw(st.sampled_from(["ringbuffer", "printk_log"])),
        seed=draw(st.integers(0, 2**64 - 1)),
    )


# -- vmcore-dmesg -------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("log_format", ["ringbuffer", "printk_log"])
def test_vmcore_dmesg(tmp: Path, arch: str, log_format: str) -> None:
    fx = make_fixture(arch, log_format)
    _, path = exported(fx, tmp)
    out = run(tool("vmcore-dmesg"), str(path))
    assert out.stdout.decode() == expected_dmesg(fx.log), out.stderr


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fx=fixtures())
def test_vmcore_dmesg_generated(tmp: Path, fx: Fixture) -> None:
    _, path = exported(fx, tmp)
    out = run(tool("vmcore-dmesg"), str(path))
    assert out.stdout.decode() == expected_dmesg(fx.log), out.stderr


# -- eu-readelf ---------------------------------------------------------------------------


def readelf_prstatus(path: Path) -> list[dict[str, int]]:
    text = run(tool("eu-readelf"), "-n", str(path)).stdout.decode()
    blocks = re.split(r"\n\s+CORE\s+\d+\s+PRSTATUS\n", text)[1:]
    out = []
    for block in blocks:
        block = block.split("VMCOREINFO")[0]
        fields = {k: int(v, 0) & (2**64 - 1) for k, v in re.findall(r"\b([a-z][a-z0-9_.]*):\s+(0x[0-9a-f]+|-?\d+)", block)}
        out.append(fields)
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fx=fixtures())
def test_eu_readelf_prstatus(tmp: Path, fx: Fixture) -> None:
    _, path = exported(fx, tmp)
    notes = readelf_prstatus(path)
    assert [n["pid"] for n in notes] == [c.pid for c in fx.cpus]
    pc = PC_SP[fx.arch][0]
    assert [n[pc] for n in notes] == [c.registers[pc] for c in fx.cpus]


def test_eu_readelf_vmcoreinfo(tmp: Path) -> None:
    fx = make_fixture("ppc64")
    img, path = exported(fx, tmp)
    text = run(tool("eu-readelf"), "-n", str(path)).stdout.decode()
    assert "OSRELEASE=5.15.0-mock" in text and f"SYMBOL(prb)={img.kernel.symbols['prb']:x}" in text


# -- gdb ----------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHES)
def test_gdb_registers_and_memory(tmp: Path, arch: str) -> None:
    fx = make_fixture(arch)
    img, path = exported(fx, tmp)
    va = fx.arch_info.direct_map + 0x3000100  # the overlay, then pattern
    pc, sp = GDB_PC_SP[arch]
    out = run(
        tool("gdb-multiarch"), "-nx", "-batch",
        "-ex", f"set architecture {GDB_ARCH[arch]}",
        "-ex", f"core-file {path}",
        "-ex", f"p/x {pc}", "-ex", f"p/x {sp}",
        "-ex", "info threads",
        "-ex", f"x/4gx {va:#x}",
        "-ex", f"x/2gx {fx.arch_info.direct_map + 0x3800000:#x}",
    ).stdout.decode()  # fmt: skip
    values = [int(v, 16) for v in re.findall(r"^\$\d+ = (0x[0-9a-f]+)", out, re.M)]
    regs = fx.cpus[0].registers
    assert values == [regs[PC_SP[arch][0]], regs[PC_SP[arch][1]]], out
    assert re.findall(r"LWP (\d+)", out.split("Target Id")[1]) == [str(c.pid) for c in fx.cpus]
    dumps = re.findall(r"^0x[0-9a-f]+:((?:[ \t]+0x[0-9a-f]{16})+)", out, re.M)
    words = [int(w, 16) for line in dumps for w in line.split()]
    raw = img.phys_read(0x3000100, 32) + img.phys_read(0x3800000, 16)
    assert raw.startswith(b"fixture overlay bytes")
    assert words == [int.from_bytes(raw[i : i + 8], fx.arch_info.byteorder) for i in range(0, 48, 8)], out


# -- makedumpfile (x86_64) ----------------------------------------------------------------


def test_makedumpfile_elf_d0(tmp: Path) -> None:
    fx = make_fixture("x86_64")
    img, path = exported(fx, tmp)
    out_path = tmp / "out.elf"
    res = run(tool("makedumpfile"), "-E", "-d", "0", str(path), str(out_path))
    assert out_path.exists(), res.stderr
    covered = 0
    with open(out_path, "rb") as f:
        elf = ELFFile(f)
        for seg in elf.iter_segments():
            h = seg.header
            if h.p_type != "PT_LOAD" or h.p_vaddr >= 0xFFFFFFFF80000000:
                continue
            assert h.p_filesz == h.p_memsz
            for pos in range(0, h.p_filesz, 4 * MiB):
                n = min(4 * MiB, h.p_filesz - pos)
                f.seek(h.p_offset + pos)
                assert f.read(n) == img.phys_read(h.p_paddr + pos, n), f"{h.p_paddr + pos:#x}"
            covered += h.p_filesz
    assert covered == fx.ram_size


@pytest.mark.parametrize("log_format", ["ringbuffer", "printk_log"])
def test_makedumpfile_dump_dmesg(tmp: Path, log_format: str) -> None:
    fx = make_fixture("x86_64", log_format)
    _, path = exported(fx, tmp)
    res = run(tool("makedumpfile"), "--dump-dmesg", str(path), str(tmp / "dmesg"))
    assert (tmp / "dmesg").exists(), res.stderr
    assert (tmp / "dmesg").read_text() == expected_dmesg(fx.log)


def kdump_excluded_pfns(path: Path) -> set[int]:
    """Page frames a kdump-compressed file leaves out, zero pages included.

    disk_dump_header: block_size at 428, sub_hdr_size, bitmap_blocks, max_mapnr;
    bitmap 1 (present) and 2 (dumped) follow the sub header; zero pages are
    dumped as one shared descriptor pointing at the first data page.
    """
    with open(path, "rb") as f:
        head = f.read(4096)
        assert head[:8] == b"KDUMP   "
        bs, sub, nblocks, max_mapnr = struct.unpack_from("<iiII", head, 428)
        f.seek(bs * (1 + sub))
        bitmaps = f.read(nblocks * bs)
        b1, b2 = bitmaps[: len(bitmaps) // 2], bitmaps[len(bitmaps) // 2 :]

        def bit(b: bytes, i: int) -> int:
            return (b[i >> 3] >> (i & 7)) & 1

        present = [i for i in range(max_mapnr) if bit(b1, i)]
        dumped = [i for i in present if bit(b2, i)]
        f.seek(bs * (1 + sub + nblocks))
        descs = f.read(24 * len(dumped))
    zero_offset = bs * (1 + sub + nblocks) + 24 * len(dumped)
    excluded = set(present) - set(dumped)
    for k, pfn in enumerate(dumped):
        if struct.unpack_from("<q", descs, 24 * k)[0] == zero_offset:
            excluded.add(pfn)
    return excluded


def zero_pfns(img: VmcoreImage) -> set[int]:
    ps = img.page_size
    zero = bytes(ps)
    out = set()
    for start, size in img.fixture.ram:
        for pos in range(start, start + size, 4 * MiB):
            n = min(4 * MiB, start + size - pos)
            data = img.phys_read(pos, n)
            out |= {(pos + i) // ps for i in range(0, n, ps) if data[i : i + ps] == zero}
    return out


def test_makedumpfile_c_d31_excludes_planted_pages(tmp: Path) -> None:
    fx = make_fixture("x86_64")
    img, path = exported(fx, tmp)
    out_path = tmp / "dump"
    res = run(tool("makedumpfile"), "-c", "-d", "31", str(path), str(out_path))
    assert out_path.exists(), res.stderr
    ps = fx.page_size
    planted = {a // ps for a in fx.free_pages + fx.cache_pages + fx.user_pages}
    expected = planted | zero_pfns(img)
    assert {a // ps for a in fx.zero_pages} <= expected
    assert kdump_excluded_pfns(out_path) == expected


def test_makedumpfile_builtin_kdump(tmp: Path) -> None:
    fx = resolve_fixture("kdump-x86_64")
    img, path = exported(fx, tmp)
    res = run(tool("makedumpfile"), "-c", "-d", "31", str(path), str(tmp / "dump"))
    assert (tmp / "dump").exists(), res.stderr
    ps = fx.page_size
    planted = {a // ps for a in fx.free_pages + fx.cache_pages + fx.user_pages}
    assert kdump_excluded_pfns(tmp / "dump") == planted | zero_pfns(img)
    res = run(tool("makedumpfile"), "--dump-dmesg", str(path), str(tmp / "dmesg"))
    assert (tmp / "dmesg").read_text() == expected_dmesg(fx.log), res.stderr


# -- drgn ---------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHES)
def test_drgn_physical_reads(tmp: Path, arch: str) -> None:
    fx = make_fixture(arch)
    img, path = exported(fx, tmp)
    prog = drgn.Program()
    prog.set_core_dump(str(path))
    for paddr, n in [(0x3000000, 4096), (0x3000100, 21), (0x2000000, 8192), (KDATA_BASE, 1024), (0x6123457, 9000)]:
        assert prog.read(paddr, n, True) == img.phys_read(paddr, n), hex(paddr)
    assert prog.read(0x3800000, img.page_size, True) == img.phys_read(0x3800000, img.page_size)
    assert img.page_origin(prog.read(0x3800000, img.page_size, True)) == 0x3800000
    if arch == "x86_64":  # virtual reads walk the fixture's page tables
        assert prog.read(0xFFFF888000000000 + 0x3800000, 64) == img.phys_read(0x3800000, 64)
        uts = img.kernel.symbols["init_uts_ns"]
        assert prog.read(uts + 4 + 65 * 2, len(fx.osrelease)) == fx.osrelease.encode()


# -- built-in fixtures (sparse export: kernel structures only) ----------------------------


@pytest.mark.parametrize("name", ["phyp-power6", "fadump-power9", "kdump-x86_64"])
def test_builtin_dmesg_and_notes(tmp: Path, name: str) -> None:
    fx = resolve_fixture(name)
    img = VmcoreImage(fx)
    path = tmp / "vmcore"
    sparse_export(img, path)
    out = run(tool("vmcore-dmesg"), str(path))
    assert out.stdout.decode() == expected_dmesg(fx.log), out.stderr
    assert [n["pid"] for n in readelf_prstatus(path)] == [c.pid for c in fx.cpus]

"""VmcoreImage layout and content, checked with pyelftools and the pattern decoder."""

from __future__ import annotations

import io
import random

from elftools.elf.elffile import ELFFile
from hypothesis import given, settings
from hypothesis import strategies as st

from abi_specs import builtin_spec
from abi_specs.corehead import parse_notes
from mockfs.machine import Cpu, Fixture, LogRecord, Overlay, VmcoreImage, page_origin, resolve_fixture

MiB, GiB, TiB = 1 << 20, 1 << 30, 1 << 40


def fixture(arch: str = "x86_64", **changes: object) -> Fixture:
    fx = Fixture(
        name="img",
        platform="kdump",
        arch=arch,
        ram=((0, 48 * MiB), (64 * MiB, 16 * MiB)),
        cpus=(Cpu(pid=10), Cpu(pid=11)),
        log=(LogRecord("x", 1),),
        seed=99,
        zero_pages=(0x2000000,),
        overlays=(Overlay(0x2100010, b"OVERLAY"), Overlay(0x2100014, b"LAP")),
    )
    return fx.replace(**changes)


def head_of(img: VmcoreImage) -> ELFFile:
    return ELFFile(io.BytesIO(img.read(0, img.header_size + 4 * img.page_size)))


def test_layout_like_proc_vmcore() -> None:
    for arch in ("x86_64", "ppc64", "ppc64le"):
        img = VmcoreImage(fixture(arch))
        ps = img.page_size
        elf = ELFFile(io.BytesIO(img.read(0, img.size)))
        assert elf.header.e_type == "ET_CORE"
        assert elf.little_endian == (arch != "ppc64")
        assert elf.header.e_machine == ("EM_X86_64" if arch == "x86_64" else "EM_PPC64")
        segs = list(elf.iter_segments())
        note = segs[0]
        assert note.header.p_type == "PT_NOTE" and [s.header.p_type for s in segs[1:]] == ["PT_LOAD"] * (len(segs) - 1)
        assert note.header.p_offset == -(-(64 + 56 * len(segs)) // ps) * ps
        assert note.header.p_vaddr == note.header.p_paddr == 0
        assert note.header.p_filesz == note.header.p_memsz == len(img.notes)
        pos = note.header.p_offset + -(-note.header.p_filesz // ps) * ps
        for seg in segs[1:]:
            h = seg.header
            assert h.p_filesz == h.p_memsz
            assert h.p_offset == pos + h.p_paddr % ps
            pos += -(-(h.p_paddr + h.p_memsz) // ps) * ps - (h.p_paddr - h.p_paddr % ps)
        assert pos == img.size
        loads = [(s.header.p_vaddr, s.header.p_paddr, s.header.p_memsz) for s in segs[1:]]
        if arch == "x86_64":
            assert loads[0][:2] == (0xFFFFFFFF81000000, 0x1000000)
            assert loads[1:] == [(0xFFFF888000000000 + s, s, z) for s, z in img.fixture.ram]
        else:
            assert loads == [(0xC000000000000000 + s, s, z) for s, z in img.fixture.ram]
        notes = [(n["n_name"], n["n_type"]) for n in note.iter_notes()]
        assert notes == [("CORE", "NT_PRSTATUS")] * 2 + [("VMCOREINFO", 0)]


def test_notes_content() -> None:
    img = VmcoreImage(fixture("ppc64", cpus=(Cpu(pid=5, registers={"nip": 0xC0DE}), Cpu(pid=6))))
    notes = [(n.name, n.type, n.desc) for n in parse_notes(img.notes, 0, "big", "notes")]
    ppc64 = builtin_spec().arch("ppc64")
    assert [len(d) for _, t, d in notes if t == 1] == [504, 504]
    assert [ppc64.prstatus_pid(d) for _, t, d in notes if t == 1] == [5, 6]
    assert int.from_bytes(notes[0][2][32:36], "big") == 5  # pr_pid: after siginfo, cursig and two sigsets
    assert notes[0][2][112 + 32 * 8 : 112 + 33 * 8] == (0xC0DE).to_bytes(8, "big")
    text = notes[-1][2].decode()
    for line in ("OSRELEASE=5.15.0-mock\n", "PAGESIZE=65536\n", "CRASHTIME=1700000000\n"):
        assert line in text
    assert f"SYMBOL(prb)={img.kernel.symbols['prb']:x}\n" in text


def test_memory_content() -> None:
    img = VmcoreImage(fixture())
    ps = img.page_size
    page = img.phys_read(0x3000000, ps)
    assert img.page_origin(page) == 0x3000000
    assert page_origin(page, seed=99, byteorder="little") == 0x3000000
    assert page_origin(page, seed=98, byteorder="little") is None
    assert img.page_origin(img.phys_read(0x3000008, ps)) is None  # misplaced by 8 bytes
    assert img.phys_read(0x2000000, ps) == bytes(ps)
    assert img.phys_read(0x2100010, 8) == b"OVERLAP\x00"[:4] + b"LAP" + img.phys_read(0x2100017, 1)
    # The kernel data region overrides the pattern; the memmap is generated too.
    k = img.kernel
    assert img.phys_read(k.image_start, len(k.image)) == k.image
    assert img.page_origin(img.phys_read(k.memmap_start, ps)) is None


@settings(max_examples=25, deadline=None)
@given(
    arch=st.sampled_from(["x86_64", "ppc64", "ppc64le"]),
    offset=st.integers(0, 90 * MiB),
    length=st.integers(0, 3 * MiB),
    cut=st.integers(0, 3 * MiB),
)
def test_reads_compose(arch: str, offset: int, length: int, cut: int) -> None:
    img = VmcoreImage(fixture(arch))
    whole = img.read(offset, length)
    assert len(whole) == max(0, min(length, img.size - offset))
    cut = min(cut, length)
    assert img.read(offset, cut) + img.read(offset + cut, length - cut) == whole


def test_file_offsets_map_to_pages() -> None:
    img = VmcoreImage(fixture("ppc64"))
    ps = img.page_size
    for ph in head_of(img).iter_segments():
        ph = ph.header
        if ph.p_type != "PT_LOAD":
            continue
        for paddr in range(ph.p_paddr, ph.p_paddr + ph.p_memsz, 4 * MiB):
            page = img.read(ph.p_offset + paddr - ph.p_paddr, ps)
            assert page == img.phys_read(paddr, ps)
            if img.page_origin(page) is not None:
                assert img.page_origin(page) == paddr
    assert img.read(img.size, 10) == b"" and img.read(img.size - 3, 10) == img.read(img.size - 3, 3)


def test_one_tib_fixture_is_lazy() -> None:
    fx = Fixture(name="tib", platform="kdump", arch="x86_64", ram=((0, TiB),), cpus=tuple(Cpu(pid=i) for i in range(64)))
    img = VmcoreImage(fx)
    assert img.size > TiB
    rnd = random.Random(1)
    for _ in range(20):
        paddr = rnd.randrange(img.kernel.end, TiB - MiB) // 4096 * 4096
        assert img.page_origin(img.phys_read(paddr, 4096)) == paddr
    assert len(img.read(img.size - MiB // 2, MiB)) == MiB // 2


def test_builtins_build() -> None:
    for name in ("phyp-power6", "fadump-power9", "kdump-x86_64"):
        img = VmcoreImage(resolve_fixture(name))
        assert head_of(img).num_segments() == img.layout.phnum == 1 + len(img.layout.loads)

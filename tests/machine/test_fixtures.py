"""Fixture model, manifests and the built-in fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from mockfs.machine import (
    Cpu,
    Fixture,
    FixtureError,
    LogRecord,
    PhypDump,
    builtin_fixture_names,
    dumps_fixture,
    load_fixture,
    resolve_fixture,
    write_fixture,
)

MiB, GiB = 1 << 20, 1 << 30


def small(**changes: object) -> Fixture:
    base = Fixture(
        name="small",
        platform="kdump",
        arch="x86_64",
        ram=((0, 64 * MiB),),
        cpus=(Cpu(pid=1, registers={"rip": 5}), Cpu(pid=2)),
        log=(LogRecord("hi", 1000),),
    )
    return base.replace(**changes)


def test_builtins_load() -> None:
    names = builtin_fixture_names()
    assert {"phyp-power6", "fadump-power9", "kdump-x86_64"} <= set(names)
    for name in names:
        fx = resolve_fixture(name)
        assert fx.name == name


def test_builtin_shapes() -> None:
    phyp = resolve_fixture("phyp-power6")
    assert (phyp.platform, phyp.arch, phyp.page_size, phyp.ram_size, len(phyp.cpus)) == ("phyp", "ppc64", 65536, 4 * GiB, 4)
    fa = resolve_fixture("fadump-power9")
    assert (fa.platform, fa.arch, fa.fadump is not None) == ("fadump", "ppc64le", True)
    kd = resolve_fixture("kdump-x86_64")
    assert (kd.platform, kd.arch, kd.page_size) == ("kdump", "x86_64", 4096)
    assert kd.log[0].text.startswith("Linux version") and kd.log[3].ts_nsec == 95_123_456_000


def test_phyp_layout_4g() -> None:
    lay = resolve_fixture("phyp-power6").phyp_layout()
    cpu, hpte, rmr = 0x10000, 0x1000000, 256 * MiB
    scratch = 4 * GiB - (cpu + hpte + rmr)
    assert lay.pairs() == (
        scratch, cpu, scratch + cpu, hpte, scratch + cpu + hpte, rmr, 256 * MiB, (4 * GiB - 256 * MiB) - (cpu + hpte + rmr)
    )  # fmt: skip
    assert lay.reserved_range == (256 * MiB, 4 * GiB - 256 * MiB)
    assert lay.scratch_range == (scratch, cpu + hpte + rmr)
    assert lay.scratch_start + lay.scratch_size == 4 * GiB  # at the top of RAM


def test_phyp_layout_large_ram_uses_five_percent() -> None:
    fx = Fixture(name="big", platform="phyp", arch="ppc64", ram=((0, 64 * GiB),), cpus=(Cpu(1),), phyp=PhypDump())
    lay = fx.phyp_layout()
    variable = (64 * GiB // 20) & ~(256 * MiB - 1)  # 3 GiB
    assert lay.reserve_start == variable == 3 * GiB
    assert lay.scratch_start == 64 * GiB - (0x10000 + 0x1000 + variable)
    assert lay.rmr_copy_len == 256 * MiB


@pytest.mark.parametrize(
    ("changes", "key", "problem"),
    [
        ({"cpus": (Cpu(7), Cpu(7))}, "cpus[1].pid", "duplicate pid 7"),
        ({"arch": "sparc"}, "arch", "unknown arch"),
        ({"ram": ((0, 1000),)}, "ram[0]", "not page aligned"),
        ({"cpus": (Cpu(1, {"nip": 1}),)}, "cpus[0].registers.nip", "no register"),
        ({"zero_pages": (123 * 4096, 123 * 4096)}, "pages.zero[1]", "already planted"),
        ({"free_pages": (1 << 40,)}, "pages.free[0]", "not in RAM"),
        ({"platform": "phyp"}, "arch", "runs on ppc64, not x86_64"),
    ],
)
def test_validation_errors(changes: dict[str, object], key: str, problem: str) -> None:
    with pytest.raises(FixtureError) as err:
        small(**changes).validate("fixtures/x.toml")
    assert err.value.key == key
    assert str(err.value).startswith(f"fixtures/x.toml: {key}: ")
    assert problem in str(err.value)


def test_round_trip(tmp_path: Path) -> None:
    for name in builtin_fixture_names():
        fx = resolve_fixture(name)
        path = tmp_path / f"{name}.toml"
        write_fixture(fx, path)
        assert load_fixture(path) == fx


BAD = [
    ("format = 2\n", "format", "unsupported format 2"),
    ('format = 1\nname = "x"\n', "platform", "missing required key"),
    ("format = [", "", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "key", "problem"), BAD)
def test_manifest_errors(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = tmp_path / "x.toml"
    path.write_text(text)
    with pytest.raises(FixtureError) as err:
        load_fixture(path)
    assert err.value.source == str(path) and err.value.key == key
    assert problem in str(err.value)


def test_manifest_key_errors(tmp_path: Path) -> None:
    good = dumps_fixture(small())
    cases = [
        (good.replace("pid = 2", "pid = 1"), "x.toml: cpus[1].pid: duplicate pid 1"),
        (good + "\ncolour = 1\n", "x.toml: colour: unknown key"),
        (good.replace('arch = "x86_64"', 'arch = "x86"'), "x.toml: arch: unknown arch 'x86'"),
        (good.replace("size = 67108864", 'size = "64 parsecs"'), "x.toml: ram[0].size: cannot read"),
        (good + '\n[[overlays]]\npaddr = 0\nfile = "nope.bin"\n', "x.toml: overlays[0].file: blob file 'nope.bin'"),
    ]
    for text, message in cases:
        path = tmp_path / "x.toml"
        path.write_text(text)
        with pytest.raises(FixtureError) as err:
            load_fixture(path)
        assert str(err.value).startswith(str(tmp_path / message.split(": ")[0]))
        assert str(err.value).endswith(message.split(": ", 1)[1]) or message.split(": ", 1)[1] in str(err.value)


def test_sizes_and_blobs(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(b"\x01\x02\x03")
    (tmp_path / "log.txt").write_text("[    1.500000] first\n[   12.000001] second one\n")
    (tmp_path / "m.toml").write_text(
        """format = 1
name = "m"
platform = "kdump"
arch = "x86_64"
ram = [{ start = 0, size = "64 MiB" }]
cpus = [{ pid = 9 }]
log = { file = "log.txt", records = [{ text = "third", ts_nsec = 13_000_000_000 }] }
[[overlays]]
paddr = "0x3000000"
file = "blob.bin"
"""
    )
    fx = load_fixture(tmp_path / "m.toml")
    assert fx.ram == ((0, 64 * MiB),)
    assert [r.text for r in fx.log] == ["first", "second one", "third"]
    assert fx.log[1].ts_nsec == 12_000_001_000
    assert fx.overlays[0].paddr == 0x3000000 and fx.overlays[0].data == b"\x01\x02\x03"


def test_resolve_unknown() -> None:
    with pytest.raises(FixtureError, match="no such fixture"):
        resolve_fixture("no-such-fixture")


def test_ram_must_hold_kernel_data() -> None:
    from mockfs.machine import VmcoreImage

    with pytest.raises(FixtureError, match="ram: RAM must hold the kernel data region"):
        VmcoreImage(small(ram=((0, 16 * MiB),)))
    with pytest.raises(FixtureError, match=r"pages.free\[0\]: 0x1000000 is inside the kernel data region"):
        VmcoreImage(small(free_pages=(0x1000000,)))

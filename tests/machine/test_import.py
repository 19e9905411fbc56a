"""Imported cores: a real ELF core becomes a fixture that serves exactly its bytes.

Also the atomic export every fixture goes through (mode 0600, ``.partial`` then
rename, nothing left behind on failure).
"""

from __future__ import annotations

import errno
import filecmp
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import given, settings
from hypothesis import strategies as st

from abi_specs.streams import ReadAtStream
from mockfs.dumps import (
    CoreImportError,
    ImportedCore,
    export_file,
    import_core,
    load_imported,
    open_image,
    write_imported,
)
from mockfs.dumps import export as export_module
from mockfs.machine import FixtureError, VmcoreImage, new_fixture, resolve_fixture

from ..support import gcore_of_sleep

MiB = 1 << 20


@pytest.fixture(scope="module")
def gcore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield gcore_of_sleep(tmp_path_factory.mktemp("gcore"))


def same_bytes(image: VmcoreImage | ImportedCore, path: Path, chunk: int = 4 * MiB) -> bool:
    """cmp(1) between an image and a file, streamed."""
    if image.size != path.stat().st_size:
        return False
    with open(path, "rb") as f:
        return all(image.read(off, chunk) == f.read(chunk) for off in range(0, image.size, chunk))


def test_gcore_round_trip(gcore: Path, tmp_path: Path) -> None:
    core = import_core(gcore)
    manifest = tmp_path / "sleep.toml"
    write_imported(core, manifest)
    loaded = load_imported(manifest)
    assert loaded.pieces == core.pieces and loaded.size == gcore.stat().st_size
    export_file(loaded, tmp_path / "out")
    assert filecmp.cmp(gcore, tmp_path / "out", shallow=False)
    # Memory is referenced, not copied: only headers and notes sit in the manifest.
    embedded = sum(p.size for p in core.pieces if p.data is not None)
    assert embedded < core.size // 4
    assert manifest.stat().st_size < core.size
    assert loaded.arch == "x86_64" and len(loaded.pids()) >= 1 and loaded.head.loads


def test_imported_core_reads_as_elf(gcore: Path) -> None:
    core = import_core(gcore)
    elf = ELFFile(ReadAtStream(core.read, core.size))
    with open(gcore, "rb") as f:
        real = ELFFile(f)
        assert [s.header for s in elf.iter_segments()] == [s.header for s in real.iter_segments()]


def test_exported_builtin_round_trip(tmp_path: Path) -> None:
    """The built-in kdump fixture (1.75 GiB): export, import, and the import serves the same bytes."""
    img = VmcoreImage(resolve_fixture("kdump-x86_64"))
    vmcore = tmp_path / "vmcore"
    export_file(img, vmcore)
    core = import_core(vmcore)
    write_imported(core, tmp_path / "m.toml")
    again = open_image(tmp_path / "m.toml")
    assert isinstance(again, ImportedCore) and again.size == img.size
    for off in range(0, img.size, 8 * MiB):
        assert again.read(off, 8 * MiB) == img.read(off, 8 * MiB), hex(off)
    assert again.pids() == [c.pid for c in img.fixture.cpus]
    assert again.head.vmcoreinfo()["OSRELEASE"] == img.fixture.osrelease


@settings(max_examples=6)
@given(arch=st.sampled_from(["x86_64", "ppc64", "ppc64le"]), seed=st.integers(0, 2**64 - 1),
       offset=st.integers(0, 80 * MiB), length=st.integers(0, 3 * MiB))
def test_import_of_generated_exports(tmp_path_factory: pytest.TempPathFactory, arch: str, seed: int,
                                     offset: int, length: int) -> None:
    d = tmp_path_factory.mktemp("gen")
    img = VmcoreImage(new_fixture("kdump", arch=arch, memory=64 * MiB, seed=seed))
    export_file(img, d / "vmcore")
    core = import_core(d / "vmcore")
    assert core.read(offset, length) == img.read(offset, length)
    assert same_bytes(core, d / "vmcore")


def test_open_image_kinds(gcore: Path, tmp_path: Path) -> None:
    assert isinstance(open_image("phyp-power6"), VmcoreImage)
    write_imported(import_core(gcore), tmp_path / "i.toml")
    assert isinstance(open_image(str(tmp_path / "i.toml")), ImportedCore)
    with pytest.raises(FixtureError):
        open_image(tmp_path / "nothing.toml")


def test_changed_core_is_refused(gcore: Path, tmp_path: Path) -> None:
    copy = tmp_path / "c.core"
    copy.write_bytes(gcore.read_bytes())
    write_imported(import_core(copy), tmp_path / "c.toml")
    data = bytearray(copy.read_bytes())
    data[0x20] ^= 1  # inside the embedded ELF header
    copy.write_bytes(bytes(data))
    with pytest.raises(FixtureError, match="changed since import"):
        load_imported(tmp_path / "c.toml")
    copy.write_bytes(bytes(data[:-1]))
    with pytest.raises(FixtureError, match=r"core\.size"):
        load_imported(tmp_path / "c.toml")


@pytest.mark.parametrize("edit", [
    lambda t: t.replace('kind = "imported-core"', 'kind = "imported-core"\nbogus = 1'),
    lambda t: t.replace("offset = 0\n", "offset = 1\n", 1),
    lambda t: t.replace("format = 1", "format = 2"),
    lambda t: t.replace("[core]", "[core]\nextra = 1"),
    lambda t: t.replace("hex = \"7f", "hex = \"zz", 1),
])  # fmt: skip
def test_broken_manifests(gcore: Path, tmp_path: Path, edit) -> None:
    manifest = tmp_path / "m.toml"
    write_imported(import_core(gcore), manifest)
    manifest.write_text(edit(manifest.read_text()))
    with pytest.raises(FixtureError) as exc:
        load_imported(manifest)
    assert str(manifest) in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("data", [b"", b"not an elf", b"\x7fELF\x02\x01\x01" + bytes(9)])
def test_not_a_core(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x"
    path.write_bytes(data)
    with pytest.raises(CoreImportError) as exc:
        import_core(path)
    assert str(path) in str(exc.value)


def test_executable_is_not_a_core() -> None:
    with pytest.raises(CoreImportError, match="ET_CORE"):
        import_core("/bin/sleep")


# -- atomic export ----------------------------------------------------------------------------


def test_export_mode_and_no_partial(tmp_path: Path) -> None:
    img = VmcoreImage(new_fixture("kdump", memory=64 * MiB))
    old = os.umask(0)
    try:
        out = tmp_path / "vmcore"
        seen: list[int] = []
        assert export_file(img, out, progress=seen.append) == img.size
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o600
    assert sum(seen) == img.size and max(seen) <= MiB
    assert not (tmp_path / "vmcore.partial").exists()
    assert same_bytes(img, out)


def test_export_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = VmcoreImage(new_fixture("kdump", memory=64 * MiB))
    out = tmp_path / "vmcore"
    out.write_bytes(b"previous")
    calls = 0
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(export_module.os, "write", full_disk)
    with pytest.raises(OSError) as exc:
        export_file(img, out)
    assert exc.value.errno == errno.ENOSPC
    assert out.read_bytes() == b"previous"  # untouched
    assert not (tmp_path / "vmcore.partial").exists()

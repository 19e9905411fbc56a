"""The fixture's kernel version decides the tree and how it behaves, as the kernel's history says."""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from pathlib import Path

import pytest

from mockfs.machine import FixtureError, builtin_fixture_names, resolve_fixture
from mockfs.machine.generate import MIN_MEMORY, new_fixture
from mockfs.machine.model import Fadump
from mockfs.session.machines import MachineDir
from mockfs.session.testbed import MockMount


def _fixture(platform: str, version: str, **kw: object):
    return new_fixture(platform, kw.pop("arch", None), MIN_MEMORY[platform], name=f"{platform}-{version}",
                       osrelease=f"{version}-mock")


def _listing(mock: MockMount, directory: str) -> dict[str, str]:
    """name -> 'link' / 'file' / 'dir' of a served directory."""
    out = {}
    for entry in os.scandir(mock.path(directory)):
        kind = "link" if entry.is_symlink() else "dir" if entry.is_dir() else "file"
        out[entry.name] = kind
    return out


@pytest.mark.parametrize(("version", "expected"), [
    # 3.4 to 5.6: the flat names only, plain files.
    ("5.6", {"fadump_enabled": "file", "fadump_registered": "file", "fadump_release_mem": "file"}),
    # 5.7: /sys/kernel/fadump/, the flat names become links.
    ("5.7", {"fadump_enabled": "link", "fadump_registered": "link", "fadump_release_mem": "link", "fadump": "dir"}),
])
def test_fadump_flat_names_become_links_in_5_7(version: str, expected: dict[str, str]) -> None:
    with MockMount(_fixture("fadump", version)) as mock:
        served = {k: v for k, v in _listing(mock, "/sys/kernel").items() if k.startswith("fadump")}
        assert served == expected
        # Either way the flat name reads and behaves as the file it is (or points at).
        assert mock.path("/sys/kernel/fadump_enabled").read_text() == "1\n"


@pytest.mark.parametrize(("version", "capture_files"), [
    ("5.15", {"enabled", "registered", "release_mem", "mem_reserved"}),
    ("6.10", {"enabled", "registered", "release_mem", "mem_reserved", "hotplug_ready"}),  # bootargs: armed only
    ("6.13", {"enabled", "registered", "release_mem", "mem_reserved", "hotplug_ready", "bootargs_append"}),
])
def test_fadump_files_by_version_in_the_capture_kernel(version: str, capture_files: set[str]) -> None:
    with MockMount(_fixture("fadump", version)) as mock:
        assert set(os.listdir(mock.path("/sys/kernel/fadump"))) == capture_files


def test_bootargs_append_in_the_armed_kernel_of_6_10(tmp_path: Path) -> None:
    mdir = MachineDir.create(tmp_path / "m", _fixture("fadump", "6.10"), "armed")
    with MockMount(machine=mdir, workdir=tmp_path / "w") as mock:
        assert "bootargs_append" in os.listdir(mock.path("/sys/kernel/fadump"))
        assert mock.path("/sys/kernel/fadump/hotplug_ready").read_text() == "1\n"


@pytest.mark.parametrize(("version", "present"), [
    ("5.15", set()),
    ("6.6", {"crash_elfcorehdr_size"}),
    ("6.19", {"crash_elfcorehdr_size", "kexec"}),
])
def test_kdump_files_by_version(version: str, present: set[str]) -> None:
    with MockMount(_fixture("kdump", version, arch="x86_64")) as mock:
        names = set(os.listdir(mock.path("/sys/kernel")))
        assert {"crash_elfcorehdr_size", "kexec"} & names == present
        hotplug = mock.path("/sys/devices/system/cpu/crash_hotplug")
        assert hotplug.exists() == (version != "5.15")
        if version == "6.19":
            # The new home of the kexec files, with the old names as links to them.
            assert set(os.listdir(mock.path("/sys/kernel/kexec"))) == {"loaded", "crash_loaded", "crash_size",
                                                                      "crash_elfcorehdr_size"}
            assert os.readlink(mock.path("/sys/kernel/kexec_crash_size")) == "kexec/crash_size"
            assert mock.path("/sys/kernel/kexec_crash_size").read_text() == "0\n"
        else:
            assert stat.S_ISREG(os.lstat(mock.path("/sys/kernel/kexec_crash_size")).st_mode)
        if version != "5.15":
            size = int(mock.path("/sys/kernel/crash_elfcorehdr_size").read_text())
            assert size == 64 + (len(mock.fixture.cpus) + 2 + 8192) * 56


@pytest.mark.parametrize(("version", "all_ones"), [
    ("5.15", errno.EINVAL),  # compares the raw value first
    ("5.15.121", 0),  # the 2023 backport: rounds up first, wraps to 0
    ("6.1", errno.EINVAL),
    ("6.5", 0),
])
def test_kexec_crash_size_all_ones_follows_the_version(version: str, all_ones: int, tmp_path: Path) -> None:
    mdir = MachineDir.create(tmp_path / "m", _fixture("kdump", version, arch="x86_64"), "armed")
    with MockMount(machine=mdir, workdir=tmp_path / "w") as mock:
        path = mock.path("/sys/kernel/kexec_crash_size")
        before = int(path.read_text())
        assert before == 256 << 20
        fd = os.open(path, os.O_WRONLY)
        try:
            if all_ones:
                with pytest.raises(OSError) as info:
                    os.write(fd, b"0xffffffffffffffff")
                assert info.value.errno == all_ones
            else:
                assert os.write(fd, b"0xffffffffffffffff") == 18
        finally:
            os.close(fd)
        assert int(path.read_text()) == (before if all_ones else 0)


def test_fadump_machines_have_the_kexec_files_reading_zero() -> None:
    with MockMount(_fixture("fadump", "5.15")) as mock:
        for name in ("kexec_loaded", "kexec_crash_loaded", "kexec_crash_size"):
            assert mock.path(f"/sys/kernel/{name}").read_text() == "0\n", name


def test_open_refuses_what_the_mode_does_not_allow_root_included(tmp_path: Path) -> None:
    with MockMount(_fixture("fadump", "5.15")) as mock:
        with pytest.raises(PermissionError):
            os.open(mock.path("/sys/kernel/fadump/enabled"), os.O_WRONLY)  # 0444
        with pytest.raises(PermissionError):
            os.open(mock.path("/sys/kernel/fadump/release_mem"), os.O_RDWR)  # 0200
        os.close(os.open(mock.path("/sys/kernel/fadump/release_mem"), os.O_WRONLY))
        kinds = [(op["path"], op["op"], op.get("errno")) for op in mock.trace() if op["op"] == "open"]
        assert ("/sys/kernel/fadump/enabled", "open", "EACCES") in kinds


def test_phyp_dump_active_has_no_store_method(tmp_path: Path) -> None:
    """A write bit (0600) but no store: the open succeeds, the write fails with EIO."""
    mdir = MachineDir.create(tmp_path / "m", _fixture("phyp", "2.6.32"), "armed")
    with MockMount(machine=mdir, workdir=tmp_path / "w") as mock:
        path = mock.path("/sys/kernel/phyp_dump_active")
        assert path.read_text() == "1\n"
        fd = os.open(path, os.O_WRONLY)
        try:
            with pytest.raises(OSError) as info:
                os.write(fd, b"0\n")
        finally:
            os.close(fd)
        assert info.value.errno == errno.EIO


def test_phyp_exists_only_in_the_kernels_that_had_it() -> None:
    with pytest.raises(FixtureError, match=r"osrelease: pSeries hypervisor-assisted dump \(phyp dump\) is in Linux "
                       r"2.6.26 up to \(not including\) 3.4, not in 3.4"):
        _fixture("phyp", "3.4")
    with pytest.raises(FixtureError, match="osrelease"):
        _fixture("fadump", "3.3")
    assert _fixture("phyp", "2.6.26").osrelease == "2.6.26-mock"


def test_st_size_is_the_fixtures_page() -> None:
    with MockMount(_fixture("phyp", "2.6.32")) as mock:
        assert os.stat(mock.path("/sys/kernel/release_region")).st_size == 65536
    with MockMount(_fixture("kdump", "6.1", arch="x86_64")) as mock:
        assert os.stat(mock.path("/sys/kernel/kexec_crash_size")).st_size == 4096


@pytest.mark.parametrize(("version", "reserved", "destination"), [
    # 5.7 to 5.18: PAGE_ALIGN(c + h + b + f + e + p * (n + 3)); the copy right after the HPTE.
    ("5.14", 0x30020000, 0x30000000 + 0x11000),
    # 5.19 to 6.9: the CPU state and HPTE page aligned, then boot memory, the header and ELF headers, aligned.
    ("5.19", 0x30030000, 0x30020000),
    # 6.10: no ELF headers any more, and the total is not page aligned.
    ("6.10", 0x30020000 + 680, 0x30020000),
])
def test_fadump_numbers_agree_with_the_firmware_header(version: str, reserved: int, destination: int) -> None:
    """mem_reserved, the boot memory's destination in ibm,kernel-dump and the boot log: one layout."""
    from abi_specs import builtin_spec

    spec = builtin_spec()
    base = new_fixture("fadump", None, "8G", name="f", osrelease=f"{version}-mock")
    fixture = dataclasses.replace(base, fadump=Fadump(768 << 20)).validate()  # crashkernel=768M
    with MockMount(fixture) as mock:
        assert int(mock.path("/sys/kernel/fadump/mem_reserved").read_text()) == reserved
        entry = spec.get("ibm,kernel-dump")
        header = entry.cells.unpack(mock.path(entry.path).read_bytes())
        real_mode = [r for r in header["records"] if r["source_type"] == entry.constants["source_type"]["REAL_MODE_REGION"]]
        assert [(r["destination_address"], r["source_length"]) for r in real_mode] == [(destination, 768 << 20)]
    areas = fixture.fadump_areas()
    assert areas.reserve_start == 0x30000000  # right above boot memory
    generated = new_fixture("fadump", None, "8G", name="g", osrelease=f"{version}-mock")
    line = f"fadump: Reserved {generated.fadump_areas().reserve_size >> 20}MB of memory at 0x00000014000000 (System RAM: 8192MB)"
    assert line in [rec.text for rec in generated.log]


def test_a_stated_reservation_must_agree() -> None:
    base = new_fixture("fadump", None, "8G", name="f", osrelease="5.14.0-mock")
    with pytest.raises(FixtureError, match=r"fadump.reserve_size: 0x40000000, but Linux 5.14.0-mock's fadump gives "
                       r"0x30020000 for 0x30000000 bytes of boot memory"):
        dataclasses.replace(base, fadump=Fadump(768 << 20, 0x30000000, 1 << 30)).validate()


@pytest.mark.parametrize("name", [n for n in builtin_fixture_names() if resolve_fixture(n).platform == "fadump"])
def test_builtin_fadump_log_states_the_models_reservation(name: str) -> None:
    # The built-in's boot log is written by hand in its manifest: it must say what the model reserves.
    from abi_specs.fadump import reservation_log_line

    fixture = resolve_fixture(name)
    areas = fixture.fadump_areas()
    line = reservation_log_line(fixture.version, areas.reserve_size, areas.reserve_start, fixture.ram_size)
    assert line in [record.text for record in fixture.log]

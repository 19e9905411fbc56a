"""The live machine without FUSE: every errno it raises is one the spec documents."""

from __future__ import annotations

import pytest

from abi_specs import WriteRejected
from mockfs.live import LiveMachine
from mockfs.machine import VmcoreImage, resolve_fixture

WRITES = [
    ("fadump-power9", "fadump/registered", b"1\n"),  # a dump is active: EPERM
    ("fadump-power9", "fadump/bootargs_append", b"x\n"),  # EPERM
    ("fadump-power9", "fadump/release_mem", b"2\n"),  # EINVAL
    ("fadump-power9", "fadump/registered", b"one\n"),  # EPERM before parsing, as the kernel checks
    ("kdump-x86_64", "kexec_crash_size", b"4096\n"),  # larger than the current size: EINVAL
    ("kdump-x86_64", "kexec_crash_size", b"nope"),  # EINVAL
    ("phyp-power6", "release_region", b"10"),  # EINVAL
]


@pytest.mark.parametrize(("fixture", "name", "data"), WRITES)
def test_write_errors_are_documented(fixture: str, name: str, data: bytes) -> None:
    machine = LiveMachine(VmcoreImage(resolve_fixture(fixture)))
    entry = machine.spec.get(name)
    with pytest.raises(WriteRejected) as info:
        machine.write_file(entry, data)
    assert info.value.errno in {e.number for e in entry.errors}, (name, info.value)


def test_release_mem_twice_is_eperm_and_documented() -> None:
    machine = LiveMachine(VmcoreImage(resolve_fixture("fadump-power9")))
    entry = machine.spec.get("fadump/release_mem")
    assert machine.write_file(entry, b"1\n") == 2
    with pytest.raises(WriteRejected) as info:
        machine.write_file(entry, b"1\n")
    assert info.value.errno in {e.number for e in entry.errors}


def test_sysfs_write_limits_follow_the_platform() -> None:
    phyp = LiveMachine(VmcoreImage(resolve_fixture("phyp-power6")))
    entry = phyp.spec.get("release_region")
    assert phyp.write_file(entry, b"") == 0  # store() is not called
    big = b"0x10000000 0x10000 " + b" " * 70000
    assert phyp.write_file(entry, big) == 65536 - 1  # 2.6-era sysfs: PAGE_SIZE - 1 (64 KiB pages)

"""The FUSE mock through real mounts and real system calls."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abi_specs import builtin_spec
from mockfs.live.memory import REUSED_FILL
from mockfs.machine import builtin_fixture_names
from mockfs.session.testbed import MockMount

from ..support import write_once as write

SPEC = builtin_spec()


@pytest.mark.parametrize("name", builtin_fixture_names())
def test_tree_is_the_spec(name: str) -> None:
    with MockMount(name) as mock:
        platform = mock.fixture.platform
        version = mock.fixture.version
        state = SPEC.lifecycle(platform).captured(version)
        files = SPEC.files_for(platform, state, version)
        expected = {f.path for f in files if not f.directory}
        # /proc/sys mirrors the host's sysctls: only its presence is the spec's.
        served = {"/" + str(p.relative_to(mock.root)) for p in mock.root.rglob("*")
                  if (not p.is_dir() or p.is_symlink()) and not p.is_relative_to(mock.root / "proc/sys")}
        assert served == expected
        assert (mock.root / "proc/sys/kernel/panic_on_oops").is_file()
        for f in files:
            st_ = os.lstat(mock.path(f.path))
            assert st_.st_uid == 0 and st_.st_gid == 0
            if f.is_link_in(version):
                assert stat.S_ISLNK(st_.st_mode)
                assert os.readlink(mock.path(f.path)) == f.link_to
                continue
            assert stat.S_IMODE(st_.st_mode) == f.mode, f.path
            if f.directory:
                assert stat.S_ISDIR(st_.st_mode), f.path
                continue
            if f.kind == "attribute":
                assert st_.st_size == mock.fixture.page_size  # sysfs: a page, 64 KiB on ppc64
        assert os.stat(mock.path("/proc/vmcore")).st_size == mock.image.size
    assert not any(" fuse" in line and str(mock.root) in line for line in Path("/proc/mounts").read_text().splitlines())


@pytest.mark.parametrize("name", builtin_fixture_names())
def test_every_readable_file_passes_check(name: str, cli) -> None:
    with MockMount(name) as mock:
        version = mock.fixture.version
        state = SPEC.lifecycle(mock.fixture.platform).captured(version)
        for f in SPEC.files_for(mock.fixture.platform, state, version):
            if f.read is None and f.kind in ("attribute", "procfs"):
                continue
            proc = cli("check", str(mock.path(f.path)), "--json")
            assert proc.returncode == 0, (f.path, proc.stderr)


@settings(max_examples=60)
@given(offset=st.integers(0, 5 << 30), length=st.sampled_from([1, 4095, 4096, 65536, 1 << 20, 1048560, 3 << 20]))
def test_vmcore_bytes_are_the_image(vmcore_mock, offset: int, length: int) -> None:
    mock = vmcore_mock
    offset %= mock.image.size + 10
    with open(mock.path("/proc/vmcore"), "rb", buffering=0) as f:
        got = os.pread(f.fileno(), length, offset)
    assert got == mock.image.read(offset, length)


@pytest.fixture(scope="module")
def vmcore_mock():
    with MockMount("phyp-power6") as mock:
        yield mock


def test_release_region_lifecycle() -> None:
    with MockMount("phyp-power6") as mock:
        rr = mock.path("/sys/kernel/release_region")
        lay = mock.fixture.phyp_layout()
        # The kernel's own header: offsets and zero lengths; only the reserved remainder is an area.
        assert rr.read_text() == "CPU:0x0-0x0: HPTE:0x10000-0x0: DUMP:0x1010000-0x0, 0x10000000-0xdeff0000:\n"
        assert not mock.path("/sys/kernel/phyp_dump_active").exists()
        with open(mock.path("/proc/vmcore"), "rb") as f:
            while f.read(8 << 20):
                pass
        ranges = list(zip(lay.pairs()[::2], lay.pairs()[1::2]))
        for start, length in ranges:
            assert write(rr, f"{start:#x} {length:#x}\n".encode()) == len(f"{start:#x} {length:#x}\n")
        # Every range released: the kernel registers a new dump area and creates phyp_dump_active;
        # registering added the scratch address to the three destinations, once.
        assert mock.path("/sys/kernel/phyp_dump_active").read_text() == "1\n"
        base = lay.scratch_start
        assert rr.read_text() == (f"CPU:{base:#x}-0x0: HPTE:{base + 0x10000:#x}-0x0: DUMP:{base + 0x1010000:#x}-0x0, "
                                  "0x10000000-0xdeff0000:\n")
        # Released memory reads as what the new owner wrote, never the saved data.
        with open(mock.path("/proc/vmcore"), "rb") as f:
            f.seek(mock.image.size - 4096)
            assert f.read(4096) == bytes([REUSED_FILL]) * 4096
    report = mock.report
    assert report["reregistered"] is True
    kinds = [v["kind"] for v in mock.violations]
    assert kinds == ["read-released"], kinds


def test_malformed_write_is_einval_and_recorded() -> None:
    with MockMount("phyp-power6") as mock:
        rr = mock.path("/sys/kernel/release_region")
        with pytest.raises(OSError) as info:
            write(rr, b"0x10000000,0x10000\n")
        assert info.value.errno == errno.EINVAL
        assert write(rr, b"") == 0
        trace = mock.trace()
    bad = [t for t in trace if t["op"] == "write" and t.get("errno") == "EINVAL"]
    assert bad and bad[0]["path"] == "/sys/kernel/release_region" and bad[0]["comm"]
    assert {"time", "pid", "comm", "path", "op", "offset", "length", "result"} <= set(bad[0])
    assert [v["kind"] for v in mock.violations][:1] == ["malformed-write"]


def test_release_judged_on_what_was_asked() -> None:
    with MockMount("phyp-power6") as mock:
        lay = mock.fixture.phyp_layout()
        rr = mock.path("/sys/kernel/release_region")
        write(rr, f"{lay.reserve_start + 0x800:#x} 0x10000".encode())  # unaligned, never read
        write(rr, f"{lay.reserve_start:#x} 0x20000".encode())  # overlaps the first
        write(rr, b"0x0 0x1000")  # outside the reserved area
    kinds = {v["kind"] for v in mock.violations}
    assert {"release-unaligned", "release-unread", "release-overlap", "release-outside-reserved", "memory-held"} <= kinds


def test_fadump_release_mem_removes_vmcore() -> None:
    with MockMount("fadump-power9") as mock:
        reg = mock.path("/sys/kernel/fadump/registered")
        with pytest.raises(OSError) as info:
            write(reg, b"1\n")
        assert info.value.errno == errno.EPERM  # a dump is active
        assert mock.path("/sys/kernel/fadump_release_mem").exists()
        with pytest.raises(OSError) as info:
            write(mock.path("/sys/kernel/fadump/release_mem"), b"2\n")
        assert info.value.errno == errno.EINVAL
        assert write(mock.path("/sys/kernel/fadump_release_mem"), b"1\n") == 2  # through the compat link
        assert not mock.path("/proc/vmcore").exists()
        with pytest.raises(OSError) as info:
            write(mock.path("/sys/kernel/fadump/release_mem"), b"1\n")
        assert info.value.errno == errno.EPERM
        assert write(reg, b"1\n") == 2
        assert reg.read_text() == "1\n"
    kinds = [v["kind"] for v in mock.violations]
    assert "release-unread" in kinds and "memory-held" not in kinds


def test_vmcore_opened_before_release_mem_reads_eio_after_it() -> None:
    """fs/proc/inode.c: once release_mem removed the entry, a descriptor opened before fails its reads."""
    with MockMount("fadump-power9") as mock:
        fd = os.open(mock.path("/proc/vmcore"), os.O_RDONLY)
        try:
            assert os.pread(fd, 64, 0)[:4] == b"\x7fELF"
            assert write(mock.path("/sys/kernel/fadump/release_mem"), b"1\n") == 2
            assert not mock.path("/proc/vmcore").exists()
            for offset in (0, 1 << 20):  # what was read before, and what was not
                with pytest.raises(OSError) as info:
                    os.pread(fd, 4096, offset)
                assert info.value.errno == errno.EIO
        finally:
            os.close(fd)
        eio = [t for t in mock.trace() if t["op"] == "read" and t.get("errno") == "EIO"]
        assert eio and eio[0]["path"] == "/proc/vmcore"


def test_vmcore_is_root_only() -> None:
    with MockMount("kdump-x86_64") as mock:
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat",
                               str(mock.path("/proc/vmcore"))], capture_output=True)
        assert proc.returncode != 0
        assert b"Permission denied" in proc.stderr


def test_faults() -> None:
    with MockMount("kdump-x86_64", faults=["eio:0x100000-0x200000", "short:1000"]) as mock:
        fd = os.open(mock.path("/proc/vmcore"), os.O_RDONLY)
        try:
            assert len(os.pread(fd, 65536, 0)) == 1000
            with pytest.raises(OSError) as info:
                os.pread(fd, 4096, 0x180000)
            assert info.value.errno == errno.EIO
        finally:
            os.close(fd)
    with MockMount("kdump-x86_64", faults=["kill-after:4M"]) as mock:
        proc = subprocess.run(["dd", f"if={mock.path('/proc/vmcore')}", "of=/dev/null", "bs=1M"], capture_output=True)
        assert proc.returncode == -9
        kills = [t for t in mock.trace() if t["op"] == "kill"]
        assert kills and kills[0]["comm"] == "dd"


def test_report_is_json(tmp_path: Path) -> None:
    with MockMount("kdump-x86_64", workdir=tmp_path) as mock:
        mock.path("/sys/kernel/kexec_crash_size").write_text("0\n")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["fixture"] == "kdump-x86_64" and report["violations"] == []


def test_release_region_writes_show_in_the_trace_as_they_happen() -> None:
    """Each write's trace line, while still mounted: the kernel's result, frames freed, the counters."""
    with MockMount("phyp-power6") as mock:
        lay = mock.fixture.phyp_layout()
        rr = mock.path("/sys/kernel/release_region")
        start = lay.second_addr
        write(rr, f"{start:#x} 0x20000\n".encode())
        write(rr, f"{start:#x} 0x20000\n".encode())  # again: the kernel walks the frames, but frees none
        lines = [op for op in mock.trace() if op["op"] == "write" and op["path"] == "/sys/kernel/release_region"]
        assert [op["result"] for op in lines] == [len(f"{start:#x} 0x20000\n")] * 2
        first, again = lines
        # 64 KiB pages: 0x20000 is two pages; the inclusive end page makes the kernel walk three.
        assert (first["pages"], first["frames_freed"]) == (3, 3)
        assert (again["pages"], again["frames_freed"]) == (3, 0)
        assert first["counters"] == {"reserved": 0x20000, "scratch": 0}
        assert again["counters"] == {"reserved": 0x40000, "scratch": 0}
        assert first["reregistered"] is False

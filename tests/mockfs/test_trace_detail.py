"""What a collector's author sees of release_region writes: each trace line its own write's
detail, the re-registration as it happens, and memory-held counting the frames still reserved."""

from __future__ import annotations

import itertools

from abi_specs import builtin_spec
from mockfs.live import LiveMachine
from mockfs.machine import Cpu, Fixture, PhypDump, VmcoreImage
from mockfs.session.testbed import MockMount

from ..support import write_once as write

MiB = 1 << 20
#: A small phyp machine with 64 KiB pages (the built-in ones are GiBs).
SMALL = Fixture(name="phyp-trace", platform="phyp", arch="ppc64", ram=[(0, 576 * MiB)], cpus=[Cpu(1)],
                phyp=PhypDump(hpte_size=0x1000), seed=11)
SPEC = builtin_spec()
DETAIL = ("frames_freed", "pages", "counters", "reregistered")


def writes(mock: MockMount) -> list[dict[str, object]]:
    return [op for op in mock.trace() if op["op"] == "write"]


def test_each_trace_line_carries_its_own_writes_detail() -> None:
    with MockMount(SMALL) as mock:
        lay = mock.fixture.phyp_layout()
        rr = mock.path("/sys/kernel/release_region")
        text = f"{lay.second_addr:#x} 0x20000\n".encode()
        assert write(rr, text) == len(text)
        assert write(mock.path("/proc/sys/kernel/panic_on_oops"), b"1\n") == 2
        lines = writes(mock)
    release, sysctl = lines
    assert (release["path"], release["pages"], release["frames_freed"]) == ("/sys/kernel/release_region", 3, 3)
    assert release["counters"] == {"reserved": 0x20000, "scratch": 0} and release["reregistered"] is False
    assert (sysctl["path"], sysctl["result"]) == ("/proc/sys/kernel/panic_on_oops", 2)
    assert not set(DETAIL) & set(sysctl), sysctl  # not the release before it


def test_an_empty_write_reports_nothing_of_the_release_before_it() -> None:
    """The kernel's FUSE never passes an empty write on, so this one goes to the machine directly."""
    machine = LiveMachine(VmcoreImage(SMALL))
    lay, rr = SMALL.phyp_layout(), SPEC.get("release_region")
    count, detail = machine.write_traced(rr, f"{lay.second_addr:#x} 0x20000\n".encode())
    assert detail["frames_freed"] == 3 and count > 0
    assert machine.write_traced(rr, b"") == (0, {})  # sysfs answers without calling store()


def test_the_trace_shows_the_reregistration_when_it_happens() -> None:
    with MockMount(SMALL) as mock:
        lay = mock.fixture.phyp_layout()
        rr = mock.path("/sys/kernel/release_region")
        pairs = list(zip(lay.pairs()[::2], lay.pairs()[1::2]))
        for start, length in pairs:
            write(rr, f"{start:#x} {length:#x}\n".encode())
        lines = writes(mock)
        assert mock.path("/sys/kernel/phyp_dump_active").read_text() == "1\n"  # registered again, still mounted
    assert [line["reregistered"] for line in lines] == [False] * (len(pairs) - 1) + [True]
    assert lines[-1]["counters"] == {"reserved": lay.reserve_size, "scratch": lay.scratch_size}
    for before, after in itertools.pairwise(lines):  # the counters only grow, write by write
        assert after["counters"]["reserved"] >= before["counters"]["reserved"]  # type: ignore[index]
        assert after["counters"]["scratch"] >= before["counters"]["scratch"]  # type: ignore[index]
    assert mock.report["reregistered"] is True


def test_memory_held_counts_the_frames_still_reserved_not_the_lengths_written() -> None:
    with MockMount(SMALL) as mock:
        lay = mock.fixture.phyp_layout()
        rr = mock.path("/sys/kernel/release_region")
        for _ in range(3):  # the same two pages three times: three pages freed (the inclusive end), once
            write(rr, f"{lay.reserve_start:#x} 0x20000\n".encode())
    page = mock.fixture.page_size
    total = -(-(lay.reserve_start + lay.reserve_size) // page) - lay.reserve_start // page
    held = [v for v in mock.violations if v["kind"] == "memory-held"]
    assert len(held) == 1
    assert held[0]["evidence"]["frames"] == total - 3, held[0]
    assert held[0]["evidence"]["first"] == lay.reserve_start + 3 * page

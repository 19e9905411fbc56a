"""vmcore-save through real FUSE mounts of crashed machines, run as a real subprocess.

What is checked on every run: the saved file is byte for byte the machine's
/proc/vmcore, the mock saw no breach of the ABI contract (no read of released
memory, no release of unread memory, nothing left held, nothing unaligned or
released twice), and each release_region range was given back exactly once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from abi_specs import builtin_spec
from mockfs.fuse.daemon import mount
from mockfs.live import LiveMachine
from mockfs.machine import Cpu, Fadump, Fixture, PhypDump, VmcoreImage, resolve_fixture
from mockfs.session.testbed import MockMount

MiB = 1 << 20
SPEC = builtin_spec()
REPO = Path(__file__).resolve().parents[2]

BUILTIN = ("phyp-power6", "fadump-power9", "kdump-x86_64")
# Small machines for the many-run tests; the built-in ones are 2-8 GiB.
SMALL = {
    # 64 KiB pages, HPTE of 4 KiB: the kernel's own range boundaries are unaligned.
    "phyp-small": Fixture(name="phyp-small", platform="phyp", arch="ppc64", ram=[(0, 576 * MiB)], cpus=[Cpu(1)],
                          phyp=PhypDump(hpte_size=0x1000), seed=7),
    # 4 KiB pages on POWER, a larger HPTE area: every boundary aligned.
    "phyp-small-4k": Fixture(name="phyp-small-4k", platform="phyp", arch="ppc64", page_size=4096, ram=[(0, 1024 * MiB)],
                             cpus=[Cpu(1), Cpu(2)], phyp=PhypDump(hpte_size=0x400000), seed=8),
    # crashkernel=256M: the reservation above it (256 MiB and a little) follows.
    "fadump-small": Fixture(name="fadump-small", platform="fadump", arch="ppc64le", ram=[(0, 576 * MiB)], cpus=[Cpu(1)],
                            fadump=Fadump(256 * MiB), seed=9),
    "kdump-small": Fixture(name="kdump-small", platform="kdump", arch="x86_64",
                           ram=[(0x1000, 0x9E000), (0x100000, 255 * MiB)], cpus=[Cpu(1)], seed=10),
}


def scratch_dir(need: int) -> str | None:
    """tmpfs when it has room for *need* bytes and a margin (fsync of GiBs to a disk is slow)."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    return "/dev/shm" if st.f_bavail * st.f_frsize > need + 2 * 1024 * MiB else None


@pytest.fixture
def out_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh output directory (not created: the collector makes it)."""
    spec = getattr(request.node, "callspec", None)
    name = spec.params.get("name", "") if spec else ""
    need = resolve_fixture(name).ram_size if name in BUILTIN else 1024 * MiB
    with tempfile.TemporaryDirectory(prefix="vmcore-save-", dir=scratch_dir(need)) as tmp:
        yield Path(tmp) / "dump"


def collector(root: Path, out: Path, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run vmcore-save as a real process; never raises on failure."""
    return subprocess.run([sys.executable, "-m", "collectors.vmcore_save", "--root", str(root), *extra, str(out)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def same_as_image(path: Path, image: VmcoreImage, chunk: int = 16 * MiB) -> None:
    """The file is exactly /proc/vmcore of *image* (compared in chunks)."""
    assert path.stat().st_size == image.size
    with open(path, "rb") as f:
        for off in range(0, image.size, chunk):
            data = f.read(chunk)
            if data != image.read(off, chunk):
                first = next(i for i, (a, b) in enumerate(zip(data, image.read(off, chunk))) if a != b)
                pytest.fail(f"{path} differs from the image at offset {off + first:#x}")


def image_sha256(image: VmcoreImage, chunk: int = 16 * MiB) -> str:
    digest = hashlib.sha256()
    for off in range(0, image.size, chunk):
        digest.update(image.read(off, chunk))
    return digest.hexdigest()


def violations(report: dict[str, object], ignore: tuple[str, ...] = ()) -> list[dict[str, object]]:
    return [v for v in report["violations"] if v["kind"] not in ignore]  # type: ignore[union-attr,index]


def assert_released_once(report: dict[str, object], fixture: Fixture) -> None:
    """phyp: the writes tile the four release_region ranges, each byte exactly once.

    fadump: release_mem written exactly once; kdump: nothing written.
    """
    releases = report["releases"]
    if fixture.platform == "fadump":
        assert releases == [{"release_mem": 1}]
        return
    if fixture.platform == "kdump":
        assert releases == []
        return
    pairs = fixture.phyp_layout().pairs()
    ranges = sorted((s, s + n) for s, n in zip(pairs[::2], pairs[1::2]) if n)
    asked = sorted((r["start"], r["start"] + r["length"]) for r in releases)  # type: ignore[index]
    for (_, end), (start, _) in itertools.pairwise(asked):
        assert end <= start, f"overlapping releases {asked}"
    for lo, hi in asked:
        assert any(s <= lo and hi <= e for s, e in ranges), f"release {lo:#x}-{hi:#x} is in no range"
    covered = sum(hi - lo for lo, hi in asked)
    assert covered == sum(e - s for s, e in ranges)


class ContinuedMount(MockMount):
    """The same crashed machine mounted again, possibly with other faults: what the
    collector read and released under an earlier mount carries over."""

    def __init__(self, fixture: Fixture, before: dict[str, object], faults: list[str] | None = None) -> None:
        super().__init__(fixture, faults=faults)
        self.before = before

    def start(self) -> ContinuedMount:
        machine = LiveMachine(self.image)
        for r in self.before["read_ranges"]:  # type: ignore[union-attr]
            machine.judge.saw_read(r["start"], r["end"])
        for r in self.before["releases"]:  # type: ignore[union-attr]
            if "release_mem" in r:
                machine.write_file(SPEC.get("fadump/release_mem"), b"1")
            else:
                machine.write_file(SPEC.get("release_region"), f"{r['start']:#x} {r['length']:#x}".encode())
        self.root.mkdir(parents=True, exist_ok=True)
        self._handle = mount(machine, self.root, self.trace_path, self.faults, self.report_path,
                             log=self.workdir / "daemon.log")
        return self


def file_offset(image: VmcoreImage, paddr: int) -> int:
    """Where physical address *paddr* of the crashed kernel is in /proc/vmcore."""
    for ph in image.layout.loads:
        if ph.paddr <= paddr < ph.paddr + ph.size:
            return ph.offset + paddr - ph.paddr
    raise ValueError(f"{paddr:#x} is in no PT_LOAD")


# -- whole dumps -------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_fixture_saved_and_released(name: str, out_dir: Path) -> None:
    with MockMount(name) as mock:
        proc = collector(mock.root, out_dir)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""  # quiet when stderr is not a terminal
    assert violations(mock.report) == []
    assert_released_once(mock.report, mock.fixture)
    assert stat.S_IMODE(os.stat(out_dir / "vmcore").st_mode) == 0o600
    same_as_image(out_dir / "vmcore", mock.image)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_fixture_saved_released_and_a_valid_core(name: str, out_dir: Path, cli) -> None:
    with MockMount(SMALL[name]) as mock:
        proc = collector(mock.root, out_dir)
        assert proc.returncode == 0, proc.stderr
    assert violations(mock.report) == []
    assert_released_once(mock.report, mock.fixture)
    same_as_image(out_dir / "vmcore", mock.image)
    assert stat.S_IMODE(os.stat(out_dir / "vmcore").st_mode) == 0o600
    check = cli("check", "--spec", "vmcore", str(out_dir / "vmcore"))
    assert check.returncode == 0, check.stdout + check.stderr
    # Done is done: a rerun changes nothing and touches nothing.
    with ContinuedMount(SMALL[name], mock.report) as again:
        proc = collector(again.root, out_dir)
        assert proc.returncode == 0, proc.stderr
    assert again.report["read_ranges"] == mock.report["read_ranges"]
    assert again.report["releases"] == mock.report["releases"]


def test_fadump_legacy_name_only(out_dir: Path) -> None:
    """A 5.6 kernel has only the flat /sys/kernel/fadump_release_mem (a file of its own): that one is written."""
    fixture = dataclasses.replace(SMALL["fadump-small"], name="fadump-5.6", osrelease="5.6.0-mock").validate()
    with MockMount(fixture) as mock:
        assert not mock.path("/sys/kernel/fadump").exists()
        proc = collector(mock.root, out_dir)
        assert proc.returncode == 0, proc.stderr
        writes = [op["path"] for op in mock.trace() if op["op"] == "write"]
    assert writes == ["/sys/kernel/fadump_release_mem"]
    assert violations(mock.report) == []
    assert_released_once(mock.report, mock.fixture)


# -- killed and rerun ----------------------------------------------------------------------

# Bytes read before the kill: in the core's head, mid-chunk, just past a checkpoint,
# after the first releases, near the end. phyp gets them all; the others fewer.
KILL_POINTS = [1, 3 * MiB + 4321, 64 * MiB + 1, 130 * MiB, 300 * MiB, 520 * MiB, 900 * MiB]
KILL_CASES = [
    *[("phyp-small-4k", n) for n in KILL_POINTS],
    *[("phyp-small", n) for n in KILL_POINTS[:-1]],
    *[("fadump-small", n) for n in (1, 64 * MiB + 1, 500 * MiB)],
    *[("kdump-small", n) for n in (3 * MiB + 4321, 200 * MiB)],
]


@pytest.mark.parametrize(("name", "kill_after"), KILL_CASES)
def test_killed_then_rerun_finishes(name: str, kill_after: int, out_dir: Path) -> None:
    """SIGKILL part-way (the mock's kill-after fires once), then a rerun on the same machine."""
    fixture = SMALL[name]
    with MockMount(fixture, faults=[f"kill-after:{kill_after}"]) as mock:
        first = collector(mock.root, out_dir)
        second = collector(mock.root, out_dir)
    assert first.returncode == -9 or (first.returncode == 0 and kill_after > mock.image.size // 2), first.stderr
    assert second.returncode == 0, second.stderr
    # One report for both runs: no read of released memory by the rerun, nothing
    # released twice or unread, nothing left held.
    assert violations(mock.report) == []
    assert_released_once(mock.report, fixture)
    same_as_image(out_dir / "vmcore", mock.image)


def test_release_in_flight_when_killed_is_not_repeated(out_dir: Path) -> None:
    """Killed between a release_region write and its record: the rerun must not write it
    again (the kernel would free those pages twice and over-count the release)."""
    fixture = SMALL["phyp-small-4k"]
    state_path = out_dir / "vmcore-save.state"
    with MockMount(fixture, faults=[f"kill-after:{600 * MiB}"]) as mock:
        first = collector(mock.root, out_dir)
        assert first.returncode == -9, first.stderr
        # Make the state look as if the process died right after its last release write.
        state = json.loads(state_path.read_text())
        assert state["released"] and state["pending"] is None
        state["pending"] = state["released"].pop()
        state_path.write_text(json.dumps(state))
        second = collector(mock.root, out_dir)
    assert second.returncode == 0, second.stderr
    assert "was in flight when the last run stopped; counting it as done" in second.stderr
    assert violations(mock.report) == []
    assert_released_once(mock.report, fixture)
    same_as_image(out_dir / "vmcore", mock.image)


def test_kill_during_every_phase_of_one_dump(out_dir: Path) -> None:
    """Kill the same dump again and again, each rerun getting further, until done."""
    fixture = SMALL["phyp-small"]
    report: dict[str, object] = {"read_ranges": [], "releases": []}
    for step in range(1, 4):
        with ContinuedMount(fixture, report, faults=[f"kill-after:{step * 150 * MiB}"]) as mock:
            proc = collector(mock.root, out_dir)
        assert proc.returncode in (-9, 0), proc.stderr
        assert violations(mock.report, ignore=("memory-held",)) == []
        report = mock.report
    with ContinuedMount(fixture, report) as mock:
        proc = collector(mock.root, out_dir)
        assert proc.returncode == 0, proc.stderr
    assert violations(mock.report) == []
    assert_released_once(mock.report, fixture)
    same_as_image(out_dir / "vmcore", mock.image)


# -- faults and errors ------------------------------------------------------------------------


def test_read_error_fails_with_offset_and_keeps_memory(out_dir: Path) -> None:
    fixture = SMALL["phyp-small-4k"]
    image = VmcoreImage(fixture)
    layout = fixture.phyp_layout()
    bad_paddr = layout.second_addr + 100 * MiB + 0x3000  # inside the second DUMP range
    bad = file_offset(image, bad_paddr)
    with MockMount(fixture, faults=[f"eio:{bad:#x}-{bad + 0x800:#x}"]) as mock:
        proc = collector(mock.root, out_dir)
    assert proc.returncode == 1
    assert f"read error at offset {bad:#x}" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert violations(mock.report, ignore=("memory-held",)) == []
    page = bad_paddr - bad_paddr % fixture.page_size
    for r in mock.report["releases"]:
        assert not r["freed_start"] <= page < r["freed_end"], f"released the unreadable page: {r}"
    # Everything before the bad page is kept: a rerun on a healthy machine finishes.
    assert (out_dir / "vmcore").stat().st_size == bad
    with ContinuedMount(fixture, mock.report) as again:
        proc = collector(again.root, out_dir)
        assert proc.returncode == 0, proc.stderr
    assert violations(again.report) == []
    assert_released_once(again.report, fixture)
    same_as_image(out_dir / "vmcore", image)


@pytest.mark.parametrize(("name", "faults"), [
    ("kdump-small", ["short:100000"]),
    ("phyp-small", ["short:65537", "delay:0.2"]),
])
def test_short_reads_and_delays(name: str, faults: list[str], out_dir: Path) -> None:
    with MockMount(SMALL[name], faults=faults) as mock:
        proc = collector(mock.root, out_dir)
        assert proc.returncode == 0, proc.stderr
    assert violations(mock.report) == []
    assert_released_once(mock.report, mock.fixture)
    same_as_image(out_dir / "vmcore", mock.image)


def test_missing_vmcore(tmp_path: Path) -> None:
    proc = collector(tmp_path / "empty-root", tmp_path / "out")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "proc/vmcore: no such file" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_refuses_a_stray_vmcore(out_dir: Path) -> None:
    out_dir.mkdir()
    (out_dir / "vmcore").write_bytes(b"somebody's earlier dump")
    with MockMount(SMALL["kdump-small"]) as mock:
        proc = collector(mock.root, out_dir)
    assert proc.returncode == 1 and "not overwriting" in proc.stderr
    assert (out_dir / "vmcore").read_bytes() == b"somebody's earlier dump"
    assert mock.report["read_ranges"] == []


@pytest.mark.skipif(not os.environ.get("CI") and (os.geteuid() != 0 or not shutil.which("unshare")),
                    reason="needs root and unshare(1); never skipped in CI")
def test_no_space_then_rerun_with_more_space(tmp_path: Path) -> None:
    """A 64 MiB tmpfs in a private mount namespace fills up; grown, a rerun finishes."""
    fixture = SMALL["phyp-small"]
    out = tmp_path / "out"
    out.mkdir()
    with MockMount(fixture) as mock:
        run = f"{sys.executable} -m collectors.vmcore_save --root {mock.root} {out}/dump"
        script = (f"mount -t tmpfs -o size=64M,mode=0700 tmpfs {out} || exit 99; "
                  f"{run}; echo rc1=$? >&2; "
                  f"mount -o remount,size=1G {out} && {run}; echo rc2=$? >&2; "
                  f"stat -c mode=%a {out}/dump/vmcore >&2; sha256sum {out}/dump/vmcore >&2")
        proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                              capture_output=True, text=True, timeout=600, cwd=REPO)
    lines = proc.stderr.splitlines()
    assert "rc1=1" in lines and "rc2=0" in lines, proc.stderr
    message = lines[0]
    assert message.startswith("vmcore-save: no space left on device writing ") and f"{out}/dump/vmcore" in message
    assert "bytes saved" in message
    assert "mode=600" in lines
    assert lines[-1].split()[0] == image_sha256(mock.image)
    assert violations(mock.report) == []
    assert_released_once(mock.report, fixture)
    assert not os.listdir(out)  # the tmpfs never reached the host


def test_progress_bar_only_on_a_terminal(out_dir: Path) -> None:
    """On a pseudo-terminal the bar is drawn; --quiet silences it."""
    import pty

    fixture = SMALL["kdump-small"]
    outputs = []
    for extra, out in (([], out_dir), (["--quiet"], out_dir.with_name("quiet"))):
        with MockMount(fixture) as mock:
            leader, follower = pty.openpty()
            proc = subprocess.Popen([sys.executable, "-m", "collectors.vmcore_save", "--root", str(mock.root), *extra,
                                     str(out)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower,
                                    cwd=REPO)
            os.close(follower)
            chunks = []
            while True:  # read as it comes: a full terminal buffer would block the collector
                try:
                    data = os.read(leader, 65536)
                except OSError:  # EIO: the last writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            os.close(leader)
            assert proc.wait(timeout=300) == 0
            outputs.append(b"".join(chunks).decode(errors="replace"))
    assert "saving vmcore" in outputs[0] and "saved:" in outputs[0]
    assert outputs[1] == ""


def test_the_document_form_of_release_region_works_too(out_dir: Path) -> None:
    """A machine whose release_region prints the 2007 document's form (a quirk): the same saves and releases."""
    fixture = dataclasses.replace(SMALL["phyp-small"], name="phyp-doc", quirks={"document_form": True}).validate()
    with MockMount(fixture) as mock:
        text = mock.path("/sys/kernel/release_region").read_text()
        lay = fixture.phyp_layout()
        assert text.startswith(f"CPU:{lay.cpu_addr:#x}-{lay.cpu_len:#x}: ")
        proc = collector(mock.root, out_dir)
        assert proc.returncode == 0, proc.stderr
    assert violations(mock.report) == []
    assert_released_once(mock.report, fixture)
    same_as_image(out_dir / "vmcore", mock.image)

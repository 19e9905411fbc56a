"""The harness never loses a user's data and never hurts a neighbour's run (issue 14).

* ``--fault enospc`` limits the room of the directory the collector really
  writes to: what was there before the run survives, even a SIGKILL;
* ``cleanup`` ends only what is provably dead (pid *and* start time);
* ``run --output`` makes its directory 0700;
* the live machine's per-release records stay bounded, with exact totals;
* every errno a file's spec entry lists is produced through a real mount.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from mockfs.machine.generate import MIN_MEMORY, new_fixture
from mockfs.session.runner import KILLED
from mockfs.session.testbed import Machine

from ..support import token_holders, wait_for_line, wait_until

MiB = 1 << 20
VMCORE_SAVE = str(Path(sys.executable).parent / "vmcore-save")
PHYP = new_fixture("phyp", memory=MIN_MEMORY["phyp"], name="phyp-small")


def _digest(path: Path, length: int) -> str:
    """sha256 of the first *length* bytes of *path*."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        left = length
        while left:
            block = f.read(min(left, 8 * MiB))
            assert block, f"{path} is shorter than {length} bytes"
            h.update(block)
            left -= len(block)
    return h.hexdigest()


# -- enospc keeps what is there ------------------------------------------------------------------


def test_enospc_rerun_keeps_the_partial_dump_and_resumes(tmp_path: Path) -> None:
    """A partial dump in --output, a rerun under enospc: the saved bytes survive and the collector resumes."""
    machine = Machine(tmp_path / "m", PHYP, state="capture")
    out = tmp_path / "out"
    try:
        first = machine.run([VMCORE_SAVE, "--quiet", str(out)], output=out, faults=[f"kill-after:{330 * MiB}"])
        assert first.returncode == KILLED
        saved = json.loads((out / "vmcore-save.state").read_text())["saved"]
        assert first.report["releases"], "the first run gave no memory back: the test would prove nothing"
        before = _digest(out / "vmcore", saved)

        full = machine.run([VMCORE_SAVE, "--quiet", str(out)], output=out, faults=[f"enospc:{100 * MiB}"])
        assert full.returncode == 1  # the disk filled up part-way
        # It resumed: it read no memory given back, and only the end finds memory still held.
        assert [v["kind"] for v in full.violations] == ["memory-held"], full.violations
        state = json.loads((out / "vmcore-save.state").read_text())
        assert state["saved"] > saved  # it went on from where the first run stopped...
        assert (out / "vmcore").stat().st_size >= saved
        assert _digest(out / "vmcore", saved) == before  # ...and not a byte of it was lost

        last = machine.run([VMCORE_SAVE, "--quiet", str(out)], output=out)
        assert last.returncode == 0 and last.violations == [], last.violations  # no released memory read
        assert last.verify().complete
        assert machine.armed  # every range given back
    finally:
        shutil.rmtree(out, ignore_errors=True)  # a dump per test is enough on the disk


def test_enospc_counts_only_new_bytes_and_sigkill_keeps_everything(tmp_path: Path) -> None:
    """What is there stays visible and costs nothing; a SIGKILL of the whole run loses no byte written."""
    out, log = tmp_path / "out", tmp_path / "log"
    out.mkdir(mode=0o700)
    log.mkdir()
    old = os.urandom(3 * MiB)
    (out / "old").write_bytes(old)
    token = uuid.uuid4().hex
    # 3 MiB more than the 1 MiB of room: the second block fails
    script = (f"dd if={out}/old of={out}/old bs=1M oflag=append conv=notrunc 2>/dev/null; "
              f"df -B1 --output=avail {out} | tail -n 1 > {log}/avail; "  # the full directory holds no marker
              f"echo started > {log}/ready; exec sleep 600")
    code = (f"from mockfs.session.runner import run; run(['sh', '-c', {script!r}], fixture='kdump-x86_64', "
            f"output={str(out)!r}, faults=['enospc:1M'], workdir={str(tmp_path / 'w')!r}, "
            f"extra_binds={{{str(log)!r}: {str(log)!r}}})")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "ABI_TEST_TOKEN": token})
    try:
        assert wait_for_line(log / "ready", "started"), "the program did not start (or wrote elsewhere)"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert wait_until(lambda: not token_holders(token)), "the run left processes behind"
    data = (out / "old").read_bytes()
    assert data[:len(old)] == old  # nothing of what was there is lost
    assert data[len(old):] == old[:MiB]  # and what the program wrote stays, to the last byte that fitted
    assert (log / "avail").read_text().strip() == "0"
    assert str(tmp_path) not in Path("/proc/mounts").read_text()  # the view lived in the run's namespace only


# -- bounded memory ------------------------------------------------------------------------------


def test_release_records_stay_bounded_with_exact_counts() -> None:
    """6000 release_region writes: the details stop at the cap, the counts and the freed memory stay exact."""
    from abi_specs import builtin_spec
    from mockfs.dumps.served import open_image
    from mockfs.live import LiveMachine
    from mockfs.live.state import MAX_RELEASES, MachineState

    machine = LiveMachine(open_image(PHYP))
    entry = builtin_spec().get("release_region")
    areas = machine.areas
    assert areas is not None
    step = areas.page_size
    pieces = (areas.reserve_end - areas.reserve_start) // step
    writes = 6000
    for i in range(writes):  # the whole reserved area piece by piece, then again from the start
        start = areas.reserve_start + (i % pieces) * step
        machine.write_file(entry, f"{start:#x} {step:#x}".encode())
    summary = machine.summary()
    assert writes > MAX_RELEASES
    assert len(summary["releases"]) == MAX_RELEASES  # type: ignore[arg-type]
    assert summary["release_count"] == writes
    assert machine.state.freed.total() >= areas.reserve_end - areas.reserve_start - step  # all of it given back
    again = MachineState.from_dict(json.loads(json.dumps(machine.state.to_dict())))
    assert again.release_count == writes and len(again.releases) == MAX_RELEASES
    overlaps = summary["violation_counts"]["release-overlap"]  # type: ignore[index]
    assert overlaps == writes - pieces  # the second pass overlaps the first, every write counted


def test_pytest_keeps_tmp_path_of_failed_tests_only() -> None:
    import tomllib

    from ..support import REPO

    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert options["tmp_path_retention_policy"] == "failed"

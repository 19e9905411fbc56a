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
from mockfs.session.runner import KILLED, run
from mockfs.session.testbed import Machine

from ..support import assert_cleanup_removes_records, token_holders, wait_for_line, wait_until

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
    # Records in a runtime directory of its own: the SIGKILL leaves them, and they are this test's to clean.
    runtime = tmp_path / "runtime"
    proc = subprocess.Popen([sys.executable, "-c", code],
                            env={**os.environ, "ABI_TEST_TOKEN": token, "ABI_HARNESS_RUNTIME_DIR": str(runtime)})
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
    assert_cleanup_removes_records(runtime)


def test_enospc_frees_an_unlinked_file_at_its_last_close(tmp_path: Path) -> None:
    """As on a disk: removing a file someone still holds open gives its room back only when it is closed.

    (libfuse keeps such a file under a hidden name until its last close, and only then asks the view to
    unlink it: that is when the budget sees it go.)
    """
    out, log = tmp_path / "out", tmp_path / "log"
    out.mkdir(mode=0o700)
    log.mkdir()
    script = (f"exec 3>{out}/held; head -c {MiB} /dev/zero >&3; rm {out}/held; "
              f"head -c {2 * MiB} /dev/zero > {out}/while-held; stat -c %s {out}/while-held > {log}/while-held; "
              f"exec 3>&-; rm {out}/while-held; "
              f"head -c {2 * MiB} /dev/zero > {out}/after; stat -c %s {out}/after > {log}/after")
    run(["sh", "-c", script], fixture="kdump-x86_64", output=out, faults=["enospc:2M"], workdir=tmp_path / "w",
        extra_binds={str(log): log})
    assert int((log / "while-held").read_text()) == MiB  # the held file still takes its 1 MiB
    assert int((log / "after").read_text()) == 2 * MiB  # closed, it gave its room back


# -- cleanup ends only what is provably dead ----------------------------------------------------


def _alive(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


def test_cleanup_never_kills_a_reused_pid(tmp_path: Path) -> None:
    """Records whose pid now belongs to another process (another start time) are dead: forgotten, nobody killed."""
    from mockfs.sandbox.cleanup import cleanup
    from mockfs.sandbox.processes import mount_namespace, start_time
    from mockfs.sandbox.records import write_record

    runtime = tmp_path / "runtime"
    (runtime / "mounts").mkdir(parents=True)
    (runtime / "runs").mkdir()
    bystander = subprocess.Popen(["sleep", "600"])
    try:
        start = start_time(bystander.pid)
        assert start is not None
        here = mount_namespace("self")
        stale = {"pid": bystander.pid, "start": start - 1, "mntns": here, "mountpoint": str(tmp_path / "gone")}
        write_record(str(runtime / "mounts" / "old.rec"), stale)
        write_record(str(runtime / "runs" / f"{bystander.pid}.run"),
                     {"pid": bystander.pid, "start": start - 1, "caller": bystander.pid, "caller_start": start - 1,
                      "stage": str(tmp_path / "stage"), "mntns": here})
        report = cleanup(runtime)
        assert report.killed == [] and _alive(bystander)
        assert sorted(Path(r).name for r in report.records) == [f"{bystander.pid}.run", "old.rec"]
        # The same record with the right start time is the live process: left alone without --all...
        write_record(str(runtime / "mounts" / "live.rec"), {**stale, "start": start})
        assert not cleanup(runtime) and _alive(bystander)
        # ...and ended with it: the check above could have failed.
        assert cleanup(runtime, include_live=True).killed == [bystander.pid]
        assert wait_until(lambda: not _alive(bystander))
    finally:
        if _alive(bystander):
            bystander.kill()
        bystander.wait()


def test_cleanup_leaves_a_running_run_and_its_daemon_alone(tmp_path: Path) -> None:
    """issue 14's case: the mock of a live `run` is mounted only in the run's namespace; cleanup must not kill it."""
    from ..support import cli_path, run_cli

    out, runtime = tmp_path / "out", tmp_path / "runtime"
    env = {**os.environ, "ABI_HARNESS_RUNTIME_DIR": str(runtime)}
    script = (f"echo started > {out}/ready; while [ ! -e {out}/go ]; do sleep 0.05; done; "
              f"cat /sys/kernel/kexec_crash_size > {out}/size")
    proc = subprocess.Popen([str(cli_path()), "run", "--fixture", "kdump-x86_64", "--output", str(out), "--",
                             "sh", "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for_line(out / "ready", "started"), "the run did not start"
        assert list((runtime / "mounts").glob("*.rec")), "the run's daemon keeps no record: nothing was tested"
        done = run_cli("cleanup", env=env)
        assert done.returncode == 0 and "killed" not in done.stdout, done.stdout
        (out / "go").touch()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert (out / "size").read_text() == "0\n"  # the mock still answered after cleanup


def test_run_output_directory_is_private(tmp_path: Path) -> None:
    """`run --output` creates its directory 0700 (dumps hold secrets), and --help says so."""
    from ..support import run_cli

    out = tmp_path / "new" / "out"
    done = run_cli("run", "--fixture", "kdump-x86_64", "--output", str(out), "--", "true")
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o700
    help_text = " ".join(run_cli("run", "--help").stdout.split())
    assert "created mode 0700" in help_text


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


# -- every errno of the spec happens -------------------------------------------------------------

#: How to make each (file, condition) happen: the kernel the machine runs, what comes first, the write.
#: A rule the spec gains without a recipe here fails the walk below.
RECIPES: dict[tuple[str, str], tuple[str, str, bytes]] = {
    ("fadump/registered", "dump_active"): ("capture", "", b"1\n"),
    ("fadump/registered", "unparsable"): ("armed", "", b"one\n"),
    ("fadump/registered", "not_accepted"): ("armed", "", b"2\n"),
    ("fadump/release_mem", "no_dump_active"): ("capture", "release", b"1\n"),
    ("fadump/release_mem", "unparsable"): ("capture", "", b"yes\n"),
    ("fadump/release_mem", "not_accepted"): ("capture", "", b"2\n"),
    ("fadump/bootargs_append", "dump_active"): ("capture", "", b"nr_cpus=1\n"),
    ("fadump/bootargs_append", "too_long"): ("armed", "", b"x" * 2048),
    ("fadump/bootargs_append", "cmdline_overflow"): ("armed", "", b"x" * 2000),  # fits alone, not after /proc/cmdline
    ("kexec/crash_size", "unparsable"): ("armed", "", b"half\n"),
    ("kexec/crash_size", "larger_than_current"): ("armed", "", b"%d\n" % (1 << 40)),
    ("kexec/crash_size", "crash_kernel_loaded"): ("armed", "load", b"0\n"),
    ("release_region", "unparsable"): ("capture", "", b"10"),
}
#: Machines whose kernels have every file (bootargs_append in the capture kernel: 6.13; kexec/: 6.19).
MACHINES = {"fadump": new_fixture("fadump", memory=MIN_MEMORY["fadump"], name="fadump-new", osrelease="6.13.0"),
            "kdump": new_fixture("kdump", memory=MIN_MEMORY["kdump"], name="kdump-new", osrelease="6.19.0"),
            "phyp": PHYP}


def _errno_through_a_mount(tmp_path: Path, platform: str, kernel: str, first: str, path: str, data: bytes) -> int:
    """Write *data* to *path* of a mounted machine of *platform*; the errno (0: accepted)."""
    from mockfs.dumps.served import open_image
    from mockfs.fuse.daemon import mount, umount
    from mockfs.live import LiveMachine

    machine = LiveMachine(open_image(MACHINES[platform]))
    machine.state = machine.initial_state(kernel)
    machine.memory.freed = machine.state.freed
    if first == "load":
        with machine.lock:
            machine.fire("load")  # kexec -p: a crash kernel is loaded
    root = tmp_path / "mnt"
    root.mkdir(exist_ok=True)
    mount(machine, root, die_with_parent=True)
    try:
        target = root / path.lstrip("/")
        if first == "release":
            target.write_bytes(b"1\n")  # the dump is given back once...
        fd = os.open(target, os.O_WRONLY)
        try:
            os.write(fd, data)
            return 0
        except OSError as exc:
            return exc.errno or -1
        finally:
            os.close(fd)
    finally:
        umount(root)


def test_every_errno_of_the_spec_happens_through_a_mount(tmp_path: Path) -> None:
    """Each errno each writable file's entry lists is what a write(2) on a mounted mock gets, condition by condition."""
    from abi_specs import builtin_spec
    from abi_specs.model import CONDITIONS

    spec = builtin_spec()
    named: set[str] = set()
    produced: list[tuple[str, str, str]] = []
    for entry in spec.files:
        target = entry.link_to or entry.name
        platform = next(p for p in entry.platforms if p in MACHINES)
        for rule in entry.errors:
            assert rule.conditions, f"{entry.name}: {rule.errno} names no condition the mock could evaluate"
            for condition in rule.conditions:
                named.add(condition)
                assert (target, condition) in RECIPES, f"no recipe for {entry.name}: {rule.errno} ({condition})"
                kernel, first, data = RECIPES[target, condition]
                got = _errno_through_a_mount(tmp_path, platform, kernel, first, entry.path, data)
                assert got == rule.number, (entry.name, condition, rule.errno, got)
                produced.append((entry.name, rule.errno, condition))
    assert named == set(CONDITIONS), "a condition is named by no rule, or a rule names an unknown one"
    assert {e for _, e, _ in produced} >= {"EPERM", "EINVAL", "ENOSPC", "ENOENT"}
    # The ENOSPC is about the room left, not any long write: a short one is taken.
    assert _errno_through_a_mount(tmp_path, "fadump", "armed", "", "/sys/kernel/fadump/bootargs_append",
                                  b"nr_cpus=16\n") == 0

"""`abi-harness run`: unmodified programs see the mock at canonical paths; the host stays clean."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mockfs.machine import expected_dmesg, resolve_fixture
from mockfs.session.runner import EXIT_VIOLATIONS, run

from ..support import assert_cleanup_removes_records, token_holders, tool, wait_for_line, wait_until


def host_mounts_under(path: Path) -> list[str]:
    """Mounts of the host below *path* (other tests may mount elsewhere at the same time)."""
    return [line for line in Path("/proc/mounts").read_text().splitlines() if str(path) in line]


@pytest.mark.parametrize("name", ["kdump-x86_64", "phyp-power6", "fadump-power9"])
def test_vmcore_dmesg_reads_the_canonical_path(name: str, tmp_path: Path) -> None:
    out = tmp_path / "out" / "dmesg.txt"  # the root is an overlay: only --output reaches the host
    result = run(["sh", "-c", f"{tool('vmcore-dmesg')} /proc/vmcore > {out}"], fixture=name, output=out.parent,
                 workdir=tmp_path / "w")
    assert result.returncode == 0
    assert out.read_text() == expected_dmesg(resolve_fixture(name).log)


def test_makedumpfile_dump_dmesg_through_the_runner(tmp_path: Path) -> None:
    out = tmp_path / "out" / "dmesg.txt"
    result = run(["makedumpfile", "--dump-dmesg", "/proc/vmcore", str(out)], fixture="kdump-x86_64",
                 output=out.parent, workdir=tmp_path / "w")
    assert result.returncode == 0
    assert out.read_text() == expected_dmesg(resolve_fixture("kdump-x86_64").log)


def test_the_rest_of_proc_and_sys_stays_real(tmp_path: Path) -> None:
    script = (
        # `read` is a shell builtin: /proc/self is the shell itself.
        "set -e; read -r me _ < /proc/self/stat; test \"$me\" = \"$$\"; ps -o pid= -p $$ >/dev/null; "
        "grep -q '^Name:' /proc/self/status; test \"$(cat <(echo hi))\" = hi; echo in | cat /dev/stdin >/dev/null; "
        "test -d /sys/kernel/mm; stat -c %a /proc/vmcore | grep -qx 400; "
        "test \"$(stat -c %U /proc/vmcore)\" = root; cat /sys/kernel/release_region >/dev/null; "
        "test -e /proc/device-tree/rtas/ibm,kernel-dump"
    )
    result = run(["bash", "-c", script], fixture="phyp-power6", workdir=tmp_path / "w")
    assert result.returncode == 0


def test_a_run_hands_the_program_only_its_streams_and_default_signals(tmp_path: Path) -> None:
    # The run's supervisor forks the runner rather than start a new interpreter: nothing of the
    # harness (the machine's lock, the status pipe, the mock's files) may reach the program, and
    # the program starts with the signal dispositions an exec from our caller would give it.
    out = tmp_path / "seen"
    script = f"ls /proc/self/fd > {out}; grep -E '^Sig(Ign|Blk)' /proc/self/status >> {out}"
    result = run(["sh", "-c", script], fixture="kdump-x86_64", workdir=tmp_path / "w", output=tmp_path / "o",
                 extra_binds={str(tmp_path): tmp_path})
    assert result.returncode == 0
    lines = out.read_text().split("\n")
    assert lines[:4] == ["0", "1", "2", "3"], lines  # 3: the directory ls is reading
    # Ignored signals are inherited across exec: the program ignores what our caller ignored, less the two
    # Python itself ignores (SIGPIPE, SIGXFSZ), which a program expects at their defaults.
    ours = dict(line.split(":\t") for line in Path("/proc/self/status").read_text().splitlines() if ":\t" in line)
    ignored = int(ours["SigIgn"], 16) & ~(1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1))
    assert f"SigIgn:\t{ignored:016x}" in lines and "SigBlk:\t0000000000000000" in lines, lines


def test_exit_status_policy(tmp_path: Path) -> None:
    assert run(["sh", "-c", "exit 7"], fixture="kdump-x86_64", workdir=tmp_path / "a").exit_status == 7
    assert run(["true"], fixture="kdump-x86_64", workdir=tmp_path / "b").exit_status == 0
    held = run(["true"], fixture="phyp-power6", workdir=tmp_path / "c")  # never released anything
    assert held.returncode == 0 and held.exit_status == EXIT_VIOLATIONS
    assert [v["kind"] for v in held.violations] == ["memory-held"]


def test_enospc_limits_the_output(tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "log"
    log.mkdir()
    result = run(["sh", "-c", f"dd if=/proc/vmcore of={out}/vmcore bs=1M 2>{log}/err; echo $? > {log}/status"],
                 fixture="kdump-x86_64", output=out, faults=["enospc:8M"], workdir=tmp_path / "w",
                 extra_binds={str(log): log})
    assert result.returncode == 0
    assert (log / "status").read_text().strip() != "0"
    assert "No space left" in (log / "err").read_text()
    assert 0 < (out / "vmcore").stat().st_size <= 8 << 20


def test_cli_run_json_and_trace(cli, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    proc = cli("run", "--fixture", "kdump-x86_64", "--json", "--trace", str(trace), "--",
               "sh", "-c", "head -c 4096 /proc/vmcore >/dev/null")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["exit_status"] == 0 and report["violations"] == []
    ops = [json.loads(line) for line in trace.read_text().splitlines()]
    reads = [op for op in ops if op["op"] == "read" and op["path"] == "/proc/vmcore"]
    assert reads and reads[0]["comm"] == "head"


def test_sigkill_of_the_runner_leaves_the_host_clean(tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    ready = tmp_path / "out" / "ready"
    code = (
        "from mockfs.session.runner import run; "
        f"run(['sh', '-c', 'echo started > {ready}; exec sleep 600'], fixture='kdump-x86_64', "
        f"output={str(ready.parent)!r}, workdir={str(tmp_path / 'w')!r})"
    )
    runtime = tmp_path / "runtime"  # its records are left by the SIGKILL: this test's to clean, not the host's
    proc = subprocess.Popen([sys.executable, "-c", code],
                            env={**os.environ, "ABI_TEST_TOKEN": token, "ABI_HARNESS_RUNTIME_DIR": str(runtime)})
    try:
        assert wait_for_line(ready, "started"), "the program did not start"
        # The line is written before sh execs sleep: wait for the exec, not for the line alone.
        assert wait_until(lambda: "sleep" in {_comm(pid) for pid in token_holders(token)}), \
            [_comm(pid) for pid in token_holders(token)]  # the run is up: caller, supervisor, daemon, runner, sleep
        holders = token_holders(token)
        assert len(holders) >= 4, holders
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert wait_until(lambda: not token_holders(token)), f"left behind: {[_comm(p) for p in token_holders(token)]}"
    assert host_mounts_under(tmp_path) == []
    assert_cleanup_removes_records(runtime)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


@pytest.mark.abi_fixture("kdump-x86_64")
def test_plugin_fixtures(abi_mock, abi_run) -> None:
    assert abi_mock.path("/sys/kernel/kexec_crash_size").read_text() == "0\n"
    result = abi_run(["sh", "-c", "cat /sys/kernel/kexec_crash_loaded"])
    assert result.returncode == 0 and result.violations == []


@pytest.mark.parametrize("abi_mock", ["fadump-power9", "kdump-x86_64"], indirect=True)
def test_plugin_parametrized_by_fixture_image(abi_mock, abi_run) -> None:
    result = abi_run(["sh", "-c", "test -e /proc/vmcore && cat /sys/kernel/vmcoreinfo"])
    assert result.returncode == 0
    assert result.report["fixture"] == abi_mock.fixture.name


@pytest.mark.abi_fixture("kdump-x86_64", faults=["eio:0x0-0x1000"])
def test_plugin_marker_faults_and_override(abi_run) -> None:
    failing = abi_run(["sh", "-c", "head -c 16 /proc/vmcore > /dev/null"])
    assert failing.returncode != 0 and failing.faults == ["eio:0x0-0x1000"]
    clean = abi_run(["sh", "-c", "head -c 16 /proc/vmcore > /dev/null"], faults=[])
    assert clean.returncode == 0 and clean.faults == []


class _Stopped(Exception):
    """What the test's SIGTERM handler raises (the command line's raises KeyboardInterrupt)."""


@pytest.mark.parametrize("owner", ["run", "conform"])
def test_a_stop_while_the_scratch_is_made_still_removes_it(owner: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM right after the scratch directory is made, before its owner holds it: the owner removes it."""
    import tempfile
    import threading

    from mockfs.conform.campaign import conform
    from mockfs.sandbox import scratch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    made = scratch.scratch_dir

    def made_then_stopped(prefix: str, base: str | None = None) -> str:
        name = made(prefix, base)
        # Lands before mkdtemp's caller has even returned; at the main thread, as in the command line
        # (single-threaded then), since this worker's other threads would take a process-wide one.
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
        return name

    def stop(_signum: int, _frame: object) -> None:
        raise _Stopped

    monkeypatch.setattr(scratch, "scratch_dir", made_then_stopped)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(_Stopped):
            if owner == "run":
                run(["true"], fixture="kdump-x86_64")
            else:
                conform(["true"], platform="kdump", examples_count=1, jobs=1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert list(tmp_path.iterdir()) == []  # made, and removed by its owner

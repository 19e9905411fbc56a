"""Error paths of the command line, through the real command: one line, the right exit, no traceback.

Also the messages conformance prints for what it found (true counts, no claim
that contradicts the run) and the kill-after fault killing a collector whole.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ..support import REPO, cli_path, run_cli, tool, wait_until


def one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    """*proc* failed with a single line on standard error that holds every one of *words*."""
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("abi-harness: error: "), lines
    for word in words:
        assert word in lines[0], lines


@pytest.fixture(scope="module")
def small_kdump(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 64 MiB kdump machine: quick to save whole."""
    path = tmp_path_factory.mktemp("machines") / "kdump.toml"
    proc = run_cli("fixture", "new", "--platform", "kdump", "--memory", "64M", "--message", "one", "-o", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith(", 1 message"), proc.stdout  # one, not "1 messages"
    return str(path)


# -- mount --foreground ends on a signal ----------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_mount_foreground_ends_cleanly_on_a_stop_signal(sig: signal.Signals, tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    proc = subprocess.Popen([str(cli_path()), "mount", "--foreground", "kdump-x86_64", str(mountpoint)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: (mountpoint / "proc" / "vmcore").exists() or proc.poll() is not None,
                          what="the mount to answer")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True)
    assert proc.returncode == 0, err
    assert err == "", err  # no "RuntimeError: 8", no libfuse "Ignoring invalid max threads value"
    assert json.loads(out)["fixture"] == "kdump-x86_64"  # the summary, printed after the loop ended
    assert not os.path.ismount(mountpoint)


_STOP_IN_THE_WINDOW = """
import os, signal, sys
from mockfs.fuse import daemon
enter = daemon._LibfuseSignalHandlers.__enter__
def enter_then_stop(self):
    enter(self)
    os.kill(os.getpid(), signal.SIGTERM)  # before fuse_main has mounted and put libfuse's handlers in place
daemon._LibfuseSignalHandlers.__enter__ = enter_then_stop
from abi_harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_stop_signal_before_libfuse_is_ready_still_ends_the_mount_cleanly(tmp_path: Path) -> None:
    # The stop signals are at their default action while libfuse starts (it installs its handlers only over
    # that), so one arriving then would kill the daemon and leave its mount; they wait, blocked, until the loop runs.
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    try:
        proc = subprocess.run([sys.executable, "-c", _STOP_IN_THE_WINDOW, "mount", "--foreground", "kdump-x86_64",
                               str(mountpoint)], capture_output=True, text=True, timeout=120)
    finally:
        if os.path.ismount(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True)
            raise AssertionError("the mount was left behind")
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert json.loads(proc.stdout)["fixture"] == "kdump-x86_64"


# -- bad input: one line ----------------------------------------------------------------------


def test_run_of_a_file_that_is_no_program_is_one_line() -> None:
    one_line_error(run_cli("run", "--fixture", "kdump-x86_64", "--", "/etc/passwd"), "/etc/passwd", "cannot execute")


def test_a_negative_delay_is_refused() -> None:
    one_line_error(run_cli("run", "--fixture", "kdump-x86_64", "--fault", "delay:-5", "--", "true"), "delay:-5")


def test_a_missing_mountpoint_is_named_as_missing(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    proc = run_cli("mount", "kdump-x86_64", str(missing))
    one_line_error(proc, str(missing), "does not exist", "mkdir -p")
    assert "not a directory" not in proc.stderr


def test_specs_into_a_closed_pipe_exits_quietly() -> None:
    # `abi-harness specs | head -1`, with the reader gone before the first write: EPIPE, deterministically.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([str(cli_path()), "specs", "--json"], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=120)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_quick_commands_keep_every_command_in_reach() -> None:
    # specs, check and --version start without the other command modules; the parser still knows them all.
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("abi-harness "), proc.stderr
    proc = run_cli("no-such-command")
    assert proc.returncode == 2 and "'conform'" in proc.stderr and "'specs'" in proc.stderr, proc.stderr
    for args in (["--help"], ["-h", "specs"], ["--he"]):
        proc = run_cli(*args)
        assert proc.returncode == 0 and "conform" in proc.stdout and "specs" in proc.stdout, args
    proc = run_cli("specs", "--help")
    assert proc.returncode == 0 and "--spec-file" in proc.stdout


def test_each_command_is_found_in_the_module_the_quick_start_imports_for_it() -> None:
    # A command given on the line has only its own module imported: the map must name the module that registers it.
    from abi_harness import cli

    every = cli.build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(every) == set(cli.OWN_COMMANDS) | set(cli.COMMAND_MODULES)
    for command, module in cli.COMMAND_MODULES.items():
        alone = cli.build_parser((module,))._subparsers._group_actions[0].choices  # type: ignore[union-attr]
        assert command in alone, (command, module)
    proc = run_cli("run", "--help")
    assert proc.returncode == 0 and "--fixture" in proc.stdout, proc.stderr


def test_cleanup_help_names_the_runtime_directory_in_use(tmp_path: Path) -> None:
    env = {**os.environ, "ABI_HARNESS_RUNTIME_DIR": str(tmp_path / "rt")}
    proc = run_cli("cleanup", "--help", env=env)
    assert proc.returncode == 0
    assert f"(yours:{tmp_path / 'rt'})" in "".join(proc.stdout.split())  # argparse wraps at hyphens too


# -- run: the report apart from the program's output; words in the right number -------------


def test_run_json_keeps_the_programs_stdout_apart(small_kdump: str) -> None:
    proc = run_cli("run", "--fixture", small_kdump, "--json", "--", "sh", "-c",
                   "echo program-says-hello; head -c 8M /proc/vmcore > /dev/null")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # the report alone
    assert report["returncode"] == 0 and report["bytes_read"] > 0
    assert "program-says-hello" in proc.stderr and "program-says-hello" not in proc.stdout


def test_counts_of_one_are_singular(small_kdump: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("run", "--fixture", small_kdump, "--output", str(out), "--verify", "--", "sh", "-c",
                   f"umask 077; cat /proc/vmcore > {out}/vmcore; "
                   f"dd if=/dev/zero of={out}/vmcore bs=4096 seek=1000 count=1 conv=notrunc status=none")
    assert proc.returncode == 4, proc.stderr
    assert "verify: vmcore: 1 page different" in proc.stderr
    proc = run_cli("run", "--fixture", small_kdump, "--", "sh", "-c", "head -c 64K /proc/vmcore > /dev/null")
    assert "in 1 range" in proc.stderr, proc.stderr


# -- kill-after kills the whole command ------------------------------------------------------


def test_kill_after_kills_a_shell_collector_whole(small_kdump: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("run", "--fixture", small_kdump, "--output", str(out), "--fault", "kill-after:4M", "--json", "--",
                   "sh", "-c", f"cp /proc/vmcore {out}/vmcore; echo done > {out}/after")
    report = json.loads(proc.stdout)
    # Had only cp died, the shell would have gone on, written "after" and exited 0.
    assert report["returncodes"] == [128 + signal.SIGKILL], proc.stderr
    assert not (out / "after").exists()
    assert (out / "vmcore").stat().st_size < 64 << 20  # part of the dump, then the kill


# -- what conformance says --------------------------------------------------------------------


def test_conform_counts_every_repeat_of_a_violation() -> None:
    # 25 writes of release_mem: the first releases, the 24 others are violations (more than the judge keeps).
    proc = run_cli("conform", "--platform", "fadump", "--examples", "1", "--faults", "none", "--seed", "1", "--", "sh",
                   "-c", "for i in $(seq 25); do echo 1 > /sys/kernel/fadump_release_mem; done 2>/dev/null; true")
    assert proc.returncode == 1, proc.stderr
    minimal = proc.stderr.split("minimal failure:", 1)[1]
    assert "violation release-twice: wrote release_mem after the dump was released (24 times)" in minimal, proc.stderr


def test_conform_does_not_claim_a_kill_that_never_came() -> None:
    # The collector stops after 100 kB: every kill-after fault (1 MiB or more) never fires.
    proc = run_cli("conform", "--platform", "kdump", "--examples", "1", "--faults", "kill", "--seed", "1", "--", "sh",
                   "-c", "umask 077; head -c 100000 /proc/vmcore > {output}/vmcore")
    assert proc.returncode == 1, proc.stderr
    assert "before the kill-after fault" in proc.stderr and "ever fired" in proc.stderr, proc.stderr
    assert "killed part-way" not in proc.stderr and "after a kill" not in proc.stderr


# -- make demo installs what the demo needs ---------------------------------------------------


def test_make_demo_installs_the_package_without_the_test_tools(tmp_path: Path) -> None:
    plan = subprocess.run([tool("make"), "-n", "demo", f"VENV={tmp_path / 'venv'}"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert plan.returncode == 0, plan.stderr
    installs = [line for line in plan.stdout.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [f"{tmp_path / 'venv'}/bin/pip install -q -e ."], plan.stdout
    plan = subprocess.run([tool("make"), "-n", "test", f"VENV={tmp_path / 'venv'}"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert f"{tmp_path / 'venv'}/bin/pip install -q -e '.[test]'" in plan.stdout.splitlines(), plan.stdout

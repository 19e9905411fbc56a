"""The seals themselves: the run's procfs under the runner's stage is read-only and the host's is out of the
program's reach, binds cannot undo a seal, the probe refuses outside a runner, and a sealed call is always answered.

Nothing here writes a host file: every write below is aimed at a read-only
mount after the probe proved it so (``SEALED``), and the host-side probe only reads.
"""

from __future__ import annotations

import errno
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from abi_specs.kexec import syscall_numbers
from mockfs.sandbox.probe import host_arch, pid_namespace_problem
from mockfs.sandbox.seal import build_filter, install, raw_syscall, receive, take_fd
from mockfs.sandbox.sealed_calls import answer
from mockfs.session.testbed import Machine

from ..support import EVENT_TIMEOUT, SEALED, host_snapshot, run_cli

#: Run inside the runner, after the probe: where /proc's links point, and what writing there does.
_STAGE_CHECK = r"""
import errno, os, sys
res = open(sys.argv[1], "w", buffering=1)
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
links = os.path.dirname(os.readlink(f"/proc/{os.getpid()}"))  # the run's procfs
print("links", links, file=res)
with open("/proc/self/mountinfo") as f:
    mounts = [line.split() for line in f]
try:  # harmless even if it were written: this process's own name
    with open(f"{links}/self/comm", "w") as f:
        f.write("renamed")
    print("self/comm WRITTEN", file=res)
except OSError as exc:
    print("self/comm", errno.errorcode[exc.errno], file=res)
for name in ("sys/kernel/panic_on_oops", "sysrq-trigger"):  # asked with access(2): nothing is written
    if os.path.exists(f"{links}/{name}"):
        ok = libc.access(f"{links}/{name}".encode(), os.W_OK) == 0
        print(name, "WRITABLE" if ok else errno.errorcode[ctypes.get_errno()], file=res)
print("statvfs", "ro" if os.statvfs(links).f_flag & os.ST_RDONLY else "rw", file=res)
print("mount", [m[5].split(",")[0] for m in mounts if m[4] == links][0], file=res)
# The host's procfs, which the runner keeps beside it: not in this mount namespace at all.
host = os.path.join(os.path.dirname(links), "proc")
print("host-proc", "mounted" if any(m[4] == host for m in mounts) else "absent", len(os.listdir(host)), file=res)
with open(f"/proc/self/fd/{res.fileno()}", "a") as again:  # a magic link leads to the file's own mount
    again.write("magic-link ok\n")
"""


def test_the_runs_procfs_is_read_only_and_the_hosts_out_of_reach(tmp_path: Path) -> None:
    before = host_snapshot()
    machine = Machine(tmp_path / "m", "kdump-x86_64", state="capture")
    out = tmp_path / "out"
    result = machine.run([*SEALED, sys.executable, "-c", _STAGE_CHECK, f"{out}/result"], output=out)
    assert result.returncode == 0
    lines = dict(line.split(" ", 1) for line in (out / "result").read_text().splitlines())
    assert lines["links"].endswith("/stage/proc-run")  # /proc's entries: the run's own procfs
    assert lines["self/comm"] == "EROFS" and lines["sys/kernel/panic_on_oops"] == "EROFS"
    assert lines.get("sysrq-trigger", "EROFS") == "EROFS"  # (this host's kernel may have no sysrq)
    assert lines["statvfs"] == "ro" and lines["mount"] == "ro"
    assert lines["host-proc"] == "absent 0"
    assert lines["magic-link"] == "ok"
    assert host_snapshot() == before


def test_the_probe_refuses_on_the_host_and_runs_nothing() -> None:
    """Outside a runner the probe reads, names what is missing and exits 1; the command never runs."""
    proc = subprocess.run([*SEALED, "echo", "the-command-ran"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "the-command-ran" not in proc.stdout
    assert proc.stderr.startswith("abi-harness probe: NOT SEALED:") and proc.stderr.count("\n") == 1
    assert "/proc is not the runner's" in proc.stderr
    assert "syscall seal" not in proc.stderr  # it made no system call to find out
    # Its PID namespace check, asked here, sees the host's (inside every SEALED run it passes).
    assert pid_namespace_problem("/proc").startswith("the program shares a PID namespace whose process 1 is ")


@pytest.mark.parametrize(("output", "seal"), [
    ("/sys", "/sys (read-only"), ("/", "the root file system"), ("/dev", "/dev (/dev/kmsg closed"),
    ("/proc/..", "the root file system"), ("/proc/sys", "/proc (the machine's"), ("/sys/kernel/x", "/sys (read-only"),
])
def test_an_output_over_a_seal_is_refused(tmp_path: Path, output: str, seal: str) -> None:
    before = host_snapshot()
    proc = run_cli("run", "--output", output, "--", "true", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"abi-harness: error: --output {output}: refused") and seal in proc.stderr
    assert not Path("/sys/kernel/x").exists()
    assert host_snapshot() == before


def test_an_output_linking_to_a_seal_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").symlink_to("/sys/kernel")
    proc = run_cli("run", "--output", str(tmp_path / "out"), "--", "true", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "would undo the seal of /sys" in proc.stderr, proc.stderr


def test_links_in_a_kept_machine_lead_binds_only_inside_it_and_never_over_a_seal(tmp_path: Path) -> None:
    # A kept machine keeps its root's writes, links included (the host's own directories are untouched: the
    # root is an overlay). A later run's output bind follows them as its program will, inside the machine's
    # root: a link to another directory is followed; one into a sealed tree is refused, naming where it leads.
    from mockfs.session.runner import RunError

    machine = Machine(tmp_path / "m", "kdump-x86_64")
    moved, sealed = tmp_path / "moved", tmp_path / "sealed"
    moved.mkdir()
    sealed.mkdir()
    plant = f"mkdir {tmp_path}/elsewhere && rmdir {moved} {sealed} && ln -s elsewhere {moved} && ln -s /sys/kernel {sealed}"
    assert machine.run(["sh", "-c", plant]).returncode == 0
    assert moved.is_dir() and not moved.is_symlink() and sealed.is_dir() and not sealed.is_symlink()

    saved = machine.run(["sh", "-c", f"echo saved > {tmp_path}/elsewhere/out/x"], output=moved / "out")
    assert saved.returncode == 0 and (moved / "out" / "x").read_text() == "saved\n"
    with pytest.raises(RunError, match=f"cannot bind at {sealed}/out: its symbolic links lead to /sys/kernel/out, "
                                       "and a bind there would undo the seal of /sys"):
        machine.run(["true"], output=sealed / "out")
    # An absolute link leads into the machine's root too: what the bind makes there lands in the machine's
    # overlay, never in the host's directory of that name.
    away, host_side = tmp_path / "away", tmp_path / "host-side"
    away.mkdir()
    host_side.mkdir()
    assert machine.run(["sh", "-c", f"rmdir {away} && ln -s {host_side} {away}"]).returncode == 0
    saved = machine.run(["sh", "-c", f"echo saved > {host_side}/out/x"], output=away / "out")
    assert saved.returncode == 0 and (away / "out" / "x").read_text() == "saved\n"
    assert list(host_side.iterdir()) == []


def test_a_sealed_call_is_answered_when_the_caller_cannot_be_read(tmp_path: Path) -> None:
    """The supervisor cannot open the caller's memory (as under Yama's ptrace_scope 3; here: a /proc
    handle without the caller in it): the call fails with EPERM, reported, instead of hanging forever.

    The child makes a reboot(2) with bad magic numbers: were it not sealed, the kernel would refuse it unread.
    """
    numbers = syscall_numbers(host_arch() or os.uname().machine)
    fd_r, fd_w = os.pipe()
    go_r, go_w = os.pipe()
    got_r, got_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            listener = install(build_filter(numbers))
            os.write(fd_w, str(listener).encode())
            os.read(go_r, 1)
            os.write(got_w, str(raw_syscall(numbers["reboot"], 1, 2, 3, 0)).encode())
        finally:
            os._exit(0)
    try:
        pidfd = os.pidfd_open(pid)
        listener = take_fd(pidfd, int(os.read(fd_r, 16)))
        os.write(go_w, b"1")
        ready, _, _ = select.select([listener], [], [], EVENT_TIMEOUT)
        assert ready, "the sealed call never reached the supervisor"
        note = receive(listener, {nr: name for name, nr in numbers.items()})
        assert note is not None and note.name == "reboot"
        (tmp_path / "proc").mkdir()
        (tmp_path / "control").write_text("{}")
        proc_fd = os.open(tmp_path / "proc", os.O_PATH | os.O_DIRECTORY)
        control_fd = os.open(tmp_path / "control", os.O_RDWR)
        events: list[str] = []
        assert answer(note, control_fd, proc_fd, events) is False
        ready, _, _ = select.select([got_r], [], [], EVENT_TIMEOUT)
        assert ready, "the caller was never answered: it hangs in reboot(2)"
        assert int(os.read(got_r, 16)) == -errno.EPERM
        assert len(events) == 1 and "refused (the seal cannot read the caller" in events[0]
        assert (tmp_path / "control").read_text() == "{}"  # the machine was never asked
        for fd in (proc_fd, control_fd, listener, pidfd):
            os.close(fd)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


@pytest.mark.parametrize(("target", "source"), [
    ("/mnt", "/sys"), ("/mnt", "/"), ("/tmp/kmsg", "/dev/kmsg"), ("/dev", "TMP"), ("/", "TMP"), ("/proc/x", "TMP"),
])
def test_an_extra_bind_undoing_a_seal_is_refused(tmp_path: Path, target: str, source: str) -> None:
    from mockfs.sandbox.namespace import NamespaceError, run_in_namespace

    mock = tmp_path / "mock"
    (mock / "sys" / "kernel").mkdir(parents=True)
    with pytest.raises(NamespaceError, match=r"refused, the bind would undo the seal of "):
        run_in_namespace(mock, ["true"], extra_binds={target: tmp_path if source == "TMP" else source})

"""run_in_namespace with real processes, real mounts and a real FUSE mock.

Every test gets its own runtime directory and an environment token, so that
after it the host can be checked for leftovers precisely (no mounts, no process
carrying the token, no namespace with the test's staging mount) even while
pytest-xdist runs other tests beside it. ``fuse_mock`` runs the tiny FUSE mock
of tiny_fuse_mock.py in a process of its own.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mockfs.sandbox.cleanup import cleanup
from mockfs.sandbox.namespace import run_in_namespace
from mockfs.sandbox.processes import namespace_members

from ..support import REPO, SEALED, token_holders, wait_until
from .tiny_fuse_mock import RELEASE_REGION, VMCORE

# A developer without root may skip these; CI (CI=true) runs as root and must never skip them.
pytestmark = pytest.mark.skipif(
    not os.environ.get("CI") and (os.geteuid() != 0 or not os.path.exists("/dev/fuse")),
    reason="needs root and /dev/fuse (mount namespaces, FUSE)",
)

TINY_MOCK = Path(__file__).with_name("tiny_fuse_mock.py")


# ---------------------------------------------------------------------------
# Host-side leftovers


def _mountpoints() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    return tmp_path / "runtime"


@pytest.fixture(autouse=True)
def host_stays_clean(tmp_path: Path, token: str, runtime: Path):
    """After each test: no new mount of ours, no stray process, no run record."""
    before = _mountpoints()
    yield
    # Only where this test or the runner mounts: other tests (other xdist workers,
    # other suites) may be mounting elsewhere meanwhile.
    ours = (str(tmp_path), "/proc", "/sys", "/srv", "/mnt", "/etc", "/run/abi-harness")
    new = {m for m in _mountpoints() - before if m.startswith(ours)}
    assert not new, f"mounts left on the host: {new}"
    assert wait_until(lambda: not token_holders(token)), f"stray processes: {token_holders(token)}"
    assert not namespace_members(runtime / "stage"), "a namespace of this test is still alive"
    assert not list(runtime.glob("runs/*")), "run records left behind"
    assert not cleanup(runtime), "cleanup() found something a finished run left behind"


# ---------------------------------------------------------------------------
# Mocks


def _populate(root: Path) -> Path:
    kernel = root / "sys" / "kernel"
    (kernel / "fadump").mkdir(parents=True)
    (kernel / "release_region").write_text(RELEASE_REGION)
    (kernel / "fadump" / "release_mem").write_text("0\n")
    (kernel / "fadump" / "enabled").write_text("1\n")
    (kernel / "fadump_enabled").symlink_to("fadump/enabled")
    rtas = root / "proc" / "device-tree" / "rtas"
    rtas.mkdir(parents=True)
    (rtas / "ibm,configure-kernel-dump").write_bytes(b"\x00\x00\x00\x01")
    (root / "proc" / "vmcore").write_bytes(VMCORE)
    (root / "proc" / "vmcore").chmod(0o644)  # /proc/vmcore must show 0400 anyway
    return root


@pytest.fixture
def mock(tmp_path: Path) -> Path:
    """A plain directory mock."""
    return _populate(tmp_path / "mock")


@pytest.fixture
def fuse_mock(tmp_path: Path):
    """A FUSE mock served by a separate process (tiny_fuse_mock.py run as a script).

    Yields (mountpoint, write log): the daemon appends ``path=data`` for each write.
    """
    mountpoint = tmp_path / "fusemock"
    mountpoint.mkdir()
    log = tmp_path / "writes.log"
    log.touch()
    env = dict(os.environ, FUSE_LIBRARY_NAME="fuse3")
    daemon = subprocess.Popen([sys.executable, str(TINY_MOCK), str(mountpoint), str(log)], env=env)
    try:
        assert wait_until(lambda: os.path.ismount(mountpoint) or daemon.poll() is not None), "FUSE mock did not mount"
        assert daemon.poll() is None, "FUSE mock daemon died"
        yield mountpoint, log
    finally:
        daemon.send_signal(signal.SIGTERM)  # libfuse unmounts on SIGTERM
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        if os.path.ismount(mountpoint):
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def _sh(
    mock_root: Path, script: str, token: str, runtime: Path, *, env: dict[str, str] | None = None, **kwargs
) -> subprocess.CompletedProcess[str]:
    """Run a bash script in the namespace; its processes carry the test's token."""
    env = dict(os.environ, ABI_TEST_TOKEN=token, **(env or {}))
    return run_in_namespace(
        mock_root, ["bash", "-c", script], env=env, runtime_dir=runtime, capture_output=True, text=True, timeout=60, **kwargs
    )


# ---------------------------------------------------------------------------
# /sys/kernel


def test_sys_kernel_reads_mock_and_keeps_real_entries(mock: Path, token: str, runtime: Path) -> None:
    real = set(os.listdir("/sys/kernel"))
    r = _sh(mock, "cat /sys/kernel/release_region; cat /sys/kernel/fadump_enabled; ls /sys/kernel", token, runtime)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] + "\n" == RELEASE_REGION
    assert lines[1] == "1"
    listing = set(lines[2:])
    assert real <= listing, f"real entries hidden: {real - listing}"
    assert {"release_region", "fadump", "fadump_enabled"} <= listing
    # The host's view did not change.
    assert not os.path.exists("/sys/kernel/release_region")


def test_sys_kernel_write_reaches_plain_mock(mock: Path, token: str, runtime: Path) -> None:
    r = _sh(mock, "echo 1 > /sys/kernel/fadump/release_mem && cat /sys/kernel/fadump/release_mem", token, runtime)
    assert (r.returncode, r.stdout) == (0, "1\n"), r.stderr
    assert (mock / "sys/kernel/fadump/release_mem").read_text() == "1\n"


def test_directory_in_both_is_merged(mock: Path, token: str, runtime: Path) -> None:
    (mock / "sys/kernel/mm").mkdir()
    (mock / "sys/kernel/mm/mock_only").write_text("from the mock\n")
    real = set(os.listdir("/sys/kernel/mm"))
    r = _sh(mock, "cat /sys/kernel/mm/mock_only; ls /sys/kernel/mm", token, runtime)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "from the mock"
    assert set(lines[1:]) == real | {"mock_only"}


def test_no_runner_file_descriptor_leaks_into_the_program(mock: Path, token: str, runtime: Path) -> None:
    r = _sh(mock, "exec ls /proc/self/fd", token, runtime)
    assert r.stdout.split() == ["0", "1", "2", "3"], r.stdout  # 3: the directory ls is reading


def test_real_sys_kernel_entries_are_read_only(mock: Path, token: str, runtime: Path) -> None:
    # test -w asks access(2), which answers EROFS on a read-only mount without writing anything.
    script = "test -d /sys/kernel/mm && ! test -w /sys/kernel/rcu_expedited && test -w /sys/kernel/release_region"
    r = _sh(mock, script, token, runtime)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------------
# /proc


def test_proc_vmcore_and_device_tree(mock: Path, token: str, runtime: Path) -> None:
    script = (
        "stat -c '%a %U %G %s' /proc/vmcore; cmp /proc/vmcore \"$MOCK/proc/vmcore\" && echo same; "
        "od -An -tx1 /proc/device-tree/rtas/ibm,configure-kernel-dump; ls /proc;"
        "grep -c ' /proc/vmcore ' /proc/self/mountinfo || true"  # 0: mode 0644 in the mock, so served, not bound
    )
    r = _sh(mock, script, token, runtime, env={"MOCK": str(mock)})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"400 root root {len(VMCORE)}"
    assert lines[1] == "same"
    assert lines[2].split() == ["00", "00", "00", "01"]
    assert lines[-1] == "0"
    listing = set(lines[3:-1])
    assert {"vmcore", "device-tree", "self", "meminfo", "1"} <= listing


def test_vmcore_with_kernel_attributes_is_bound_in(mock: Path, token: str, runtime: Path) -> None:
    (mock / "proc/vmcore").chmod(0o400)  # already root-owned: the tests run as root
    r = _sh(
        mock,
        "grep -c ' /proc/vmcore ' /proc/self/mountinfo; stat -c '%a %U' /proc/vmcore; cmp /proc/vmcore $M",
        token,
        runtime,
        env={"M": str(mock / "proc/vmcore")},
    )
    assert r.stdout.splitlines() == ["1", "400 root"], r.stderr


def test_proc_stays_live_for_each_reader(mock: Path, token: str, runtime: Path) -> None:
    script = (
        "echo shell=$$;"
        "sh -c 'echo link=$$; exec readlink /proc/self';"  # exec: readlink runs as the shell's pid
        "sh -c 'echo status=$$; exec grep ^Pid: /proc/self/status';"
        "echo ps=$(ps -o pid= -p $$);"
        "cat <(echo substituted);"
        "echo piped | cat /dev/stdin;"
        "cat /proc/self/stat >/dev/null && echo stat-ok"
    )
    r = _sh(mock, script, token, runtime)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    shell = out[0].removeprefix("shell=")
    assert out[1].startswith("link=") and out[2] == out[1].removeprefix("link=")
    assert out[3].startswith("status=") and out[4].split() == ["Pid:", out[3].removeprefix("status=")]
    assert out[5].split("=")[1].strip() == shell
    assert out[6:] == ["substituted", "piped", "stat-ok"]


def test_proc_thread_self_names_the_thread(mock: Path, token: str, runtime: Path) -> None:
    code = (
        "import os, threading\n"
        "def show():\n"
        "    print(os.readlink('/proc/self'), os.readlink('/proc/thread-self'), os.getpid(), threading.get_native_id())\n"
        "t = threading.Thread(target=show); t.start(); t.join()\n"
    )
    r = run_in_namespace(
        mock, [sys.executable, "-c", code], env=dict(os.environ, ABI_TEST_TOKEN=token), runtime_dir=runtime, capture_output=True
    )
    self_link, thread_link, pid, tid = r.stdout.decode().split()
    assert self_link == pid
    assert thread_link == f"{pid}/task/{tid}"


def test_mock_without_proc_still_seals_proc(tmp_path: Path, token: str, runtime: Path) -> None:
    """No machine files under /proc: the real entries stay real, the host's sysctls and sysrq stay out of reach."""
    bare = tmp_path / "bare"
    (bare / "sys" / "kernel").mkdir(parents=True)
    script = ("stat -f -c %T /proc/meminfo /proc/self/status; test -e /proc/vmcore || echo no-vmcore;"
              "echo 1 2>/dev/null > /proc/sys/kernel/panic_on_oops || echo sysctl-refused;"
              "echo h 2>/dev/null > /proc/sysrq-trigger || echo sysrq-refused")
    # The writes run only after the probe proved, in this very run, that they cannot reach the host.
    r = run_in_namespace(bare, [*SEALED, "bash", "-c", script], env=dict(os.environ, ABI_TEST_TOKEN=token),
                         runtime_dir=runtime, capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["proc", "proc", "no-vmcore", "sysctl-refused", "sysrq-refused"], r.stderr


# ---------------------------------------------------------------------------
# The FUSE mock


def test_fuse_mock_reads_writes_and_vmcore(fuse_mock, token: str, runtime: Path) -> None:
    mountpoint, log = fuse_mock
    script = (
        "cat /sys/kernel/release_region; echo 1 > /sys/kernel/fadump/release_mem; cat /sys/kernel/fadump/release_mem;"
        "stat -c %a /proc/vmcore; md5sum < /proc/vmcore; ls /sys/kernel/mm >/dev/null && echo real-mm;"
        "head -c 100 /proc/vmcore >/dev/null"
    )
    r = _sh(mountpoint, script, token, runtime)
    assert r.returncode == 0, r.stderr
    import hashlib

    assert r.stdout.splitlines() == [
        RELEASE_REGION.strip(),
        "1",
        "400",
        f"{hashlib.md5(VMCORE).hexdigest()}  -",
        "real-mm",
    ]
    logged = log.read_text().splitlines(keepends=True)
    assert "/sys/kernel/fadump/release_mem=1\n" in logged
    # The mock's vmcore is already 0400 root, so it is bound in: its daemon sees the readers themselves.
    assert "read /proc/vmcore by md5sum\n" in logged
    assert "read /proc/vmcore by head\n" in logged


# ---------------------------------------------------------------------------
# Exit status, errors, extra binds


@pytest.mark.parametrize(("script", "expected"), [("exit 0", 0), ("exit 3", 3), ("kill -TERM $$", 143), ("kill -KILL $$", 137)])
def test_exit_status(mock: Path, token: str, runtime: Path, script: str, expected: int) -> None:
    assert _sh(mock, script, token, runtime).returncode == expected


def test_command_line(mock: Path, token: str, runtime: Path) -> None:
    env = dict(os.environ, ABI_TEST_TOKEN=token, ABI_HARNESS_RUNTIME_DIR=str(runtime), PYTHONPATH=str(REPO))
    cli = [sys.executable, "-m", "mockfs.sandbox.namespace"]
    program = ["sh", "-c", "cat /sys/kernel/release_region; exit 4"]
    run = subprocess.run([*cli, str(mock), "--", *program], env=env, capture_output=True)
    assert (run.returncode, run.stdout) == (4, RELEASE_REGION.encode()), run.stderr
    run = subprocess.run([*cli, "--cleanup"], env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "killed=[]" in run.stdout, run.stdout + run.stderr
    run = subprocess.run([*cli, str(mock / "missing"), "true"], env=env, capture_output=True, text=True)
    assert run.returncode == 125 and run.stderr.count("\n") == 1 and "not a directory" in run.stderr


def test_missing_program_or_cwd_raises(mock: Path, runtime: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        run_in_namespace(mock, ["/nonexistent/program"], runtime_dir=runtime)
    assert info.value.filename == "/nonexistent/program"
    with pytest.raises(FileNotFoundError) as info:
        run_in_namespace(mock, ["true"], runtime_dir=runtime, cwd="/nonexistent/dir")
    assert info.value.filename == "/nonexistent/dir"


def test_cwd_is_entered_inside(mock: Path, token: str, runtime: Path) -> None:
    r = _sh(mock, "pwd; cat fadump/release_mem", token, runtime, cwd="/sys/kernel")
    assert r.stdout == "/sys/kernel\n0\n", r.stderr


def test_stdio_pass_through_and_input(mock: Path, token: str, runtime: Path) -> None:
    r = _sh(mock, "tr a-z A-Z; echo err >&2", token, runtime, input="hello\n")
    assert (r.stdout, r.stderr) == ("HELLO\n", "err\n")


def test_extra_binds(mock: Path, tmp_path: Path, token: str, runtime: Path) -> None:
    conf = tmp_path / "kdump-tools"
    conf.write_text("USE_KDUMP=1\n")
    out = tmp_path / "out"
    out.mkdir()
    target_dir = "/srv" if os.path.isdir("/srv") else "/mnt"
    target_file = "/etc/default/kdump-tools" if os.path.isfile("/etc/default/kdump-tools") else "/etc/hostname"
    before = Path(target_file).read_bytes()
    r = _sh(
        mock,
        f"cat {target_file}; echo dump > {target_dir}/vmcore.1; cat /sys/kernel/extra",
        token,
        runtime,
        extra_binds={target_file: conf, target_dir: out, "/sys/kernel/extra": conf},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "USE_KDUMP=1\nUSE_KDUMP=1\n"
    assert (out / "vmcore.1").read_text() == "dump\n"
    assert Path(target_file).read_bytes() == before
    assert not os.path.exists(f"{target_dir}/vmcore.1")


def test_extra_bind_to_missing_target_is_refused(mock: Path, tmp_path: Path, runtime: Path) -> None:
    from mockfs.sandbox.namespace import NamespaceError

    with pytest.raises(NamespaceError, match="does not exist"):
        run_in_namespace(mock, ["true"], runtime_dir=runtime, extra_binds={"/no/such/dir": tmp_path})


# ---------------------------------------------------------------------------
# Teardown: stragglers, timeout, SIGKILL of the caller


def test_background_children_die_with_the_program(mock: Path, token: str, runtime: Path) -> None:
    r = _sh(mock, "sleep 300 & sleep 300 & disown -a; exit 5", token, runtime)
    assert r.returncode == 5
    assert not token_holders(token)


def test_the_program_sees_its_run_only_and_gets_the_runners_signals(mock: Path, token: str, runtime: Path) -> None:
    """A PID namespace of its own: the program is process 2, under the run's init, and sees none of the
    host's processes; a terminal signal the runner gets reaches it through the init."""
    import threading

    result: dict[str, subprocess.CompletedProcess[str]] = {}
    script = ("trap 'echo got-term > /sys/kernel/fadump/release_mem; exit 7' TERM;"
              "echo \"$$ $(cat /proc/1/comm) $(ls /proc | grep -c '^[0-9]')\" > /sys/kernel/fadump/release_mem;"
              "while :; do sleep 0.01; done")
    thread = threading.Thread(target=lambda: result.update(r=_sh(mock, script, token, runtime)))
    thread.start()
    ready = mock / "sys/kernel/fadump/release_mem"
    try:
        assert wait_until(lambda: ready.read_text() != "0\n", 30), "the program did not start"
        pid, init, count = ready.read_text().split()
        assert (pid, init) == ("2", "abi-run-init")
        assert int(count) < 8, count  # the init, bash, the sleep, ls, grep and the subshell at most
        (record,) = runtime.glob("runs/*.run")
        os.kill(int(record.stem), signal.SIGTERM)  # what a Ctrl-C of the caller's terminal sends the runner
        thread.join(60)
        assert result["r"].returncode == 7 and ready.read_text() == "got-term\n", result
    finally:
        cleanup(runtime, include_live=True)
        thread.join(30)


def test_timeout_kills_everything(mock: Path, token: str, runtime: Path) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        run_in_namespace(
            mock,
            ["bash", "-c", "sleep 300 & sleep 300"],
            env=dict(os.environ, ABI_TEST_TOKEN=token),
            runtime_dir=runtime,
            timeout=2,
        )
    assert wait_until(lambda: not token_holders(token))


def test_sigkill_of_the_caller_then_cleanup(mock: Path, token: str, runtime: Path) -> None:
    ready = mock / "sys/kernel/fadump/release_mem"
    caller_code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from mockfs.sandbox.namespace import run_in_namespace\n"
        "run_in_namespace(sys.argv[2], ['bash', '-c', sys.argv[3]], runtime_dir=sys.argv[4])\n"
    )
    # The grandchildren (the sleeps) would outlive the bash that PDEATHSIG kills, but not the run's
    # init: the PID namespace dies with it. cleanup() then finds only the runner's record.
    script = "sleep 300 & sleep 300 & echo started > /sys/kernel/fadump/release_mem; wait"
    caller = subprocess.Popen(
        [sys.executable, "-c", caller_code, str(REPO), str(mock), script, str(runtime)],
        env=dict(os.environ, ABI_TEST_TOKEN=token),
    )
    try:
        assert wait_until(lambda: ready.read_text() == "started\n", 30), "the program did not start"
        # caller, runner, /proc daemon, the run's init, bash, 2 sleeps
        assert wait_until(lambda: len(token_holders(token)) == 7)
        assert sorted(_comm(p) for p in token_holders(token)).count("sleep") == 2
        caller.send_signal(signal.SIGKILL)
        caller.wait()
        # The runner and its direct children go by PDEATHSIG; the rest with the run's init.
        assert wait_until(lambda: not token_holders(token))
        report = cleanup(runtime)
        assert len(report.records) == 1 and not report.killed
        assert not cleanup(runtime)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()
        cleanup(runtime, include_live=True)


def test_sigkill_of_the_runner(mock: Path, token: str, runtime: Path) -> None:
    """The in-namespace runner killed: the call fails cleanly and takes everything with it."""
    import threading

    from mockfs.sandbox.namespace import NamespaceError

    errors: list[BaseException] = []

    def run() -> None:
        try:
            _sh(mock, "sleep 300 & echo started > /sys/kernel/fadump/release_mem; sleep 300", token, runtime)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    ready = mock / "sys/kernel/fadump/release_mem"
    try:
        assert wait_until(lambda: ready.read_text() == "started\n", 30)
        (record,) = runtime.glob("runs/*.run")
        os.kill(int(record.stem), signal.SIGKILL)
        thread.join(30)
        assert not thread.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], NamespaceError), errors
        assert "died without reporting" in str(errors[0])
    finally:
        cleanup(runtime, include_live=True)
        thread.join(30)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_cleanup_leaves_live_runs_alone(mock: Path, token: str, runtime: Path) -> None:
    """cleanup() from another test or worker must not touch a run in progress."""
    import threading

    result: dict[str, object] = {}
    # The program runs until the test says so (through the mock's file: the root is an
    # overlay, so the host's later changes are not promised to show): cleanup happens
    # while it is certainly alive.
    script = ("echo started > /sys/kernel/fadump/release_mem;"
              "while [ \"$(cat /sys/kernel/fadump/release_mem)\" != go ]; do sleep 0.01; done; exit 7")

    def run() -> None:
        result["r"] = _sh(mock, script, token, runtime)

    thread = threading.Thread(target=run)
    thread.start()
    ready = mock / "sys/kernel/fadump/release_mem"
    try:
        assert wait_until(lambda: ready.read_text() == "started\n")
        # The loop's cat and sleep come and go; the runner and the shell stay.
        lasting = {pid for pid in token_holders(token) if _comm(pid) not in ("cat", "sleep")}
        assert not cleanup(runtime)
        assert lasting <= set(token_holders(token))  # nothing of the run was killed
    finally:
        ready.write_text("go\n")
        thread.join()
    assert result["r"].returncode == 7


def test_cleanup_detaches_stray_host_mounts_under_the_runtime_dir(runtime: Path) -> None:
    """A correct run never mounts on the host, but a debugging session may have."""
    stray = runtime / "stage"
    stray.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "stray", str(stray)], check=True)
    try:
        assert os.path.ismount(stray)
        report = cleanup(runtime)
        assert report.unmounted == [str(stray)]
        assert not os.path.ismount(stray)
    finally:
        if os.path.ismount(stray):
            subprocess.run(["umount", "-l", str(stray)], check=False)


# ---------------------------------------------------------------------------
# ProcOverlay's answers, without a mount


def test_proc_overlay_operations(mock: Path) -> None:
    import threading

    from mockfs.fuse.procfs import ProcOverlay

    asker = [os.getpid()]
    ops = ProcOverlay("/proc", mock / "proc", caller_pid=lambda: asker[0])
    assert ops.readlink("/self") == str(os.getpid())
    assert ops.readlink("/1") == "/proc/1"
    assert ops.readlink("/mounts") == "/proc/mounts"  # itself a symlink (to self/mounts) in procfs
    assert ops.readlink("/device-tree") == str(mock / "proc/device-tree")
    attrs = ops.getattr("/vmcore")
    assert (attrs["st_mode"], attrs["st_uid"], attrs["st_gid"], attrs["st_size"]) == (stat.S_IFREG | 0o400, 0, 0, len(VMCORE))
    assert stat.S_ISLNK(ops.getattr("/meminfo")["st_mode"])
    assert stat.S_ISDIR(ops.getattr("/")["st_mode"])
    names = [name for name, _attrs, _offset in ops.readdir("/", 0)]
    assert {"vmcore", "device-tree", "self", "1", "meminfo"} <= set(names)
    assert len(names) == len(set(names))
    for missing in ("/no-such-entry", "/1/status", "/vmcore/x"):
        with pytest.raises(OSError) as info:
            ops.getattr(missing)
        assert info.value.errno == errno.ENOENT

    # A thread asking: /proc/self names the process, /proc/thread-self the thread.
    def ask() -> None:
        asker[0] = threading.get_native_id()
        asker.append((ops.readlink("/self"), ops.readlink("/thread-self")))

    thread = threading.Thread(target=ask)
    thread.start()
    thread.join()
    tid = asker[0]
    assert asker[1] == (str(os.getpid()), f"{os.getpid()}/task/{tid}")

    with pytest.raises(OSError) as info:
        ops.open("/vmcore", os.O_RDWR)
    assert info.value.errno == errno.EACCES
    fh = ops.open("/vmcore", os.O_RDONLY)
    try:
        assert ops.read("/vmcore", 10, len(VMCORE) - 4, fh) == b"tail"
    finally:
        ops.release("/vmcore", fh)

    # The mock may lose its entries: they leave the listing.
    (mock / "proc/vmcore").unlink()
    assert "vmcore" not in [name for name, _attrs, _offset in ops.readdir("/", 0)]

"""Rootless mode: `run`, `mount` and the pytest plugin as an ordinary user, and one line where it cannot work.

This machine's /dev/fuse is 0600, as some distributions ship it. Each test, as
root, enters a private mount namespace (unshare(1)), makes a FUSE device node
of its own (char 10,229) in a tmpfs and binds it over /dev/fuse there (mode
0666: usable; 0600: the refusal), makes the interpreter reachable if it sits
under a directory others may not search (pyenv under /root), and then runs
the real command as uid 65534 with setpriv(1). The host sees none of it: every
mount lives and dies with that namespace.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..support import REPO, cli_path, run_cli, token_holders, tool

#: The ordinary user the tests run as (nobody); no group, no capability.
USER = 65534
#: The FUSE device's numbers (major 10, the misc devices; minor 229).
FUSE_DEV = "c 10 229"


def _unreachable_dirs(path: str) -> list[tuple[str, str]]:
    """(directory, child) on the way to *path* where others may not search the directory."""
    out = []
    parts = Path(os.path.realpath(path)).parts
    for i in range(1, len(parts) - 1):
        directory = os.path.join(*parts[:i])
        if not os.stat(directory).st_mode & 0o001:
            out.append((directory, parts[i]))
    return out


def _reach_script(stage: Path) -> str:
    """Shell lines that make this Python (the interpreter and its library) reachable by others, in the namespace.

    For each directory others may not search, its one child on the way is bound
    aside, a tmpfs (mode 0755) covers the directory, and the child comes back.
    """
    lines = []
    targets = {os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix) + "/lib"}
    seen: set[tuple[str, str]] = set()
    for target in sorted(targets):
        for n, (directory, child) in enumerate(_unreachable_dirs(target)):
            if (directory, child) in seen:
                continue
            seen.add((directory, child))
            aside = stage / f"aside-{len(seen)}-{n}"
            d, c, a = shlex.quote(directory), shlex.quote(os.path.join(directory, child)), shlex.quote(str(aside))
            lines += [f"mkdir -p {a}", f"mount --bind {c} {a}", f"mount -t tmpfs -o mode=0755 abi-rootless-reach {d}",
                      f"mkdir -p {c}", f"mount --move {a} {c}"]
    return "\n".join(lines)


class Rootless:
    """Runs shell scripts as :data:`USER` in a private mount namespace with a FUSE device of a chosen mode."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.token = uuid.uuid4().hex

    def run(self, script: str, fuse_mode: str = "0666", chroot: bool = False, as_root: str = "",
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """*script* (sh -e) as the user; with *chroot*, from a chroot, where the kernel refuses user namespaces.

        *as_root* is shell run first, as root, in the test's namespace (a host to mimic)."""
        stage = self.home / ".stage"
        root = f"{stage}/root"
        into = f"{tool('chroot')} {root} " if chroot else ""
        setup = "\n".join([
            "set -e",
            f"mkdir -p {stage}/dev {root}",
            f"mount -t tmpfs -o mode=0755,size=64k abi-rootless-dev {stage}/dev",
            f"mknod -m {fuse_mode} {stage}/dev/fuse {FUSE_DEV}",
            f"mount --bind {stage}/dev/fuse /dev/fuse",
            _reach_script(stage),
            as_root,
            f"mount --rbind / {root}" if chroot else "",
            f'exec {into}{tool("setpriv")} --reuid={USER} --regid={USER} --clear-groups -- "$@"',
        ])
        env = {"PATH": f"{cli_path().parent}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.home),
               "XDG_RUNTIME_DIR": str(self.home / "run"), "TMPDIR": str(self.home / "tmp"), "LANG": "C.UTF-8",
               "ABI_TEST_TOKEN": self.token,
               "PYTHONDONTWRITEBYTECODE": "1"}
        return subprocess.run([tool("unshare"), "--mount", "--propagation", "private", "--", "sh", "-c", setup, "sh",
                               "env", "-i", *(f"{k}={v}" for k, v in env.items()), "sh", "-ec", f"cd {self.home}\n{script}"],
                              capture_output=True, text=True, timeout=timeout)

    def stop_leftovers(self) -> list[int]:
        """Kill what the tests started and left running (found by their token); the pids."""
        pids = token_holders(self.token)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids


@pytest.fixture
def rootless() -> Iterator[Rootless]:
    """A home the ordinary user owns (pytest's tmp_path is root's, mode 0700), removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="abi-rootless-test-"))
    try:
        os.chmod(home, 0o755)
        (home / "run").mkdir(mode=0o700)
        (home / "tmp").mkdir(mode=0o700)  # scratch of this test's runs alone: another worker's runs are the same user
        for path in (home, home / "run", home / "tmp"):
            os.chown(path, USER, USER)
        user = Rootless(home)
        probe = user.run("python3 -c 'import abi_harness, mockfs'")  # the venv, as that user
        assert probe.returncode == 0, f"the virtualenv is not usable by uid {USER}: {probe.stderr}"
        yield user
        assert user.stop_leftovers() == [], "the rootless run left processes behind"
    finally:
        shutil.rmtree(home)


@pytest.fixture(scope="module")
def small_kdump(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 64 MiB kdump machine, its manifest readable by everyone."""
    folder = tmp_path_factory.mktemp("rootless-fixture")
    path = folder / "kdump.toml"
    assert run_cli("fixture", "new", "--platform", "kdump", "--memory", "64M", "-o", str(path)).returncode == 0
    public = Path(tempfile.mkdtemp(prefix="abi-rootless-fixture-"))
    os.chmod(public, 0o755)
    shutil.copy(path, public / "kdump.toml")
    os.chmod(public / "kdump.toml", 0o644)
    yield public / "kdump.toml"
    shutil.rmtree(public)


def test_run_as_an_ordinary_user(rootless: Rootless) -> None:
    as_root = run_cli("run", "--fixture", "kdump-x86_64", "--", "cat", "/sys/kernel/kexec_crash_size")
    assert as_root.returncode == 0, as_root.stderr
    proc = rootless.run("id -u; abi-harness run --fixture kdump-x86_64 -- cat /sys/kernel/kexec_crash_size; "
                        "abi-harness run --fixture kdump-x86_64 -- sh -c 'head -c 4 /proc/vmcore | od -An -c'")
    assert proc.returncode == 0, proc.stderr
    uid, size, magic = proc.stdout.splitlines()
    assert uid == str(USER) and size == as_root.stdout.strip()
    assert magic.split() == ["177", "E", "L", "F"]  # the mock's /proc/vmcore at its canonical path
    assert "exit status: 0" in proc.stderr


def test_rootless_writes_land_in_the_machine_or_fail(rootless: Rootless) -> None:
    # /etc is an overlay of its own; /tmp holds this test's device mount, inherited, so it is a read-only bind.
    probe = f"abi-rootless-probe-{rootless.token}"
    proc = rootless.run(f"abi-harness run --fixture kdump-x86_64 -- sh -c 'echo kept > /etc/{probe} && cat /etc/{probe}; "
                        f"touch /tmp/{probe} 2>&1 || true'")
    assert proc.returncode == 0, proc.stderr
    kept, refused = proc.stdout.splitlines()
    assert kept == "kept" and "Read-only file system" in refused
    assert not Path("/etc", probe).exists() and not Path("/tmp", probe).exists()  # the host is untouched


def test_a_rootless_dump_is_complete_and_private(rootless: Rootless, small_kdump: Path) -> None:
    out = rootless.home / "out"
    proc = rootless.run(f"abi-harness run --fixture {small_kdump} --output {out} --verify -- "
                        f"sh -c 'umask 077; cat /proc/vmcore > {out}/vmcore'")
    assert proc.returncode == 0, proc.stderr
    assert "the dump is the fixture's memory, complete" in proc.stderr
    saved = (out / "vmcore").stat()
    assert (saved.st_uid, saved.st_mode & 0o777) == (USER, 0o600)
    assert list((rootless.home / "tmp").iterdir()) == []  # the run's scratch went with it
    # Root in its user namespace, the runner still kept its record in the user's runtime directory, and took it.
    runs = rootless.home / "run" / "abi-harness" / "runs"
    assert runs.is_dir() and not list(runs.iterdir())


def test_mount_as_an_ordinary_user(rootless: Rootless) -> None:
    proc = rootless.run("mkdir mnt; abi-harness mount kdump-x86_64 mnt >&2; trap 'abi-harness umount mnt' EXIT; "
                        "cat mnt/sys/kernel/kexec_crash_size; head -c 4 mnt/proc/vmcore | od -An -c; stat -c %a "
                        "mnt/proc/vmcore")
    assert proc.returncode == 0, proc.stderr
    size, magic, mode = proc.stdout.splitlines()
    assert size.isdigit() and magic.split() == ["177", "E", "L", "F"] and mode == "400"
    assert "serving kdump-x86_64" in proc.stderr
    assert not list((rootless.home / "run" / "abi-harness" / "mounts").iterdir())  # umount took its record and log


def test_conform_as_an_ordinary_user(rootless: Rootless) -> None:
    proc = rootless.run("abi-harness conform --platform kdump --examples 2 --seed 1 --faults none,kill -- "
                        "sh -c 'umask 077; cat /proc/vmcore > {output}/vmcore'")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "2 passed, 0 failed"


def test_the_pytest_plugin_as_an_ordinary_user(rootless: Rootless, small_kdump: Path) -> None:
    (rootless.home / "test_collector.py").write_text(f'''
def test_saves_everything(abi_run, tmp_path):
    out = tmp_path / "out"
    result = abi_run(["sh", "-c", f"umask 077; cat /proc/vmcore > {{out}}/vmcore"], fixture="{small_kdump}", output=out)
    assert result.returncode == 0 and result.violations == [] and result.verify().complete


def test_mock(abi_mock):
    assert abi_mock.path("/proc/vmcore").stat().st_mode & 0o777 == 0o400
''')
    proc = rootless.run(f"pytest -q -p no:cacheprovider --rootdir {rootless.home} --basetemp {rootless.home}/pt "
                        "test_collector.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def test_an_unusable_dev_fuse_is_one_line(rootless: Rootless) -> None:
    (rootless.home / "test_plugin.py").write_text("def test_mock(abi_mock):\n    pass\n")
    proc = rootless.run("mkdir mnt; for c in 'run --fixture kdump-x86_64 -- true' 'mount kdump-x86_64 mnt'; do "
                        "abi-harness $c 2>&1 && exit 9; echo \"exit $?\"; done; "
                        "pytest -q -p no:cacheprovider --basetemp pt test_plugin.py || true", fuse_mode="0600")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    line = "abi-harness: error: /dev/fuse (mode 0600) cannot be opened by you: run as root, or make it 0666 as most " \
           "distributions ship it"
    assert lines[:4] == [line, "exit 2", line, "exit 2"], lines
    assert "abi-harness: /dev/fuse (mode 0600) cannot be opened by you" in proc.stdout  # the plugin: one line
    assert "Traceback" not in proc.stdout and "MountError" not in proc.stdout


def test_refused_user_namespaces_are_one_line(rootless: Rootless) -> None:
    # The kernel refuses a user namespace to a chrooted caller (EPERM), as it does where they are disabled.
    proc = rootless.run("abi-harness run --fixture kdump-x86_64 -- true || echo \"exit $?\"", chroot=True)
    assert proc.stdout.strip() == "exit 2", proc.stdout + proc.stderr
    assert proc.stderr.startswith("abi-harness: error: cannot create a user namespace as an ordinary user: ")
    assert "Operation not permitted" in proc.stderr and "unprivileged user namespaces" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr



def test_a_partly_covered_proc_refuses_the_runs_own_proc_in_one_line(rootless: Rootless) -> None:
    # As containers do (over /proc/kcore, /proc/keys...): a mount over part of /proc. An ordinary user's
    # new procfs would reveal what it hides, so the kernel refuses the run's, and the run does not start
    # without its PID namespace.
    proc = rootless.run("abi-harness run --fixture kdump-x86_64 -- touch ran || echo \"exit $?\"",
                        as_root="mount --bind /dev/null /proc/uptime")
    assert proc.stdout.strip() == "exit 2", proc.stdout + proc.stderr
    assert proc.stderr.startswith("abi-harness: error: cannot mount the run's own /proc in its PID namespace: "
                                  "Operation not permitted (an ordinary user may mount one only where"), proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert not (rootless.home / "ran").exists()

def test_cleanup_as_an_ordinary_user_names_what_is_not_theirs(rootless: Rootless) -> None:
    # Root's: a scratch directory of a killed run (pid 1 did not start at tick 1: its owner is gone), in the
    # test's own TMPDIR, and a runtime directory whose records only root may list.
    tmp, runtime = rootless.home / "tmp", rootless.home / "root-runtime"
    (tmp / "abi-run-1-1-stale").mkdir(mode=0o700)
    runtime.mkdir(mode=0o755)
    (runtime / "runs").mkdir(mode=0o700)
    proc = rootless.run(f"abi-harness cleanup; ABI_HARNESS_RUNTIME_DIR={runtime} abi-harness cleanup || echo \"exit $?\"")
    assert (tmp / "abi-run-1-1-stale").exists()
    assert proc.stdout.strip() == "exit 2", proc.stdout  # nothing claimed as removed
    errors = proc.stderr.splitlines()
    assert errors[0].startswith("left 1 scratch directory of killed runs owned by root"), errors
    assert "sudo abi-harness cleanup" in errors[0]
    assert errors[1] == (f"abi-harness: error: {runtime}/runs: Permission denied: what another user's runs left "
                         "there is theirs to clean up (as root: sudo abi-harness cleanup)")
    assert len(errors) == 2


def test_the_checkout_is_readable_by_others() -> None:
    # What rootless mode needs of an installation: the package and the virtualenv readable by everyone.
    for path in (REPO / "mockfs", REPO / "abi_harness", cli_path()):
        assert os.stat(path).st_mode & 0o005 == 0o005, path

"""Run an unmodified program with mock files at their canonical paths.

:func:`run_in_namespace` starts a small Python "runner" in a private mount
namespace. The runner lays the mock over the canonical paths, then forks and
execs the program, waits for it and reports its exit status:

* ``/sys/kernel`` becomes a tmpfs holding read-only binds of every real entry
  plus binds of the mock's entries (so writes reach the mock, i.e. its daemon);
* ``/proc`` becomes the FUSE file system of :mod:`mockfs.procfs` when the mock
  has ``proc/vmcore`` or ``proc/device-tree``; its daemon is forked by the runner
  inside the namespace. A mock vmcore that is already mode 0400 and owned by
  root is bind-mounted over /proc/vmcore, so that its reads reach the mock's
  daemon from the reader itself; any other is served by the /proc daemon;
* each ``extra_binds`` target gets its host file or directory bound over it.

Nothing is mounted outside the namespace. Teardown is layered so that a
SIGKILL anywhere leaves nothing behind: the runner and everything it forks die
with their parent (``PR_SET_PDEATHSIG``); the runner kills whatever is left in
its namespace when the program ends; and each run records itself under the
runtime directory so that :func:`cleanup` can kill survivors of a killed run
(for instance grandchildren of the program).

The runner (:mod:`mockfs.nsrunner`) imports this module in a fresh interpreter
for every run, so the code it uses sticks to builtin modules (os, ctypes, marshal): pathlib, json,
dataclasses and typing together would double the cost of a run. The caller's
side imports what it needs inside its functions.
"""

from __future__ import annotations

import ctypes
import marshal
import os
import signal
import sys
import time

from mockfs.syscalls import (
    check,
    die_with_parent,
    libc,
    umount_lazy,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping, Sequence
    from pathlib import Path
    from typing import IO, Any

__all__ = ["CleanupReport", "NamespaceError", "cleanup", "default_runtime_dir", "namespace_members", "run_in_namespace"]

RUNTIME_DIR_ENV = "ABI_HARNESS_RUNTIME_DIR"

# Linux ABI numbers beyond those in mockfs.syscalls.
_SYS_MOUNT_SETATTR = 442  # new-style syscall: one number for all architectures
_AT_FDCWD, _AT_RECURSIVE, _MOUNT_ATTR_RDONLY = -100, 0x8000, 0x1

# Exit code of a runner that could not even report through its status pipe.
_RUNNER_FAILED = 125

_BOOT = "import sys; sys.path[:0] = sys.argv[2:]; from mockfs.nsrunner import runner_main; runner_main(sys.argv[1])"


class NamespaceError(RuntimeError):
    """The namespace could not be set up, or its runner died before reporting."""


def _die_with_parent(expected_parent: int) -> None:
    die_with_parent(expected_parent, _RUNNER_FAILED)


class _suppress:
    """contextlib.suppress without importing contextlib (and collections) into every runner."""

    def __init__(self, *exceptions: type[BaseException]) -> None:
        self.exceptions = exceptions

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: object) -> bool:
        return kind is not None and issubclass(kind, self.exceptions)


class _MountAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("attr_set", "attr_clr", "propagation", "userns_fd")]


def _make_readonly_recursive(target: str) -> None:
    """Mark a mount tree read-only (mount_setattr, Linux 5.12+); binds copied from it stay read-only."""
    attr = _MountAttr(attr_set=_MOUNT_ATTR_RDONLY)
    ret = libc().syscall(_SYS_MOUNT_SETATTR, _AT_FDCWD, os.fsencode(target), _AT_RECURSIVE, ctypes.byref(attr),
                         ctypes.sizeof(attr))
    check(ret, f"mount_setattr {target} read-only")


# ---------------------------------------------------------------------------
# Process discovery (used by the runner and by cleanup)


def _start_time(pid: int, proc: str = "/proc") -> int | None:
    """Field 22 of /proc/<pid>/stat, to tell a process from a later one with the same pid.

    None for a process that is gone or a zombie (dead for our purposes).
    """
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return None if fields[0] == b"Z" else int(fields[19])


def _mntns(pid: int | str, proc: str = "/proc") -> int | None:
    try:
        link = os.readlink(f"{proc}/{pid}/ns/mnt")
    except OSError:
        return None
    return int(link[link.index("[") + 1 : -1])


def _mountinfo_escape(path: str) -> str:
    return path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")


def _mountinfo_unescape(field: str) -> str:
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def _has_mount_at(pid: int, mountpoint: str, proc: str = "/proc") -> bool:
    """Whether ``mountpoint`` is a mount point in the mount namespace of ``pid``."""
    wanted = _mountinfo_escape(mountpoint)
    try:
        with open(f"{proc}/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            return any(line.split(" ", 5)[4] == wanted for line in f)
    except (OSError, IndexError):
        return False


def namespace_members(stage: str | os.PathLike[str], mntns: int | None = None, proc: str = "/proc") -> list[int]:
    """Live pids whose mount namespace has a runner's staging mount at ``stage``.

    The staging mount exists only inside runners' namespaces, so it marks them;
    with ``mntns`` only that namespace counts (a guard should the namespace's
    inode number be reused, and a cheap pre-filter).
    """
    stage = os.fspath(stage)
    members = []
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        ns = _mntns(name, proc)
        if ns is None or (mntns is not None and ns != mntns):
            continue
        if _has_mount_at(int(name), stage, proc):
            members.append(int(name))
    return members


def _kill_and_wait(pids: Sequence[int], deadline: float = 3.0, proc: str = "/proc") -> None:
    """SIGKILL ``pids`` and wait until they are gone (they need not be our children, so no reaping)."""
    starts = {pid: _start_time(pid, proc) for pid in pids}
    for pid in pids:
        with _suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + deadline
    while time.monotonic() < end and any(_start_time(pid, proc) == start for pid, start in starts.items()):
        time.sleep(0.002)


# ---------------------------------------------------------------------------
# Run records and cleanup


def default_runtime_dir() -> Path:
    """Where run records and the in-namespace staging mount point live.

    ``$ABI_HARNESS_RUNTIME_DIR`` if set, else ``/run/abi-harness`` for root, else
    ``$XDG_RUNTIME_DIR/abi-harness`` or ``/tmp/abi-harness-<uid>``.
    """
    from pathlib import Path

    if override := os.environ.get(RUNTIME_DIR_ENV):
        return Path(override)
    if os.geteuid() == 0:
        return Path("/run/abi-harness")
    if xdg := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(xdg) / "abi-harness"
    return Path(f"/tmp/abi-harness-{os.geteuid()}")


class CleanupReport:
    """What :func:`cleanup` found and removed; false when it found nothing."""

    def __init__(self) -> None:
        self.killed: list[int] = []
        self.records: list[str] = []
        self.unmounted: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.killed or self.records or self.unmounted)

    def __repr__(self) -> str:
        return f"CleanupReport(killed={self.killed}, records={self.records}, unmounted={self.unmounted})"


def _read_record(path: str) -> dict[str, Any] | None:
    import ast

    try:
        with open(path) as f:
            record = ast.literal_eval(f.read())
    except (OSError, ValueError, SyntaxError):
        return None
    return record if isinstance(record, dict) else None


def _record_is_live(record: Mapping[str, Any]) -> bool:
    """A run is live while both its runner and the process that started it are."""
    try:
        return _start_time(record["pid"]) == record["start"] and _start_time(record["caller"]) == record["caller_start"]
    except (KeyError, TypeError, ValueError):
        return False


def _reap_record(path: str, report: CleanupReport) -> None:
    """Kill what is left of the run that ``path`` records, then forget the run."""
    record = _read_record(path)
    if record is not None and "stage" in record and "mntns" in record:
        # Kill in rounds: a survivor may still be forking while we look.
        for _ in range(5):
            victims = namespace_members(record["stage"], record["mntns"])
            if not victims:
                break
            _kill_and_wait(victims)
            report.killed.extend(victims)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    report.records.append(path)


def _host_mounts_under(root: str) -> list[str]:
    """Mount points on the host at or below ``root``, deepest first, unescaped."""
    prefix = _mountinfo_escape(root)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            mountpoint = line.split(" ", 5)[4]
            if mountpoint == prefix or mountpoint.startswith(prefix + "/"):
                found.append(_mountinfo_unescape(mountpoint))
    return sorted(found, key=len, reverse=True)


def cleanup(runtime_dir: str | os.PathLike[str] | None = None, *, include_live: bool = False) -> CleanupReport:
    """Remove what killed runs left behind; safe to call at any time, from any process.

    For each run record under ``runtime_dir`` whose runner or whose caller has
    died (every record with ``include_live``), kill every process still in that
    run's mount namespace (the /proc daemon, the program, its children) and
    delete the record. Then detach any mount on the host under ``runtime_dir``,
    which a correct run never makes but a manual debugging session might.
    """
    root = os.path.realpath(runtime_dir if runtime_dir is not None else default_runtime_dir())
    runs = os.path.join(root, "runs")
    report = CleanupReport()
    for name in sorted(os.listdir(runs)) if os.path.isdir(runs) else []:
        path = os.path.join(runs, name)
        if not name.endswith(".run"):
            pid = name.split(".")[0]
            if name.endswith(".tmp") and pid.isdigit() and _start_time(int(pid)) is None:
                os.unlink(path)  # a runner killed while writing its record
            continue
        record = _read_record(path)
        if record is not None and not include_live and _record_is_live(record):
            continue
        _reap_record(path, report)
    if os.path.isdir(root):
        for mountpoint in _host_mounts_under(root):
            try:
                umount_lazy(mountpoint)
            except OSError:
                continue
            report.unmounted.append(mountpoint)
    return report


# ---------------------------------------------------------------------------
# The caller's side

_BOOT_PATHS: tuple[str, ...] | None = None
_LIBFUSE3: list[str | None] = []


def _boot_paths() -> tuple[str, ...]:
    """sys.path entries the runner needs: it starts with -I -S, skipping site's slow set-up."""
    global _BOOT_PATHS
    if _BOOT_PATHS is None:
        import importlib.util

        spec = importlib.util.find_spec("mfusepy")
        paths = [os.path.dirname(os.path.dirname(os.path.realpath(__file__)))]
        if spec is not None and spec.origin:
            paths.append(os.path.dirname(spec.origin))
        _BOOT_PATHS = tuple(paths)
    return _BOOT_PATHS


def _libfuse3() -> str | None:
    """The libfuse3 library name, looked up once (find_library runs ldconfig)."""
    if not _LIBFUSE3:
        from ctypes.util import find_library

        _LIBFUSE3.append(find_library("fuse3"))
    return _LIBFUSE3[0]


def _read_status(fd: int) -> dict[str, str]:
    """The runner's reports: one ``key value`` line each, the last of a key wins."""
    os.set_blocking(fd, False)
    chunks = []
    with _suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    events = {}
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        key, _, value = line.partition(" ")
        events[key] = value
    return events


def _communicate(proc: subprocess.Popen[Any], input: bytes | str | None, timeout: float | None, record: str) -> tuple[Any, Any]:
    """Popen.communicate, except that the run is reaped as soon as the runner dies.

    Should the runner be killed, survivors in its namespace may hold the capture
    pipes open indefinitely; killing them is what lets communicate finish.
    """
    import subprocess

    end = None if timeout is None else time.monotonic() + timeout
    piped = proc.stdout is not None or proc.stderr is not None
    reaped = False
    while True:
        left = None if end is None else max(0.0, end - time.monotonic())
        # Without capture pipes, nothing but the runner itself can hold us up.
        wait = left if reaped or not piped else (0.25 if left is None else min(0.25, left))
        try:
            return proc.communicate(input, timeout=wait)
        except subprocess.TimeoutExpired:
            if end is not None and time.monotonic() >= end:
                raise subprocess.TimeoutExpired(proc.args, timeout) from None
            if not reaped and proc.poll() is not None:
                _reap_record(record, CleanupReport())
                reaped = True


def run_in_namespace(
    mock_root: str | os.PathLike[str],
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    extra_binds: Mapping[str, str | os.PathLike[str]] | None = None,
    timeout: float | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdin: int | IO[Any] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    capture_output: bool = False,
    input: bytes | str | None = None,
    text: bool = False,
    runtime_dir: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[Any]:
    """Run ``argv`` with ``mock_root`` laid over the canonical paths; return its exit status.

    ``mock_root`` mirrors canonical paths (any part may be absent):
    ``sys/kernel/...`` appears under /sys/kernel next to the real entries (which
    are made read-only), ``proc/vmcore`` at /proc/vmcore (mode 0400, root) and
    ``proc/device-tree`` at /proc/device-tree; the rest of /proc stays real.
    ``extra_binds`` maps a canonical path to a host file or directory bound over
    it; the target must exist, unless it lies in the /sys/kernel tmpfs.

    ``env`` (default: this process's environment), ``cwd`` (entered inside the
    namespace), ``stdin``/``stdout``/``stderr``, ``capture_output``, ``input``,
    ``text`` and ``timeout`` behave as in :func:`subprocess.run`. The returned
    ``returncode`` is the program's exit status, or 128+N if signal N killed it.
    ``runtime_dir`` defaults to :func:`default_runtime_dir`.

    Raises :class:`NamespaceError` when the namespace cannot be set up (for
    example when rootless mode finds user namespaces disabled), ``OSError``
    (e.g. ``FileNotFoundError``) when ``argv[0]`` cannot be executed, and
    :class:`subprocess.TimeoutExpired` after killing everything on timeout.
    """
    import subprocess

    argv = [os.fspath(a) for a in argv]
    if not argv:
        raise ValueError("argv is empty")
    mock = os.path.realpath(mock_root)
    if not os.path.isdir(mock):
        raise NamespaceError(f"mock root {mock} is not a directory")
    binds = {}
    for target, source in (extra_binds or {}).items():
        if not os.path.isabs(target):
            raise ValueError(f"extra_binds target {target!r} is not absolute")
        src = os.path.realpath(source)
        if not os.path.exists(src):
            raise NamespaceError(f"extra_binds source {src} does not exist")
        binds[os.path.normpath(target)] = src

    root = os.path.realpath(runtime_dir if runtime_dir is not None else default_runtime_dir())
    os.makedirs(os.path.join(root, "runs"), exist_ok=True)
    os.makedirs(os.path.join(root, "stage"), exist_ok=True)

    status_r, status_w = os.pipe()
    spec = {
        "mock": mock,
        "argv": argv,
        "binds": binds,
        "cwd": None if cwd is None else os.fspath(cwd),
        "runtime": root,
        "caller": os.getpid(),
        "caller_start": _start_time(os.getpid()),
        "status_fd": status_w,
        "libfuse": _libfuse3(),
    }
    if input is not None:
        stdin = subprocess.PIPE
    if capture_output:
        stdout = stderr = subprocess.PIPE
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _BOOT, marshal.dumps(spec).hex(), *_boot_paths()],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=dict(env) if env is not None else None,
            pass_fds=(status_w,),
            text=text,
        )
    except BaseException:
        os.close(status_r)
        raise
    finally:
        os.close(status_w)

    record = os.path.join(root, "runs", f"{proc.pid}.run")
    try:
        with proc:
            try:
                out, err = _communicate(proc, input, timeout, record)
            except BaseException:
                # Timeout, KeyboardInterrupt...: the runner's death takes the program and
                # the daemon with it (PDEATHSIG); grandchildren are found by namespace.
                proc.kill()
                proc.wait()
                _reap_record(record, CleanupReport())
                raise
        status = _read_status(status_r)
    finally:
        os.close(status_r)

    if "error" in status:
        raise NamespaceError(status["error"])
    if "exec_errno" in status:
        code, _, step = status["exec_errno"].partition(" ")
        raise OSError(int(code), os.strerror(int(code)), cwd if step == "cwd" else argv[0])
    if "exit" not in status:
        _reap_record(record, CleanupReport())
        raise NamespaceError(f"the namespace runner died without reporting (status {proc.returncode}); cleaned up after it")
    return subprocess.CompletedProcess(argv, int(status["exit"]), out, err)


# ---------------------------------------------------------------------------
# Command line: python -m mockfs.namespace [--cleanup] [--bind T=S] MOCK PROGRAM [ARG...]


def main(args: Sequence[str] | None = None) -> int:
    """Small command line for manual use; prints one line on errors."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mockfs.namespace", description=__doc__.splitlines()[0])
    parser.add_argument("--cleanup", action="store_true", help="remove what killed runs left behind, then exit")
    parser.add_argument("--bind", action="append", default=[], metavar="TARGET=SOURCE", help="bind SOURCE over TARGET inside")
    parser.add_argument("mock", nargs="?")
    parser.add_argument("program", nargs=argparse.REMAINDER)
    opts = parser.parse_args(args)
    if opts.cleanup:
        print(cleanup())
        return 0
    program = opts.program[1:] if opts.program[:1] == ["--"] else opts.program
    if opts.mock is None or not program:
        parser.error("a mock directory and a program are needed")
    try:
        binds = dict(b.split("=", 1) for b in opts.bind)
        return run_in_namespace(opts.mock, program, extra_binds=binds).returncode
    except (NamespaceError, OSError, ValueError) as exc:
        print(f"abi-harness: {exc}", file=sys.stderr)
        return _RUNNER_FAILED


if __name__ == "__main__":
    sys.exit(main())

"""Serve a fixture's dump ABI over FUSE: in the foreground, or as a daemon.

:func:`mount` forks a daemon that serves the mock and returns once the kernel
has completed the FUSE handshake (the daemon's ``init`` callback writes to a
pipe: the same readiness signal the /proc daemon uses); :func:`umount` ends it.
The daemon writes a JSON report (what was read and released, the violations)
when the filesystem is unmounted, and records itself (pid, start time, mount
namespace) under the runtime directory so that
:func:`mockfs.sandbox.cleanup.cleanup` can remove what a killed run left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abi_specs.errors import AbiError
from mockfs.live import LiveMachine
from mockfs.sandbox import syscalls
from mockfs.sandbox.mountinfo import is_mount_point
from mockfs.sandbox.processes import kill_and_wait, mount_namespace, start_time
from mockfs.sandbox.records import read_record, write_record
from mockfs.sandbox.runtime import subdir
from mockfs.sandbox.stops import STOP_SIGNALS

from . import cache
from .binding import Fuse
from .faults import FaultPlan
from .fs import MockFS
from .trace import Trace


class MountError(AbiError):
    """The mock could not be mounted or unmounted; the message says where and why."""


@dataclass(frozen=True)
class Mounted:
    """A running mock daemon."""

    pid: int
    mountpoint: Path
    report: Path | None


def record_path(mountpoint: Path) -> Path:
    """Where the record of the mock at *mountpoint* lives (one per mount point)."""
    # Two independent checksums of the path name it; not hashlib, whose OpenSSL costs every run ~5 ms.
    where = str(mountpoint.resolve()).encode()
    key = f"{zlib.crc32(where):08x}{zlib.adler32(where):08x}"
    return Path(subdir("mounts")) / f"{key}.rec"


def is_mounted(mountpoint: Path) -> bool:
    """Whether *mountpoint* is a mount point in this mount namespace."""
    return is_mount_point(str(mountpoint.resolve()))


def end_run_of(machine: LiveMachine, pid: int) -> None:
    """The machine went down (under the process *pid*, 0 from outside): every process of its runs dies.

    A run is everything in a runner's private mount namespace: the writer's,
    and those of the runners that opened the machine's control file. A writer
    in our own namespace (someone poking a plain ``abi-harness mount``) is not
    a run: the crash is recorded and nobody is killed for it.
    """
    ours = mount_namespace("self")
    namespaces = set(machine.run_namespaces)
    if pid:
        namespaces.add(mount_namespace(pid))
    namespaces -= {None, ours}
    if not namespaces:
        return
    victims = [int(p) for p in os.listdir("/proc") if p.isdigit() and mount_namespace(p) in namespaces]
    kill_and_wait(victims)


def serve(machine: LiveMachine, mountpoint: Path, trace: Path | None = None, faults: FaultPlan | None = None,
          report: Path | None = None, on_ready: Callable[[], None] | None = None,
          keep: Callable[[LiveMachine], None] | None = None, spare_groups: frozenset[int] = frozenset()) -> None:
    """Serve *machine* at *mountpoint* until it is unmounted (blocks); *keep* persists its state after each change.

    kill-after never kills a process group in *spare_groups* as a whole, only the reader.
    """
    syscalls.keep_heap_memory()
    machine.on_change = keep
    machine.on_crash = end_run_of
    handlers = _LibfuseSignalHandlers()

    def ready() -> None:  # libfuse's loop runs, its handlers in place: the stop signals may come now
        handlers.let_through()
        if on_ready is not None:
            on_ready()

    fs = MockFS(machine, Trace(trace), faults, on_ready=ready, spare_groups=spare_groups)
    # One thread serves every request: the GIL serialises the handlers anyway, and libfuse's
    # multi-threaded loop hands consecutive requests to different sleeping workers, which cost
    # 40-70 % of streaming and a third more per attribute round trip (README, speed). Names and
    # attributes stay cached (fs.cache invalidates what a write changes); a missing name is asked again.
    options = {"foreground": True, "nothreads": True, "direct_io": True, "default_permissions": True,
               "fsname": "abi-harness", "subtype": "abi-harness",
               "entry_timeout": cache.TIMEOUT, "attr_timeout": cache.TIMEOUT, "negative_timeout": 0.0}
    if os.geteuid() == 0:
        options["allow_other"] = True  # the collector may run as another user
    try:
        with handlers:
            Fuse(fs, str(mountpoint), **options)
    except RuntimeError as exc:
        # libfuse's loop ends with an error code when SIGINT or SIGTERM stops it (8 with libfuse 3):
        # a requested stop, not a failure. Anything else is one line for the caller.
        if not _stopped_by_signal(exc):
            raise MountError(f"{mountpoint}: the FUSE loop failed ({exc})") from None
    finally:
        machine.finish()
        if keep is not None:
            keep(machine)
        fs.trace.record(os.getpid(), "", "summary", **machine.summary())
        fs.trace.close()
        if report is not None:
            tmp = report.with_suffix(".tmp")
            tmp.write_text(json.dumps(machine.summary(), indent=2))
            tmp.replace(report)


class _LibfuseSignalHandlers:
    """Let libfuse's own handlers end its loop on SIGINT, SIGTERM and SIGHUP.

    libfuse installs them only over the default action, and a Python handler
    could never run while the main thread waits in fuse_main (mfusepy resets
    SIGINT alone): the command line's SIGTERM handler would leave the mount
    serving forever. Between the reset to the default action and libfuse's own
    handlers, a stop signal would kill the daemon outright, its mount left
    behind and its report unwritten; so the signals stay blocked until the
    loop runs (:meth:`let_through`, from the mock's ``init``), and one that came
    meanwhile then ends the loop as any stop does. The caller's handlers and
    mask come back afterwards.
    """

    STOPS = frozenset(STOP_SIGNALS)

    def __init__(self) -> None:
        self._saved: dict[int, Any] = {}
        self._mask: set[int] | None = None

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, self.STOPS)
        self._saved = {sig: signal.signal(sig, signal.SIG_DFL) for sig in self.STOPS}

    def let_through(self) -> None:
        if self._mask is not None:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self.STOPS - self._mask)

    def __exit__(self, *exc: object) -> None:
        if self._mask is None:
            return
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)  # a stop that came late meets the caller's handler


def _stopped_by_signal(exc: RuntimeError) -> bool:
    """Whether mfusepy's RuntimeError is libfuse reporting the signal that ended its loop."""
    code = exc.args[0] if exc.args else None
    return isinstance(code, int) and code in (*STOP_SIGNALS, 8)


def check_mountpoint(mountpoint: Path) -> None:
    if not mountpoint.exists():
        raise MountError(f"{mountpoint}: the mount point does not exist (create it first: mkdir -p {mountpoint})")
    if not mountpoint.is_dir():
        raise MountError(f"{mountpoint}: the mount point is not a directory")
    if is_mounted(mountpoint):
        raise MountError(f"{mountpoint}: something is already mounted there")
    if problem := fuse_device_problem():
        raise MountError(problem)


def fuse_device_problem() -> str | None:
    """What keeps this user from FUSE mounts (one line), or None when /dev/fuse is there to open."""
    if not Path("/dev/fuse").exists():
        return "/dev/fuse is missing: load the fuse module (modprobe fuse)"
    # libfuse opens /dev/fuse itself before it would ever fall back to fusermount3.
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        mode = os.stat("/dev/fuse").st_mode & 0o777
        return (f"/dev/fuse (mode {mode:04o}) cannot be opened by you: run as root, or make it 0666 as most "
                "distributions ship it")
    return None


def _daemon(machine: LiveMachine, mountpoint: Path, trace: Path | None, faults: FaultPlan | None, report: Path | None,
            log: Path, ready_w: int, parent: int | None, keep: Callable[[LiveMachine], None] | None) -> None:
    """Body of the forked daemon; never returns."""
    code = 0
    try:
        if parent is not None:
            syscalls.die_with_parent(parent)
        owner_group = os.getpgrp()
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):
            os.dup2(devnull, fd)
        with contextlib.suppress(OSError):
            os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600), 2)

        def ready() -> None:
            os.write(ready_w, b"1")
            os.close(ready_w)

        serve(machine, mountpoint, trace, faults, report, on_ready=ready, keep=keep,
              spare_groups=frozenset({owner_group}))
    except BaseException as exc:  # report and leave: a daemon has no one to raise to
        print(f"abi-harness daemon: {exc}", file=sys.stderr)
        code = 1
    finally:
        os._exit(code)


def mount(machine: LiveMachine, mountpoint: Path, trace: Path | None = None, faults: FaultPlan | None = None,
          report: Path | None = None, timeout: float = 30.0, log: Path | None = None,
          die_with_parent: bool = False, keep: Callable[[LiveMachine], None] | None = None) -> Mounted:
    """Fork a daemon serving *machine* at *mountpoint*; return once the mount answers.

    The daemon's diagnostics (libfuse's included) go to *log* (default: a file
    next to the mount record); a failed mount quotes its last line. With
    *die_with_parent* the daemon is killed when the calling process dies (runs
    and tests); without it, it outlives the caller (``abi-harness mount``).
    """
    mountpoint = Path(mountpoint)
    check_mountpoint(mountpoint)
    record = record_path(mountpoint)
    log = log or record.with_suffix(".log")
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        _daemon(machine, mountpoint, trace, faults, report, log, ready_w, os.getppid() if die_with_parent else None, keep)
    os.close(ready_w)
    try:
        # The pipe says "1" once the FUSE handshake is done, or EOF when the daemon died first.
        readable, _, _ = select.select([ready_r], [], [], timeout)
        signal_ = os.read(ready_r, 1) if readable else None
    finally:
        os.close(ready_r)
    if signal_ != b"1":
        if signal_ is None:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        why = _last_line(log) or (f"no answer within {timeout:g} s" if signal_ is None
                                  else f"exit status {os.waitstatus_to_exitcode(status)}")
        raise MountError(f"{mountpoint}: the mock daemon could not mount: {why}")
    write_record(str(record), {"pid": pid, "start": start_time(pid), "mntns": mount_namespace(pid),
                               "mountpoint": str(mountpoint.resolve()), "log": str(log)})
    return Mounted(pid, mountpoint, report)


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line for line in path.read_text(errors="replace").splitlines() if "max threads" not in line]
        return lines[-1].strip() if lines else ""
    return ""


def umount(mountpoint: Path, timeout: float = 120.0, pid: int | None = None) -> None:
    """Unmount the mock at *mountpoint* and wait for its daemon (*pid*, else the recorded one) to write its report."""
    mountpoint = Path(mountpoint)
    record = record_path(mountpoint)
    info = read_record(str(record)) or {}
    pid = pid if pid is not None else info.get("pid")
    if not is_mounted(mountpoint):
        record.unlink(missing_ok=True)
        raise MountError(f"{mountpoint}: no mock is mounted there")
    try:
        syscalls.umount(mountpoint)  # with the privilege (root, or our own user namespace), as fusermount3 would
    except OSError:
        proc = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True, text=True)
        if proc.returncode != 0:
            syscalls.umount_lazy(mountpoint)
    if pid is not None:
        _wait_gone(pid, timeout, info.get("start"))
    record.unlink(missing_ok=True)
    if info.get("log"):
        Path(info["log"]).unlink(missing_ok=True)


def _wait_gone(pid: int, timeout: float, start: int | None) -> None:
    """Wait for the daemon to exit (it writes its report first); SIGKILL it only after *timeout*."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if start is not None and start_time(pid) != start:
            return  # already gone, and the pid is someone else's now
        readable, _, _ = select.select([fd], [], [], timeout)
        if not readable:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
            raise MountError(f"mock daemon {pid} did not finish within {timeout:g} s after unmount; killed it "
                             "(its report is lost)")
    finally:
        os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)

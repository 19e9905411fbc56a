"""Serve a fixture's dump ABI over FUSE: in the foreground, or as a daemon.

:func:`mount` forks a daemon that serves the mock and returns once the mount
answers; :func:`umount` ends it. The daemon writes a JSON report (what was
read and released, the violations) when the filesystem is unmounted, and
records itself under ``/run/abi-harness`` so that :func:`cleanup` can remove
what a killed run left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from abi_specs.errors import AbiError

from . import syscalls
from .faults import FaultPlan
from .fs import MockFS, mfusepy
from .live import LiveMachine
from .trace import Trace

RUNTIME = Path(os.environ.get("ABI_HARNESS_RUNTIME", "/run/abi-harness"))


class MountError(AbiError):
    """The mock could not be mounted or unmounted; the message says where and why."""


@dataclass(frozen=True)
class Mounted:
    """A running mock daemon."""

    pid: int
    mountpoint: Path
    report: Path | None


def _record_path(mountpoint: Path) -> Path:
    return RUNTIME / "mounts" / (str(mountpoint.resolve()).strip("/").replace("/", "_") + ".json")


def is_mounted(mountpoint: Path) -> bool:
    """Whether *mountpoint* is a mount point in this mount namespace."""
    target = str(mountpoint.resolve())
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        return any(line.split()[4].replace("\\040", " ") == target for line in info)


def serve(machine: LiveMachine, mountpoint: Path, trace: Path | None = None, faults: FaultPlan | None = None,
          report: Path | None = None) -> None:
    """Serve *machine* at *mountpoint* until it is unmounted (blocks)."""
    syscalls.keep_heap_memory()
    fs = MockFS(machine, Trace(trace), faults)
    options = {"foreground": True, "direct_io": True, "default_permissions": True, "fsname": "abi-harness",
               "subtype": "abi-harness"}
    if os.geteuid() == 0:
        options["allow_other"] = True  # the collector may run as another user
    try:
        mfusepy.FUSE(fs, str(mountpoint), **options)
    finally:
        machine.finish()
        fs.trace.record(os.getpid(), "", "summary", **machine.summary())
        fs.trace.close()
        if report is not None:
            tmp = report.with_suffix(".tmp")
            tmp.write_text(json.dumps(machine.summary(), indent=2))
            tmp.replace(report)


def mount(machine: LiveMachine, mountpoint: Path, trace: Path | None = None, faults: FaultPlan | None = None,
          report: Path | None = None, timeout: float = 10.0, log: Path | None = None,
          die_with_parent: bool = False) -> Mounted:
    """Fork a daemon serving *machine* at *mountpoint*; return once the mount answers.

    The daemon's diagnostics (libfuse's included) go to *log* (default: a file
    next to the mount record); a failed mount quotes its last line. With
    *die_with_parent* the daemon is killed when the calling thread's process
    dies (runs and tests); without it, it outlives the caller (``abi-harness mount``).
    """
    mountpoint = Path(mountpoint)
    log = log or _record_path(mountpoint).with_suffix(".log")
    with contextlib.suppress(OSError):
        log.parent.mkdir(parents=True, exist_ok=True)
    if not mountpoint.is_dir():
        raise MountError(f"{mountpoint}: mount point is not a directory")
    if is_mounted(mountpoint):
        raise MountError(f"{mountpoint}: something is already mounted there")
    if not Path("/dev/fuse").exists():
        raise MountError("/dev/fuse is missing: load the fuse module (modprobe fuse)")
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the daemon
        code = 0
        try:
            if die_with_parent:
                syscalls.die_with_parent(parent)
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1):
                os.dup2(devnull, fd)
            with contextlib.suppress(OSError):
                os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), 2)
            serve(machine, mountpoint, trace, faults, report)
        except BaseException as exc:  # report and leave: a daemon has no one to raise to
            print(f"abi-harness daemon: {exc}", file=sys.stderr)
            code = 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while not is_mounted(mountpoint):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            why = _last_line(log) or f"exit status {os.waitstatus_to_exitcode(status)}"
            raise MountError(f"{mountpoint}: the mock daemon could not mount: {why}")
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise MountError(f"{mountpoint}: the mount did not answer within {timeout:g} s")
        time.sleep(0.0005)
    record = _record_path(mountpoint)
    with contextlib.suppress(OSError):
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"pid": pid, "mountpoint": str(mountpoint.resolve())}))
    return Mounted(pid, mountpoint, report)


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line for line in path.read_text(errors="replace").splitlines() if "max threads" not in line]
        return lines[-1].strip() if lines else ""
    return ""


def umount(mountpoint: Path, timeout: float = 10.0, pid: int | None = None) -> None:
    """Unmount the mock at *mountpoint* and wait for its daemon (*pid*, else the recorded one) to finish."""
    mountpoint = Path(mountpoint)
    record = _record_path(mountpoint)
    if pid is None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = json.loads(record.read_text())["pid"]
    if not is_mounted(mountpoint):
        record.unlink(missing_ok=True)
        raise MountError(f"{mountpoint}: no mock is mounted there")
    proc = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True, text=True)
    if proc.returncode != 0:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
    if pid is not None:
        _wait_gone(pid, timeout)
    record.unlink(missing_ok=True)


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:  # not our child: poll for its exit
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.002)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _answers(mountpoint: Path) -> bool:
    """Whether the FUSE mount at *mountpoint* is served (a dead daemon gives ENOTCONN)."""
    try:
        os.stat(mountpoint)
        return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def cleanup(everything: bool = False) -> list[str]:
    """Remove mounts and daemons a crashed run left behind; say what was done.

    A mock whose daemon is alive and whose mount answers is someone's live
    mock: it is left alone unless *everything* is asked for.
    """
    done = []
    for record in sorted((RUNTIME / "mounts").glob("*.json")) if (RUNTIME / "mounts").is_dir() else []:
        try:
            info = json.loads(record.read_text())
        except (OSError, ValueError):
            record.unlink(missing_ok=True)
            continue
        mountpoint = Path(info["mountpoint"])
        live = _alive(int(info["pid"])) and is_mounted(mountpoint) and _answers(mountpoint)
        if live and not everything:
            continue
        if is_mounted(mountpoint):
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
            done.append(f"unmounted {mountpoint}")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(info["pid"]), signal.SIGKILL)
            done.append(f"killed daemon {info['pid']}")
        record.unlink(missing_ok=True)
    return done

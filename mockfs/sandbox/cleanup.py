"""The one cleanup: end what killed runs and mocks left behind, and nothing that still lives.

Two kinds of record live under the runtime directory (:mod:`.runtime`):

* ``runs/PID.run``: a runner in its private mount namespace; it is live while
  the runner and the process that started it are (pid *and* start time);
* ``mounts/NAME.rec``: a mock daemon, its mount point and the mount namespace
  it mounted in; it is live while the daemon is (pid and start time).

Liveness is decided from the processes themselves, never from whether a mount
is visible in the caller's namespace: a run's mock is mounted only inside the
run's own namespace, so looking for it from outside would wrongly call it dead.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Any

from .mountinfo import is_mount_point, mounts_under
from .processes import is_alive, kill_and_wait, mount_namespace, namespace_members, start_time
from .records import read_record
from .runtime import runtime_dir
from .scratch import stale_scratch
from .syscalls import umount_lazy


@dataclass
class CleanupReport:
    """What :func:`cleanup` found and removed; false when it found nothing."""

    killed: list[int] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    unmounted: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # stale, but another user's: not ours to remove

    def __bool__(self) -> bool:
        return bool(self.killed or self.records or self.unmounted or self.removed)

    def lines(self) -> list[str]:
        """One line per thing done, for people."""
        return ([f"killed stray process {pid}" for pid in self.killed] + [f"unmounted {m}" for m in self.unmounted]
                + [f"removed record {r}" for r in self.records] + [f"removed {p}" for p in self.removed])


def run_is_live(record: dict[str, Any]) -> bool:
    """A run is live while both its runner and the process that started it are."""
    try:
        return is_alive(record["pid"], record["start"]) and is_alive(record["caller"], record["caller_start"])
    except (KeyError, TypeError):
        return False


def reap_run(path: str, report: CleanupReport) -> None:
    """Kill what is left of the run that *path* records, then forget the run."""
    record = read_record(path)
    if record is not None and "stage" in record and "mntns" in record:
        # Kill in rounds: a survivor may still be forking while we look.
        for _ in range(5):
            victims = namespace_members(record["stage"], record["mntns"])
            if not victims:
                break
            kill_and_wait(victims)
            report.killed.extend(victims)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    report.records.append(path)


def _stale_tmp(path: str, name: str) -> bool:
    """A ``PID.tmp`` whose writer is gone: a record half-written when it was killed."""
    pid = name.split(".")[0]
    return name.endswith(".tmp") and pid.isdigit() and start_time(int(pid)) is None and os.path.isfile(path)


def _clean_runs(root: str, include_live: bool, report: CleanupReport) -> None:
    runs = os.path.join(root, "runs")
    for name in sorted(os.listdir(runs)) if os.path.isdir(runs) else []:
        path = os.path.join(runs, name)
        if not name.endswith(".run"):
            if _stale_tmp(path, name):
                os.unlink(path)
            continue
        record = read_record(path)
        if record is not None and not include_live and run_is_live(record):
            continue
        reap_run(path, report)


def _clean_mounts(root: str, include_live: bool, report: CleanupReport) -> None:
    mounts = os.path.join(root, "mounts")
    here = mount_namespace("self")
    for name in sorted(os.listdir(mounts)) if os.path.isdir(mounts) else []:
        path = os.path.join(mounts, name)
        if not name.endswith(".rec"):
            if _stale_tmp(path, name):
                os.unlink(path)
            continue
        record = read_record(path) or {}
        live = is_alive(record.get("pid", -1), record.get("start"))
        if live and not include_live:
            continue
        mountpoint = record.get("mountpoint", "")
        # Only a mount in our own namespace can be ours to detach; one in a run's
        # namespace dies with that namespace.
        if mountpoint and record.get("mntns") == here and is_mount_point(mountpoint):
            try:
                umount_lazy(mountpoint)
                report.unmounted.append(mountpoint)
            except OSError:
                pass
        if live:
            kill_and_wait([record["pid"]])
            report.killed.append(record["pid"])
        for leftover in (path, record.get("log", "")):
            if leftover and os.path.exists(leftover):
                os.unlink(leftover)
        report.records.append(path)
    for name in sorted(os.listdir(mounts)) if os.path.isdir(mounts) else []:
        # A daemon's log outlives it only when its record went first: remove the orphans.
        if name.endswith(".log") and not os.path.exists(os.path.join(mounts, name[:-4] + ".rec")):
            os.unlink(os.path.join(mounts, name))
            report.removed.append(os.path.join(mounts, name))


def cleanup(root: str | os.PathLike[str] | None = None, *, include_live: bool = False) -> CleanupReport:
    """Remove what killed runs and mocks left behind; safe to call at any time, from any process.

    With *include_live*, live runs and mocks are ended too. Then any mount on
    the host under the runtime directory (which a correct run never makes but a
    manual debugging session might) is detached.
    """
    top = os.path.realpath(root) if root is not None else runtime_dir()
    report = CleanupReport()
    _clean_runs(top, include_live, report)
    _clean_mounts(top, include_live, report)
    for path in stale_scratch():  # work directories of killed runs, mocks and conform campaigns
        shutil.rmtree(path, ignore_errors=True)
        (report.left if os.path.lexists(path) else report.removed).append(path)
    if os.path.isdir(top):
        for mountpoint in mounts_under(top):
            try:
                umount_lazy(mountpoint)
            except OSError:
                continue
            report.unmounted.append(mountpoint)
    return report

"""Processes by identity, not just pid: start times, mount namespaces, and killing them surely.

A pid can be reused once its process is gone, so every record the harness
keeps of a process pairs the pid with its start time (field 22 of
``/proc/PID/stat``): a process is the recorded one only while both match.
Builtin modules only: the in-namespace runner uses this too.
"""

from __future__ import annotations

import os
import select
import signal
import time

from .mountinfo import is_mount_point


def start_time(pid: int, proc: str = "/proc") -> int | None:
    """The start time of *pid*, or None for a process that is gone or a zombie (dead for our purposes)."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return None if fields[0] == b"Z" else int(fields[19])


def is_alive(pid: int, start: int | None, proc: str = "/proc") -> bool:
    """Whether the process recorded as (*pid*, *start*) still runs (not a later one with its pid)."""
    return start is not None and start_time(pid, proc) == start


def mount_namespace(pid: int | str, proc: str = "/proc") -> int | None:
    """The inode of the mount namespace of *pid*, or None."""
    try:
        link = os.readlink(f"{proc}/{pid}/ns/mnt")
    except OSError:
        return None
    return int(link[link.index("[") + 1:-1])


def namespace_members(stage: str | os.PathLike[str], mntns: int | None = None, proc: str = "/proc") -> list[int]:
    """Live pids whose mount namespace has a runner's staging mount at *stage*.

    The staging mount exists only inside runners' namespaces, so it marks them;
    with *mntns* only that namespace counts (a guard should the namespace's
    inode number be reused, and a cheap pre-filter).
    """
    stage = os.fspath(stage)
    members = []
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        ns = mount_namespace(name, proc)
        if ns is None or (mntns is not None and ns != mntns):
            continue
        if is_mount_point(stage, name, proc):
            members.append(int(name))
    return members


def kill_and_wait(pids: list[int], deadline: float = 3.0, proc: str = "/proc") -> None:
    """SIGKILL *pids* and wait until they are gone (they need not be our children, so no reaping).

    Each process is pinned with a pidfd first and checked to be the one seen,
    so a pid reused in between is never signalled; the wait is for the pidfds
    to become readable (the processes exited), not a sleep.
    """
    fds = []
    for pid in pids:
        start = start_time(pid, proc)
        if start is None:
            continue
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        if start_time(pid, proc) != start:  # exited and reused between the two looks
            os.close(fd)
            continue
        try:  # noqa: SIM105 - no contextlib: the runner imports builtin modules only
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        fds.append(fd)
    end = time.monotonic() + deadline
    try:
        pending = list(fds)
        while pending and (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select(pending, [], [], left)
            pending = [fd for fd in pending if fd not in ready]
    finally:
        for fd in fds:
            os.close(fd)

"""The run's init: process 1 of the PID namespace the runner gives each run.

The runner (:mod:`.inside`) unshares a PID namespace and forks :func:`run_init`.
The init mounts the namespace's own procfs, read-only (the /proc overlay's
entries link into it, so the program sees its run's processes only, numbered
as ``getpid()`` numbers them); takes a mount namespace of its own without the
host's procfs, which the runner and the /proc daemon keep beside it; seals its
system calls (:mod:`.seal`; the program inherits the filter) and hands the
listener to the runner, which answers the sealed calls. Then it forks the
program, passes on the terminal signals the runner passes to it (an init gets
only the signals it handles), reaps every orphan of the run, and exits with the
program's status: whatever of the run is still alive then dies with it, by the
kernel's hand. A step that fails is written to the runner as ``ERRNO STEP``
(:data:`STEPS`).
Builtin modules only, like the rest of the runner.
"""

from __future__ import annotations

import errno
import os
import signal

from mockfs.sandbox.quiet import suppress
from mockfs.sandbox.syscalls import (
    CLONE_NEWNS,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    die_with_parent,
    mount,
    set_name,
    umount_lazy,
    unshare,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

#: The name (comm) of the run's init, as ``ps`` inside the run shows it.
INIT_NAME = "abi-run-init"
#: Signals the runner and the run's init pass on to the program's process group.
FORWARDED = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)
#: The init's steps, as the runner says them when one fails (the program's own are ``cwd`` and ``exec``).
STEPS = {
    "init": "cannot start the run's init",
    "proc": "cannot mount the run's own /proc in its PID namespace",
    "hide": "cannot hide the host's /proc from the program (a mount namespace of its own)",
    "seal": "cannot seal the program's system calls (seccomp user notification is needed)",
}


def signal_group(pid: int, signum: int) -> None:
    """Send *signum* to the process group *pid* leads, if it is still there."""
    with suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pid, signum)


def run_init(run_proc: str, argv: list[str], cwd: str | None, env: dict[str, str], program: bytes, err_w: int,
             fd_w: int, go_r: int) -> NoReturn:
    """Be process 1 of the run's PID namespace: its /proc, the seal, then the program as its child.

    It mounts the namespace's own procfs (read-only: /proc's entries link into it), leaves the host's
    out of its own mount namespace, installs the syscall seal, which the program inherits, and hands
    the listener to the runner. Then it forks the program, passes the runner's terminal signals on to
    it, reaps every orphan, and exits with the program's status; the kernel kills whatever of the run
    is still alive when it does.
    """
    step = "init"
    child = 0

    def forward(signum: int, _frame: object) -> None:
        if child == 0:
            os._exit(128 + signum)  # before the program exists, a signal cancels the run
        signal_group(child, signum)

    try:
        # An init ignores every signal it has no handler for, and keeps none of the runner's descriptors.
        for sig in FORWARDED:
            signal.signal(sig, forward)
        _keep_only((err_w, fd_w, go_r))
        # Our parent is outside this namespace (getppid() is 0): the go pipe's EOF says it died.
        die_with_parent(0, 126)
        os.setpgid(0, 0)
        with suppress(OSError):  # a name for people only
            set_name(INIT_NAME)
        step = "proc"
        mount("proc", run_proc, "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        # The runner's and the /proc daemon's view of the host's procfs beside it is not the program's:
        # through its processes' fd links a path there would lead to what they hold open.
        step = "hide"
        unshare(CLONE_NEWNS)
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        umount_lazy(os.path.join(os.path.dirname(run_proc), "proc"))
        step = "seal"
        # Python ignores SIGPIPE and SIGXFSZ; the program expects the defaults.
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        from mockfs.sandbox.seal import install

        listener = install(program)
        os.write(fd_w, str(listener).encode())
        os.close(fd_w)
        if os.read(go_r, 1) != b"1":
            os._exit(126)
        os.close(go_r)
        os.close(listener)  # neither we nor the sealed program may hold the listener
        child = os.fork()
        if child == 0:
            _program(argv, cwd, env, err_w)
        with suppress(OSError):  # it did so first, or exec'd already
            os.setpgid(child, child)  # as the program does itself: a signal passed on at once finds its group
        os.close(err_w)
        while True:  # every orphan of the run is ours to reap; the program's status is the run's
            pid, status = os.waitpid(-1, 0)
            if pid == child:
                code = os.waitstatus_to_exitcode(status)
                os._exit(code if code >= 0 else 128 - code)
    except OSError as exc:
        with suppress(OSError):  # the runner is gone: nobody to tell
            os.write(err_w, f"{exc.errno or errno.ENOEXEC} {step}".encode())
    finally:
        os._exit(127)


def _keep_only(fds: tuple[int, ...]) -> None:
    """Close every descriptor from 3 up but *fds*."""
    low = 3
    for fd in sorted(fds):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _program(argv: list[str], cwd: str | None, env: dict[str, str], err_w: int) -> NoReturn:
    """The program's side of the init's fork: its own process group, its directory, exec."""
    step = "exec"
    try:
        die_with_parent(1, 127)
        os.setpgid(0, 0)  # a kill-after fault kills the program's group
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        step = "cwd"
        if cwd is not None:
            os.chdir(cwd)
        step = "exec"
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        os.write(err_w, f"{exc.errno or errno.ENOEXEC} {step}".encode())
    finally:
        os._exit(127)

"""The runner of :mod:`mockfs.sandbox.namespace`: the part that lives inside the namespace.

:func:`mockfs.sandbox.namespace.run_in_namespace` forks a runner that calls
:func:`run_runner`, or starts a fresh ``python -I -S`` interpreter that calls
:func:`runner_main`. In private mount and UTS
namespaces it builds the sealed root (:mod:`.rootfs`): an overlay over the
host's root, a read-only /sys with the mock's /sys/kernel files, the /proc
overlay with the machine's /proc files, the output and extra binds; pivots
into it; runs the program in a PID namespace of its own, under the syscall
seal (:mod:`.seal`), answering its sealed calls from the machine; and tears
everything down. When a seal cannot
be set up, it refuses to run the program and says which seal.
Like the rest of the runner's code it sticks to builtin modules, for a fast start.
"""

from __future__ import annotations

import marshal
import os
import select
import signal
import sys

from mockfs.sandbox import rootfs
from mockfs.sandbox.binds import bind_undoes_seal
from mockfs.sandbox.processes import kill_and_wait, mount_namespace, start_time
from mockfs.sandbox.quiet import suppress
from mockfs.sandbox.records import write_record
from mockfs.sandbox.rootfs import SetupError
from mockfs.sandbox.run_init import FORWARDED, STEPS, run_init, signal_group
from mockfs.sandbox.syscalls import (
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    MS_BIND,
    MS_NODEV,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
    die_with_parent,
    make_readonly_recursive,
    mount,
    sethostname,
    unshare,
)

# Exit code of a runner that could not even report through its status pipe (as the caller knows it).
RUNNER_FAILED = 125
#: The machine's /proc entries the runner binds over the overlay's names.
PROC_ENTRIES = ("vmcore", "sys", "sysrq-trigger", "iomem", "cmdline", "kcore")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


def _die_with_parent(expected_parent: int) -> None:
    die_with_parent(expected_parent, RUNNER_FAILED)


class _Runner:
    """Sets up the namespace for one run, runs the program and tears down."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.mock: str = spec["mock"]
        self.stage = os.path.join(spec["runtime"], "stage")
        self.newroot = os.path.join(spec["runtime"], "newroot")
        self.real_proc = os.path.join(self.stage, "proc")  # the host's procfs: the runner's view
        self.run_proc = os.path.join(self.stage, "proc-run")  # the run's own procfs, mounted by its init
        self.status_fd: int = spec["status_fd"]
        self.record = os.path.join(spec["runtime"], "runs", f"{os.getpid()}.run")
        self.runs_fd = -1  # the host's runs directory, still reachable after the pivot into the overlay
        self.daemon: int | None = None
        self.ready_fd: int | None = None
        self.mntns: int | None = None
        self.control_fd = -1
        self.proc_fd = -1
        self.events: list[str] = []
        self.down = False  # the machine went down (reboot): the run ends
        self.init: int | None = None  # process 1 of the run's PID namespace: everything of the run dies with it

    def report(self, key: str, value: object) -> None:
        with suppress(OSError):
            os.write(self.status_fd, f"{key} {value}".replace("\n", " ").encode() + b"\n")

    # -- namespaces -------------------------------------------------------

    def enter_namespace(self) -> None:
        flags = CLONE_NEWNS | CLONE_NEWUTS
        if os.geteuid() == 0:
            try:
                unshare(flags)
            except OSError as exc:
                raise SetupError(f"cannot create the run's namespaces (unshare: {exc.strerror}); "
                                 "CAP_SYS_ADMIN is needed") from None
        else:
            self.enter_user_namespace(flags)
        # Nothing we mount may propagate back to the host.
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        self.mntns = mount_namespace("self")
        with suppress(OSError):
            sethostname(self.spec.get("hostname") or "abi-harness")

    @staticmethod
    def enter_user_namespace(flags: int) -> None:
        """Rootless mode: the equivalent of ``unshare --user --map-root-user --mount --uts``."""
        uid, gid = os.geteuid(), os.getegid()
        try:
            unshare(CLONE_NEWUSER | flags)
        except OSError as exc:
            raise SetupError(
                f"rootless mode needs unprivileged user namespaces, but unshare(CLONE_NEWUSER) failed: {exc.strerror} "
                "(see sysctls user.max_user_namespaces, kernel.unprivileged_userns_clone, "
                "kernel.apparmor_restrict_unprivileged_userns)"
            ) from None
        for name, line in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(line)

    def write_record(self) -> None:
        """Leave a note for cleanup(), written before anything can need cleaning."""
        self.runs_fd = os.open(os.path.dirname(self.record), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        write_record(self.record, {
            "pid": os.getpid(),
            "start": start_time(os.getpid()),
            "caller": self.spec["caller"],
            "caller_start": self.spec["caller_start"],
            "mntns": self.mntns,
            "stage": self.stage,
            "argv": self.spec["argv"],
        })

    # -- the sealed root -----------------------------------------------------

    def mount_stage(self) -> None:
        # A private tmpfs: scratch space invisible to the host, and the marker by
        # which cleanup() recognises this run's namespace.
        mount("abi-harness", self.stage, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
        os.mkdir(self.real_proc)
        os.mkdir(self.run_proc)
        mount("/proc", self.real_proc, None, MS_BIND | MS_REC)
        # Ours and the /proc daemon's; the program's mount namespace lacks it (see run_init), and what
        # it gets of it, /proc/sys and /proc/sysrq-trigger bound over the overlay's, is read-only all
        # the way down: writes fail with EROFS instead of reaching the host. (Binds copied from it later
        # stay read-only.) Only the runner writes procfs (its callers' memory), through a clone no
        # path leads to.
        from mockfs.sandbox.seal import SealError, private_proc_handle

        try:
            self.proc_fd = private_proc_handle("/proc")
        except SealError as exc:
            raise SetupError(f"cannot seal the host's /proc: {exc.strerror}") from None
        try:
            make_readonly_recursive(self.real_proc)
        except OSError as exc:
            raise SetupError(f"cannot seal the host's /proc read-only under {self.stage}: {exc.strerror}") from None

    def start_proc_daemon(self) -> None:
        """Fork the /proc FUSE daemon; it imports mfusepy while we set up the rest."""
        ready_r, ready_w = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            os.close(self.status_fd)
            _daemon_main(parent, ready_w, self.real_proc, self.run_proc, os.path.join(self.mock, "proc"),
                         self.newroot + "/proc", self.spec)
        os.close(ready_w)
        self.daemon, self.ready_fd = pid, ready_r

    def wait_proc_daemon(self, deadline: float = 60.0) -> None:
        assert self.ready_fd is not None
        try:
            readable, _, _ = select.select([self.ready_fd], [], [], deadline)
            if not readable or os.read(self.ready_fd, 1) != b"1":
                raise SetupError("cannot seal /proc: its FUSE daemon did not come up (see its messages on stderr)")
        finally:
            os.close(self.ready_fd)

    def build_root(self) -> None:
        """Everything the program will see, under newroot (see :mod:`.rootfs`)."""
        root = self.newroot
        rootfs.overlay_root(root, os.path.join(self.spec["rootfs"], "upper"), os.path.join(self.spec["rootfs"], "work"))
        self.start_proc_daemon()
        rootfs.seal_dev(root)
        rootfs.seal_sys(root)
        rootfs.merge_sys(root, self.mock)
        rootfs.bind_into(root, self.stage)  # the cleanup marker, the real /proc, where device-tree links point
        rootfs.bind_into(root, self.mock)
        control = os.path.join(self.mock, ".control")
        if os.path.exists(control):
            self.control_fd = os.open(control, os.O_RDWR | os.O_CLOEXEC)
        for target, source in self.spec["binds"].items():
            if seal := bind_undoes_seal(target, source):  # checked by the caller too: one check is not a seal
                raise SetupError(f"extra_binds {source} at {target}: refused, the bind would undo the seal of {seal}")
            if not os.path.isdir(root + rootfs.resolve_in_root(root, os.path.dirname(target))):
                raise SetupError(f"extra_binds target {target}: {os.path.dirname(target)} does not exist")
            rootfs.bind_into(root, source, target, recursive=os.path.isdir(source))
        self.wait_proc_daemon()
        rootfs.bind_proc_entries(root, os.path.join(self.mock, "proc"), self.real_proc, PROC_ENTRIES,
                                 self.spec["vmcore_mode"])
        rootfs.pivot(root)

    # -- the program --------------------------------------------------------

    def run_program(self) -> int:
        """Start the run's init in a PID namespace of its own; it seals itself and runs the program."""
        argv, cwd = self.spec["argv"], self.spec["cwd"]
        env = dict(os.environ)  # exactly what the caller gave Popen
        try:
            unshare(CLONE_NEWPID)  # our next child is process 1 of the run: the host's processes are out of sight
        except OSError as exc:
            raise SetupError(f"cannot create the run's PID namespace (unshare: {exc.strerror})") from None
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        fd_r, fd_w = os.pipe2(os.O_CLOEXEC)
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        pid = self.init = os.fork()
        if pid == 0:
            run_init(self.run_proc, argv, cwd, env, bytes.fromhex(self.spec["seal"]), err_w, fd_w, go_r)
        for fd in (err_w, fd_w, go_r):
            os.close(fd)
        # The init is a process group of its own and passes terminal signals sent to us on to the
        # program's group (a signal from here reaches a namespace's init only through its handler).
        for sig in FORWARDED:
            signal.signal(sig, lambda signum, _frame: signal_group(pid, signum))
        listener = self.take_listener(pid, fd_r, go_w)
        # Empty once exec closed the pipe; without a listener, the init's reason (its /proc), else the seal.
        failure = os.read(err_r, 64).decode() or ("" if listener >= 0 else "1 seal")
        os.close(err_r)
        status = self.supervise(pid, listener) if not failure else os.waitpid(pid, 0)[1]
        self.init = None  # reaped: its pid may be anyone's now
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_IGN)  # the pid may be reused from now on
        for event in self.events:
            self.report("event", event)
        if failure:
            code, _, step = failure.partition(" ")
            if step == "seal":
                raise SetupError(STEPS["seal"])
            if step in STEPS:
                hint = "" if step != "proc" or not rootfs.in_user_namespace() else (
                    " (an ordinary user may mount one only where no mount covers part of /proc, as containers "
                    "cover /proc/kcore: run as root)")
                raise SetupError(f"{STEPS[step]}: {os.strerror(int(code))}{hint}")
            self.report("exec_errno", failure)
            return 127
        if self.down:
            self.report("machine", "down")
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code

    @staticmethod
    def take_listener(pid: int, fd_r: int, go_w: int) -> int:
        """Copy the init's seccomp listener (the program inherits its filter); -1 when it could not seal itself."""
        from mockfs.sandbox.seal import take_fd

        raw = os.read(fd_r, 16)
        os.close(fd_r)
        listener = -1
        if raw:
            pidfd = os.pidfd_open(pid)
            try:
                listener = take_fd(pidfd, int(raw))
            finally:
                os.close(pidfd)
        with suppress(BrokenPipeError):  # the init died before sealing (its /proc): the caller reads why
            os.write(go_w, b"1" if listener >= 0 else b"0")
        os.close(go_w)
        return listener

    def supervise(self, pid: int, listener: int) -> int:
        """Answer the program's sealed calls until it exits; returns its wait status."""
        from mockfs.sandbox.seal import receive

        names = {nr: name for name, nr in self.spec["numbers"].items()}
        pidfd = os.pidfd_open(pid)
        try:
            while True:
                ready, _, _ = select.select([listener, pidfd], [], [])
                if listener in ready:
                    note = receive(listener, names)
                    if note is not None:
                        self.answer(note)
                if pidfd in ready:
                    return os.waitpid(pid, 0)[1]
        finally:
            os.close(pidfd)
            os.close(listener)

    def answer(self, note: Any) -> None:
        from mockfs.sandbox.sealed_calls import answer

        if answer(note, self.control_fd, self.proc_fd, self.events):
            self.down = True
            self.kill_program()

    def kill_program(self) -> None:
        """The machine went down: the run's init dies, and every process of the program with its PID namespace.

        Nothing of the program can be elsewhere: no process leaves its PID namespace.
        """
        if self.init is not None:
            kill_and_wait([self.init], proc=self.real_proc)

    def teardown(self) -> None:
        """Kill what is left of the program (when set-up failed after the init started), then the daemon."""
        self.kill_program()
        if self.daemon is not None:
            os.kill(self.daemon, signal.SIGKILL)
            os.waitpid(self.daemon, 0)
        if self.runs_fd >= 0:  # by descriptor: the path now names the overlay's copy
            with suppress(FileNotFoundError):
                os.unlink(os.path.basename(self.record), dir_fd=self.runs_fd)

    def run(self) -> int:
        self.enter_namespace()
        self.write_record()
        try:
            self.mount_stage()
            self.build_root()
            return self.run_program()
        finally:
            self.teardown()


def _daemon_main(parent: int, ready_w: int, real_proc: str, run_proc: str, mock_proc: str, mountpoint: str,
                 spec: dict[str, Any]) -> NoReturn:
    """Body of the forked /proc daemon; never returns."""
    code = 1
    try:
        _die_with_parent(parent)
        # Out of the terminal's process group: a Ctrl-C meant for the program
        # must not unmount /proc under it. The runner kills us at the end.
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)  # stdout may be the caller's capture pipe; keep stderr for errors
        os.close(null)
        from mockfs.fuse.lib import load_mfusepy

        load_mfusepy(spec["libfuse"])

        def ready() -> None:
            os.write(ready_w, b"1")
            os.close(ready_w)

        from mockfs.fuse import procfs

        procfs.serve(real_proc, mock_proc, mountpoint, run_proc=run_proc, on_ready=ready,
                     vmcore_mode=spec["vmcore_mode"])
        code = 0
    except BaseException as exc:
        print(f"abi-harness /proc daemon: {exc!r}", file=sys.stderr)
    finally:
        os._exit(code)


def runner_main(spec_hex: str) -> NoReturn:
    """Entry point of the runner in a fresh interpreter (see ``_BOOT``)."""
    run_runner(marshal.loads(bytes.fromhex(spec_hex)))


def run_runner(spec: dict[str, Any]) -> NoReturn:
    """The runner's whole life, from a fresh interpreter or a fork of the caller; never returns."""
    # pass_fds made it inheritable; the program must not hold our status pipe.
    os.set_inheritable(spec["status_fd"], False)
    code = RUNNER_FAILED
    runner = _Runner(spec)
    try:
        _die_with_parent(spec["caller"])
        code = runner.run()
        runner.report("exit", code)
    except SetupError as exc:
        runner.report("error", exc)
    except BaseException as exc:
        runner.report("error", f"namespace set-up failed: {exc}")
    finally:
        os._exit(code)

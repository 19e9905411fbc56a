"""The runner of :mod:`mockfs.sandbox.namespace`: the part that lives inside the namespace.

:func:`mockfs.sandbox.namespace.run_in_namespace` starts a fresh ``python -I -S``
interpreter that calls :func:`runner_main`; it lays the mock over the canonical
paths, runs the program and tears everything down (see that module's docstring).
Like the rest of the runner's code it sticks to builtin modules, for a fast start.
"""

from __future__ import annotations

import errno
import marshal
import os
import signal
import sys

from mockfs.sandbox.processes import kill_and_wait, mount_namespace, namespace_members, start_time
from mockfs.sandbox.records import write_record
from mockfs.sandbox.syscalls import (
    CLONE_NEWNS,
    CLONE_NEWUSER,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
    die_with_parent,
    make_readonly_recursive,
    mount,
    umount_lazy,
    unshare,
)

# Exit code of a runner that could not even report through its status pipe (as the caller knows it).
RUNNER_FAILED = 125


class SetupError(Exception):
    """The namespace could not be set up; the caller reports it as a SetupError."""


class _suppress:
    """contextlib.suppress without importing contextlib (and collections) into every runner."""

    def __init__(self, *exceptions: type[BaseException]) -> None:
        self.exceptions = exceptions

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: object) -> bool:
        return kind is not None and issubclass(kind, self.exceptions)


def _die_with_parent(expected_parent: int) -> None:
    die_with_parent(expected_parent, RUNNER_FAILED)


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

# ---------------------------------------------------------------------------
# The runner: inside the namespace, in a fresh single-threaded interpreter


class _Runner:
    """Sets up the namespace for one run, runs the program and tears down."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.mock: str = spec["mock"]
        self.stage = os.path.join(spec["runtime"], "stage")
        self.real_proc = os.path.join(self.stage, "proc")
        self.status_fd: int = spec["status_fd"]
        self.record = os.path.join(spec["runtime"], "runs", f"{os.getpid()}.run")
        self.daemon: int | None = None
        self.ready_fd: int | None = None
        self.mntns: int | None = None

    def report(self, key: str, value: object) -> None:
        with _suppress(OSError):
            os.write(self.status_fd, f"{key} {value}".replace("\n", " ").encode() + b"\n")

    # -- namespace --------------------------------------------------------

    def enter_namespace(self) -> None:
        if os.geteuid() == 0:
            try:
                unshare(CLONE_NEWNS)
            except OSError as exc:
                raise SetupError(
                    f"cannot create a mount namespace (unshare(CLONE_NEWNS): {exc.strerror}); CAP_SYS_ADMIN is needed"
                ) from None
        else:
            self.enter_user_namespace()
        # Nothing we mount may propagate back to the host.
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        self.mntns = mount_namespace("self")

    @staticmethod
    def enter_user_namespace() -> None:
        """Rootless mode: the equivalent of ``unshare --user --map-root-user --mount``."""
        uid, gid = os.geteuid(), os.getegid()
        try:
            unshare(CLONE_NEWUSER | CLONE_NEWNS)
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
        write_record(self.record, {
            "pid": os.getpid(),
            "start": start_time(os.getpid()),
            "caller": self.spec["caller"],
            "caller_start": self.spec["caller_start"],
            "mntns": self.mntns,
            "stage": self.stage,
            "argv": self.spec["argv"],
        })

    # -- mounts -----------------------------------------------------------

    def mount_stage(self) -> None:
        # A private tmpfs: scratch space invisible to the host, and the marker by
        # which cleanup() recognises this run's namespace.
        mount("abi-harness", self.stage, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")

    def needs_proc(self) -> bool:
        proc = os.path.join(self.mock, "proc")
        return os.path.isfile(os.path.join(proc, "vmcore")) or os.path.isdir(os.path.join(proc, "device-tree"))

    def start_proc_daemon(self) -> None:
        """Fork the /proc FUSE daemon; it imports mfusepy while we set up the rest."""
        os.mkdir(self.real_proc)
        mount("/proc", self.real_proc, None, MS_BIND | MS_REC)
        ready_r, ready_w = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            os.close(self.status_fd)
            _daemon_main(parent, ready_w, self.real_proc, os.path.join(self.mock, "proc"), self.spec)
        os.close(ready_w)
        self.daemon, self.ready_fd = pid, ready_r

    def wait_proc_daemon(self, deadline: float = 20.0) -> None:
        import select

        assert self.ready_fd is not None
        try:
            readable, _, _ = select.select([self.ready_fd], [], [], deadline)
            if not readable or os.read(self.ready_fd, 1) != b"1":
                raise SetupError("the /proc FUSE daemon did not come up (see its messages on stderr)")
        finally:
            os.close(self.ready_fd)

    def bind_exact_vmcore(self) -> None:
        """Put the mock's vmcore itself at /proc/vmcore when it already looks like the kernel's.

        A bind lets reads go straight to the mock's daemon, which then sees the
        reader's own pid (and skips a second FUSE hop); the /proc daemon keeps
        serving vmcore only when the mock's mode or owner would betray it.
        """
        vmcore = os.path.join(self.mock, "proc", "vmcore")
        try:
            st = os.stat(vmcore)
        except OSError:
            return
        if (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (self.spec["vmcore_mode"], 0, 0) and os.path.isfile(vmcore):
            mount(vmcore, "/proc/vmcore", None, MS_BIND)

    @staticmethod
    def graft(source: str, target: str) -> None:
        """Make ``target`` show ``source``: a bind for files and directories, a copy for symlinks."""
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        elif os.path.isdir(source):
            os.mkdir(target)
            mount(source, target, None, MS_BIND | MS_REC)
        else:
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            mount(source, target, None, MS_BIND)

    def mount_sys_kernel(self) -> None:
        mock = os.path.join(self.mock, "sys", "kernel")
        if not os.path.isdir(mock):
            return
        saved = os.path.join(self.stage, "sys-kernel")
        os.mkdir(saved)
        mount("/sys/kernel", saved, None, MS_BIND | MS_REC)
        # Read-only before copying: the binds below inherit it, so the program
        # under test cannot write to the host kernel through real /sys/kernel files.
        with _suppress(OSError):  # before Linux 5.12: real entries stay writable, as on the host
            make_readonly_recursive(saved)
        mount("sysfs-mock", "/sys/kernel", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
        self.merge(saved, mock, "/sys/kernel")
        umount_lazy(saved)

    def merge(self, real: str, mock: str, target: str) -> None:
        """Fill the empty tmpfs directory ``target`` with the union of ``real`` and ``mock``.

        A directory both sides have is merged one level down (its files from the
        mock, the rest real); any other clash goes to the mock. Files created
        later in a merged directory land on the tmpfs, elsewhere in the mock.
        """
        mock_names = os.listdir(mock)
        for name in os.listdir(real):
            if name not in mock_names:
                self.graft(os.path.join(real, name), os.path.join(target, name))
        for name in mock_names:
            real_entry, mock_entry, here = os.path.join(real, name), os.path.join(mock, name), os.path.join(target, name)
            if _is_plain_dir(real_entry) and _is_plain_dir(mock_entry):
                os.mkdir(here)
                self.merge(real_entry, mock_entry, here)
            else:
                self.graft(mock_entry, here)

    def mount_extra_binds(self) -> None:
        sys_kernel_is_tmpfs = os.path.isdir(os.path.join(self.mock, "sys", "kernel"))
        for target, source in self.spec["binds"].items():
            if target == "/proc" or target.startswith("/proc/"):
                raise SetupError(f"extra_binds target {target} is under /proc, which is not supported")
            if not os.path.lexists(target):
                if not (sys_kernel_is_tmpfs and target.startswith("/sys/kernel/")):
                    raise SetupError(f"extra_binds target {target} does not exist (the host is not changed to create it)")
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if os.path.isdir(source):
                    os.mkdir(target)
                else:
                    os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            mount(source, target, None, MS_BIND | (MS_REC if os.path.isdir(source) else 0))

    # -- the program --------------------------------------------------------

    def run_program(self) -> int:
        argv, cwd = self.spec["argv"], self.spec["cwd"]
        env = dict(os.environ)  # exactly what the caller gave Popen
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(err_r)
                _die_with_parent(parent)
                # Python ignores SIGPIPE and SIGXFSZ; the program expects the defaults.
                for sig in (signal.SIGPIPE, signal.SIGXFSZ):
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
        os.close(err_w)
        # Terminal signals reach the program too (same process group): leave them
        # to it. A polite SIGTERM/SIGHUP sent to us alone is passed on.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda signum, _frame: os.kill(pid, signum))
        failure = os.read(err_r, 64).decode()  # empty once exec has closed the pipe
        os.close(err_r)
        _, status = os.waitpid(pid, 0)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)  # the pid may be reused from now on
        if failure:
            self.report("exec_errno", failure)
            return 127
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code

    def teardown(self) -> None:
        """Kill stragglers of the program, then the daemon; the namespace dies with us."""
        proc = self.real_proc if self.daemon is not None else "/proc"
        spare = (os.getpid(), self.daemon)
        # Rounds, waiting for each to die: a straggler may fork while we look.
        for _ in range(5 if self.mntns is not None else 0):
            left = [pid for pid in namespace_members(self.stage, self.mntns, proc) if pid not in spare]
            if not left:
                break
            kill_and_wait(left, proc=proc)
        if self.daemon is not None:
            os.kill(self.daemon, signal.SIGKILL)
            os.waitpid(self.daemon, 0)
        with _suppress(FileNotFoundError):
            os.unlink(self.record)

    def run(self) -> int:
        self.enter_namespace()
        self.write_record()
        try:
            self.mount_stage()
            if self.needs_proc():
                self.start_proc_daemon()
            self.mount_sys_kernel()
            self.mount_extra_binds()
            if self.daemon is not None:
                self.wait_proc_daemon()
                self.bind_exact_vmcore()
            return self.run_program()
        finally:
            self.teardown()


def _is_plain_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _daemon_main(parent: int, ready_w: int, real_proc: str, mock_proc: str, spec: dict[str, Any]) -> NoReturn:
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

        procfs.serve(real_proc, mock_proc, "/proc", on_ready=ready, vmcore_mode=spec["vmcore_mode"])
        code = 0
    except BaseException as exc:
        print(f"abi-harness /proc daemon: {exc!r}", file=sys.stderr)
    finally:
        os._exit(code)


def runner_main(spec_hex: str) -> NoReturn:
    """Entry point of the runner process (see ``_BOOT``)."""
    spec = marshal.loads(bytes.fromhex(spec_hex))
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



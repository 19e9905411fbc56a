"""Run an unmodified program with mock files at their canonical paths.

:func:`run_in_namespace` starts a small Python "runner" in a private mount
namespace. The runner lays the mock over the canonical paths, then forks the
run's init, process 1 of a PID namespace of its own, which runs the program
(see :mod:`mockfs.sandbox.run_init`); the runner waits and reports the
exit status:

* ``/sys/kernel`` becomes a tmpfs holding read-only binds of every real entry
  plus binds of the mock's entries (so writes reach the mock, i.e. its daemon);
* ``/proc`` becomes the FUSE file system of :mod:`mockfs.fuse.procfs` when the mock
  has ``proc/vmcore`` or ``proc/device-tree``; its daemon is forked by the runner
  inside the namespace. A mock vmcore that is already mode 0400 and owned by
  root is bind-mounted over /proc/vmcore, so that its reads reach the mock's
  daemon from the reader itself; any other is served by the /proc daemon;
* each ``extra_binds`` target gets its host file or directory bound over it.

Nothing is mounted outside the namespace. Teardown is layered so that a
SIGKILL anywhere leaves nothing behind: the runner and everything it forks die
with their parent (``PR_SET_PDEATHSIG``); the run's PID namespace, every
process of the program, dies with its init, which exits with the program;
and each run records itself under the runtime directory so that
:func:`mockfs.sandbox.cleanup.cleanup` can kill what a killed run left in its
mount namespace.

The runner (:mod:`mockfs.sandbox.inside`) is a fork of the caller when the
caller is single-threaded and its streams are plain descriptors (the run's
supervisor: the runner and the /proc daemon it forks then find the FUSE code
imported, which halves a run's start); otherwise a fresh ``python -I -S``
interpreter, since forking a threaded process that goes on running Python is
unsafe. For that start, the runner's modules stick to builtin modules (os,
ctypes, marshal). This module is the caller's side.
"""

from __future__ import annotations

import contextlib
import fcntl
import marshal
import os
import select
import signal
import sys
import time

from abi_specs.errors import AbiError
from mockfs.fuse.lib import libfuse3_path

from .cleanup import CleanupReport, reap_run
from .processes import start_time
from .runtime import runtime_dir as default_root
from .runtime import subdir

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping, Sequence
    from typing import IO, Any

__all__ = ["NamespaceError", "run_in_namespace"]

# Exit code of a runner that could not even report through its status pipe.
RUNNER_FAILED = 125

_BOOT = "import sys; sys.path[:0] = sys.argv[2:]; from mockfs.sandbox.inside import runner_main; runner_main(sys.argv[1])"


class NamespaceError(AbiError, RuntimeError):
    """The namespace could not be set up, or its runner died before reporting."""


# ---------------------------------------------------------------------------
# The caller's side

_BOOT_PATHS: tuple[str, ...] | None = None


def _boot_paths() -> tuple[str, ...]:
    """sys.path entries the runner needs: it starts with -I -S, skipping site's slow set-up."""
    global _BOOT_PATHS
    if _BOOT_PATHS is None:
        import importlib.util

        spec = importlib.util.find_spec("mfusepy")
        paths = [os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))]
        if spec is not None and spec.origin:
            paths.append(os.path.dirname(spec.origin))
        _BOOT_PATHS = tuple(paths)
    return _BOOT_PATHS


def _seal_spec() -> dict[str, Any]:
    """The seccomp program and the syscall numbers the runner seals with (built here: the runner loads no spec)."""
    from abi_specs.kexec import syscall_numbers

    from .seal import build_filter

    machine = os.uname().machine
    try:
        numbers = syscall_numbers(machine)
    except KeyError:
        raise NamespaceError(f"cannot seal system calls on {machine}: the spec has no syscall numbers for it") from None
    return {"seal": build_filter(numbers).hex(), "numbers": numbers}


def _vmcore_mode() -> int:
    """The spec's mode of /proc/vmcore, handed to the runner (which must not load the spec itself)."""
    from abi_specs import builtin_spec

    return builtin_spec().get("vmcore").mode


def _read_status(fd: int) -> dict[str, Any]:
    """The runner's reports: one ``key value`` line each, the last of a key wins; every ``event`` is kept."""
    os.set_blocking(fd, False)
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except BlockingIOError:  # the runner's reports are all in: nothing more will come
        pass
    status: dict[str, Any] = {"events": []}
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "event":
            status["events"].append(value)
        else:
            status[key] = value
    return status


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
            input = None  # Popen keeps what is left of it; a retry may not pass it again
            if end is not None and time.monotonic() >= end:
                raise subprocess.TimeoutExpired(proc.args, timeout) from None
            if not reaped and proc.poll() is not None:
                reap_run(record, CleanupReport())
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
    rootfs: str | os.PathLike[str] | None = None,
    hostname: str = "abi-harness",
) -> subprocess.CompletedProcess[Any]:
    """Run ``argv`` sealed, with ``mock_root`` laid over the canonical paths; return its exit status.

    ``mock_root`` mirrors canonical paths (any part may be absent):
    ``sys/kernel/...`` appears under /sys/kernel next to the real entries (all
    of /sys is read-only), ``proc/vmcore``, ``proc/sys``, ``proc/sysrq-trigger``
    and the other machine files at their /proc paths, ``proc/device-tree`` at
    /proc/device-tree; the rest of /proc stays real. ``extra_binds`` maps a
    path to a host file or directory bound over it (writes reach the host).
    The root file system is an overlay whose writes land in ``rootfs``
    (default: a temporary directory, removed afterwards); the program's
    machine-changing system calls are answered through the mock's control file.
    The UTS namespace is private, its hostname *hostname*.

    ``env`` (default: this process's environment), ``cwd`` (entered inside the
    namespace), ``stdin``/``stdout``/``stderr``, ``capture_output``, ``input``,
    ``text`` and ``timeout`` behave as in :func:`subprocess.run`. The returned
    ``returncode`` is the program's exit status, or 128+N if signal N killed it.
    ``runtime_dir`` defaults to :func:`mockfs.sandbox.runtime.runtime_dir`.

    Raises :class:`NamespaceError` when the namespace cannot be set up (for
    example when rootless mode finds user namespaces disabled), ``OSError``
    (e.g. ``FileNotFoundError``) when ``argv[0]`` cannot be executed, and
    :class:`subprocess.TimeoutExpired` after killing everything on timeout.
    """

    argv = [os.fspath(a) for a in argv]
    if not argv:
        raise ValueError("argv is empty")
    mock = os.path.realpath(mock_root)
    if not os.path.isdir(mock):
        raise NamespaceError(f"mock root {mock} is not a directory")
    root = os.path.realpath(runtime_dir) if runtime_dir is not None else default_root()
    for name in ("runs", "stage", "newroot"):
        subdir(name, root)
    scratch = None
    if rootfs is None:
        from .scratch import scratch_dir

        scratch = scratch_dir("abi-rootfs-")
        rootfs = scratch
    try:
        return _run(mock, argv, env, _checked_binds(extra_binds), timeout, cwd, stdin, stdout, stderr, capture_output,
                    input, text, root, os.path.realpath(rootfs), hostname)
    finally:
        if scratch is not None:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)


def _run(mock: str, argv: list[str], env: Mapping[str, str] | None, binds: dict[str, str], timeout: float | None,
         cwd: str | os.PathLike[str] | None, stdin: Any, stdout: Any, stderr: Any, capture_output: bool, input: Any,
         text: bool, root: str, rootfs: str, hostname: str) -> subprocess.CompletedProcess[Any]:
    import subprocess

    status_r, status_w = os.pipe()
    spec = _runner_spec(mock, argv, binds, cwd, root, status_w)
    spec.update(rootfs=rootfs, hostname=hostname, **_seal_spec())
    if input is None and not capture_output and _can_fork(stdin, stdout, stderr):
        return _run_forked(spec, argv, env, cwd, (stdin, stdout, stderr), timeout, root, status_r, status_w)
    if input is not None:
        stdin = subprocess.PIPE
    if capture_output:
        stdout = stderr = subprocess.PIPE
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _BOOT, marshal.dumps(spec).hex(), *_boot_paths()],
            stdin=stdin, stdout=stdout, stderr=stderr, env=dict(env) if env is not None else None,
            pass_fds=(status_w,), text=text,
        )  # fmt: skip
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
                reap_run(record, CleanupReport())
                raise
        status = _read_status(status_r)
    finally:
        os.close(status_r)
    return _outcome(status, argv, cwd, proc.returncode, record, out, err)


def _single_threaded() -> bool:
    """Whether this process has one thread (only then is a fork that goes on running Python safe)."""
    try:
        with open("/proc/self/status", "rb") as f:
            return b"\nThreads:\t1\n" in f.read()
    except OSError:
        return False


def _can_fork(*streams: Any) -> bool:
    """Whether the runner can be a fork of this process instead of a fresh interpreter.

    A fork inherits the modules already imported (the mock's daemon code above
    all), which saves most of a run's start-up. It is taken by a single-threaded
    caller (the run's supervisor) whose streams are descriptors, not pipes to
    capture; everyone else gets the fresh interpreter.
    """
    plain = all(s is None or (isinstance(s, int) and s >= 0) or hasattr(s, "fileno") for s in streams)
    return plain and _single_threaded()


def _run_forked(spec: dict[str, Any], argv: list[str], env: Mapping[str, str] | None,
                cwd: str | os.PathLike[str] | None, streams: tuple[Any, Any, Any], timeout: float | None, root: str,
                status_r: int, status_w: int) -> subprocess.CompletedProcess[Any]:
    """:func:`_run` with the runner forked from this process (see :func:`_can_fork`)."""

    from . import inside

    fds = [s if s is None or isinstance(s, int) else s.fileno() for s in streams]
    if "mfusepy" in sys.modules:  # the runner forks the /proc daemon: let it find its code imported
        from mockfs.fuse import binding, procfs  # noqa: F401
    try:
        pid = os.fork()
    except BaseException:
        os.close(status_r)
        os.close(status_w)
        raise
    if pid == 0:  # the runner: as the fresh interpreter would start, then the same code
        try:
            # Out of the way first, so that putting one in place cannot overwrite another still to come.
            moved = [None if fd is None else fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in fds]
            for target, fd in enumerate(moved):
                if fd is not None:
                    os.dup2(fd, target)
            os.closerange(3, status_w)  # what Popen's close_fds would close
            os.closerange(status_w + 1, 1 << 20)
            if env is not None:
                os.environ.clear()
                os.environ.update(env)
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
        except BaseException:
            os._exit(RUNNER_FAILED)
        inside.run_runner(spec)
    os.close(status_w)
    record = os.path.join(root, "runs", f"{pid}.run")
    try:
        status = _wait_runner(pid, timeout, argv, record)
        reports = _read_status(status_r)
    finally:
        os.close(status_r)
    return _outcome(reports, argv, cwd, os.waitstatus_to_exitcode(status), record, None, None)


def _wait_runner(pid: int, timeout: float | None, argv: list[str], record: str) -> int:
    """The forked runner's wait status; on a timeout or an interrupt, kill the run and clean up after it."""
    import subprocess

    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        if not ready:
            raise subprocess.TimeoutExpired(argv, timeout or 0.0)
        return os.waitpid(pid, 0)[1]
    except BaseException:
        # The runner's death takes the program and the daemon with it (PDEATHSIG);
        # grandchildren are found by namespace.
        with contextlib.suppress(ProcessLookupError, ChildProcessError):  # an interrupt after the reaping
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.waitpid(pid, 0)
        reap_run(record, CleanupReport())
        raise
    finally:
        os.close(pidfd)


def _checked_binds(extra_binds: Mapping[str, str | os.PathLike[str]] | None) -> dict[str, str]:
    """``{target: source}`` with absolute targets and existing, resolved sources."""
    binds = {}
    for target, source in (extra_binds or {}).items():
        if not os.path.isabs(target):
            raise ValueError(f"extra_binds target {target!r} is not absolute")
        from .binds import bind_undoes_seal

        src = os.path.realpath(source)
        if seal := bind_undoes_seal(target, src):
            raise NamespaceError(f"extra_binds {src} at {target}: refused, the bind would undo the seal of {seal}")
        if not os.path.exists(src):
            raise NamespaceError(f"extra_binds source {src} does not exist")
        binds[os.path.normpath(target)] = src
    return binds


def _runner_spec(mock: str, argv: list[str], binds: dict[str, str], cwd: str | os.PathLike[str] | None, root: str,
                 status_w: int) -> dict[str, Any]:
    """What the runner is told (marshalled on its command line)."""
    return {
        "mock": mock,
        "argv": argv,
        "binds": binds,
        "cwd": None if cwd is None else os.fspath(cwd),
        "runtime": root,
        "caller": os.getpid(),
        "caller_start": start_time(os.getpid()),
        "status_fd": status_w,
        "libfuse": libfuse3_path(),
        "vmcore_mode": _vmcore_mode(),
    }


def _outcome(status: dict[str, Any], argv: list[str], cwd: str | os.PathLike[str] | None, runner_status: int | None,
             record: str, out: Any, err: Any) -> subprocess.CompletedProcess[Any]:
    """The program's result from the runner's reports, or the error they describe."""
    import subprocess

    if "error" in status:
        raise NamespaceError(status["error"])
    if "exec_errno" in status:
        code, _, step = status["exec_errno"].partition(" ")
        raise OSError(int(code), os.strerror(int(code)), cwd if step == "cwd" else argv[0])
    if "exit" not in status:
        reap_run(record, CleanupReport())
        raise NamespaceError(f"the namespace runner died without reporting (status {runner_status}); cleaned up after it")
    done = subprocess.CompletedProcess(argv, int(status["exit"]), out, err)
    done.events = status["events"]  # type: ignore[attr-defined]  # what the seal answered
    done.machine_down = status.get("machine") == "down"  # type: ignore[attr-defined]  # the program rebooted it
    return done


# ---------------------------------------------------------------------------
# Command line: python -m mockfs.sandbox.namespace [--cleanup] [--bind T=S] MOCK PROGRAM [ARG...]


def main(args: Sequence[str] | None = None) -> int:
    """A small command line for running against a hand-made mock tree; one line on errors."""
    import argparse

    from .cleanup import cleanup

    parser = argparse.ArgumentParser(prog="python -m mockfs.sandbox.namespace", description=__doc__.splitlines()[0])
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
        return RUNNER_FAILED


if __name__ == "__main__":
    sys.exit(main())

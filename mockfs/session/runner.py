"""Run an unmodified program against a mocked machine, sealed from the host.

:func:`run` forks a supervisor that leaves the host's mount namespace (so the
FUSE mock it mounts exists only there), serves the machine, runs the program
through :func:`mockfs.sandbox.namespace.run_in_namespace` (sealed: overlay
root, private /proc/sys and sysrq-trigger, syscall seal, private hostname)
with the mock at the canonical paths, unmounts and reports. The supervisor and
the mock daemon die with the caller (``PR_SET_PDEATHSIG``), and a namespace
dies with its last process, so even a SIGKILL leaves no mount and no daemon on
the host.

The machine lives in a directory (:mod:`.machines`): one given with
*machine* keeps its whole life between runs; without it, a fresh capture
kernel of *fixture* lives in the run's work directory and goes with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abi_specs.errors import AbiError
from mockfs.fuse.faults import FaultPlan, parse_faults
from mockfs.sandbox import syscalls
from mockfs.sandbox.scratch import Scratch
from mockfs.sandbox.stops import stop_signals_held

from .machines import MachineDir
from .output_limit import limit_output

#: Exit status of ``abi-harness run`` when the program succeeded but broke the ABI's contract.
EXIT_VIOLATIONS = 3
#: The exit status a program gets when the machine crashed or rebooted under it (SIGKILL).
KILLED = 128 + signal.SIGKILL


class RunError(AbiError):
    """The run could not be set up; the message says what and where."""


@dataclass
class RunResult:
    """What happened in one run."""

    returncode: int  # the program's exit status (128+N when signal N killed it), last run
    report: dict[str, object]
    trace_path: Path | None
    output: Path | None
    faults: list[str] = field(default_factory=list)
    returncodes: list[int] = field(default_factory=list)  # every run, when a killed run was rerun
    machine: dict[str, Any] = field(default_factory=dict)  # the machine as the run left it
    seal: list[str] = field(default_factory=list)  # the sealed calls the machine answered
    fixture: Any = None  # the machine's fixture (mockfs.machine.Fixture)

    def verify(self) -> Any:
        """What the program left in ``output``, page by page against the machine's memory.

        Returns a :class:`mockfs.conform.judging.SavedDump`: ``complete``,
        ``report`` (the page counts of the best dump found), ``unreadable``
        (files that are no dump) and ``describe_incomplete()``.
        """
        from mockfs.conform.judging import find_dump
        from mockfs.dumps.served import open_image

        if self.output is None:
            raise RunError("the run had no output directory to verify (give output=...)")
        return find_dump(self.output, open_image(self.fixture))

    @property
    def violations(self) -> list[dict[str, object]]:
        return list(self.report.get("violations", []))  # type: ignore[arg-type]

    @property
    def events(self) -> list[dict[str, Any]]:
        """The machine's events during this run: crashes, reboots, loads, sysctls..."""
        return list(self.report.get("events", []))  # type: ignore[arg-type]

    @property
    def crashed(self) -> bool:
        """Whether the machine crashed during the run (every process of it was killed)."""
        return any(e.get("event") == "crash" for e in self.events)

    @property
    def rebooted(self) -> bool:
        return any(e.get("event") == "reboot" for e in self.events)

    @property
    def exit_status(self) -> int:
        """The program's status, or 3 when it succeeded but violations were recorded."""
        if self.returncode == 0 and self.violations:
            return EXIT_VIOLATIONS
        return self.returncode

    def trace(self) -> list[dict[str, object]]:
        if not self.trace_path or not self.trace_path.exists():
            return []
        return [json.loads(line) for line in self.trace_path.read_text().splitlines() if line]

    def as_dict(self) -> dict[str, object]:
        return {"returncode": self.returncode, "returncodes": self.returncodes, "exit_status": self.exit_status,
                "faults": self.faults, "output": str(self.output) if self.output else None,
                "crashed": self.crashed, "rebooted": self.rebooted, "seal": self.seal, **self.report,
                "machine": self.machine}


def _program_runs(mock: Any, argv: list[str], machine: MachineDir, env: Mapping[str, str] | None,
                  binds: dict[str, str | Path], timeout: float | None, faults: FaultPlan,
                  rerun_killed: bool, stdout: int | None = None) -> tuple[list[int], list[str]]:
    """Run the program (and once more after a kill-after fault); returns the exit codes and the seal's answers."""
    from subprocess import TimeoutExpired  # the supervisor's: the command line's process does without it

    from mockfs.sandbox.namespace import NamespaceError, run_in_namespace

    codes: list[int] = []
    seal: list[str] = []
    while True:
        try:
            done = run_in_namespace(mock.root, argv, env=env, extra_binds=binds, timeout=timeout, cwd=os.getcwd(),
                                    rootfs=machine.rootfs, hostname=machine.fixture.hostname, stdout=stdout)
            codes.append(done.returncode)
            seal += getattr(done, "events", [])
            if getattr(done, "machine_down", False):
                break
        except FileNotFoundError as exc:
            raise RunError(f"{argv[0]}: command not found ({exc.strerror})") from None
        except PermissionError:
            raise RunError(f"{argv[0]}: cannot execute it (permission denied: not a program, or no x bit)") from None
        except OSError as exc:
            raise RunError(f"{argv[0]}: cannot execute it: {exc.strerror}") from None
        except TimeoutExpired:
            codes.append(KILLED)
            break
        except NamespaceError as exc:
            if "died without reporting" not in str(exc):
                raise
            codes.append(KILLED)  # the machine crashed: its kernel killed everything, the runner too
            break
        # The kill-after fault fires once: the same command runs again on the same machine.
        if not (rerun_killed and faults.kill_after and codes[-1] == KILLED and len(codes) == 1):
            break
    return codes, seal


def _supervise(argv: list[str], machine: MachineDir, output: Path | None, workdir: Path, faults: FaultPlan,
               env: Mapping[str, str] | None, extra_binds: Mapping[str, str | Path] | None,
               timeout: float | None, rerun_killed: bool, stdout: int | None = None) -> dict[str, object]:
    """The supervisor's work, in its private namespace; returns the result record."""
    from .testbed import MockMount

    try:
        syscalls.private_mount_namespace()
    except OSError as exc:
        if os.geteuid() == 0:
            raise RunError(f"cannot create a private mount namespace: {exc.strerror} (CAP_SYS_ADMIN is needed: "
                           "a container without it cannot run abi-harness)") from None
        raise RunError(f"cannot create a user namespace as an ordinary user: {exc.strerror} (run as root, or allow "
                       "unprivileged user namespaces: sysctls user.max_user_namespaces, "
                       "kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns)") from None
    limit = None
    if faults.enospc and output is not None:  # the real directory, with only that much room (see output_limit)
        try:
            limit = limit_output(output, faults.enospc, workdir / "output-limit.log")
        except OSError as exc:
            raise RunError(exc.strerror or str(exc)) from None
    binds: dict[str, str | Path] = dict(extra_binds or {})
    if output is not None:
        binds.setdefault(str(output), output)  # the dump goes to the host, through the sealed root
    try:
        with machine.locked():
            mock = MockMount(faults=faults, workdir=workdir / "mock", machine=machine)
            mock.start()
            machine.mark_active(mock.root)
            try:
                codes, seal = _program_runs(mock, argv, machine, env, binds, timeout, faults, rerun_killed, stdout)
            finally:
                report = mock.stop()
    finally:  # a run that fails to start must not leave the limited view's daemon serving
        if limit is not None:
            limit.stop()
    return {"returncodes": codes, "report": report, "seal": seal,
            "machine": machine.reloaded().describe()}


def _command_exists(name: str, machine: MachineDir, env: Mapping[str, str] | None) -> bool:
    """Whether the run can exec *name*: a host program, or one installed into the machine's root."""
    upper = machine.rootfs / "upper"
    if "/" in name:
        return Path(name).exists() or (upper / name.lstrip("/")).exists()
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    for directory in path.split(os.pathsep):
        for root in (Path("/"), upper):
            candidate = root / directory.lstrip("/") / name
            try:
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    return True
            except OSError:  # a PATH entry this user may not search
                continue
    return False


def _machine_for(fixture: Any, machine: str | Path | MachineDir | None, state: str | None,
                 work: Path) -> MachineDir:
    """The run's machine: *machine* (made from the fixture name *fixture* on first use), or a fresh one of
    *fixture* (a resolved :class:`~mockfs.machine.Fixture`) in the work directory."""
    if isinstance(machine, MachineDir):
        return machine
    if machine is not None:
        return MachineDir.open_or_create(machine, fixture, state)
    return MachineDir.create(work / "machine", fixture, state or "capture")


def _make_output(output: str | Path | None) -> Path | None:
    """The output directory, created readable by its owner only (dumps hold secrets)."""
    if output is None:
        return None
    out = Path(output).resolve()
    from mockfs.sandbox.binds import undone_seal

    if seal := undone_seal(out):  # the output is bound over the sealed root at its own path
        raise RunError(f"--output {output}: refused, a bind there would undo the seal of {seal}")
    if not out.exists():
        out.mkdir(parents=True, mode=0o700)
        os.chmod(out, 0o700)
    elif not out.is_dir():
        raise RunError(f"{out}: --output is not a directory")
    return out


def run(argv: Sequence[str], *, fixture: str | None = None, output: str | Path | None = None,
        trace: str | Path | None = None, faults: Sequence[str] | FaultPlan = (), workdir: str | Path | None = None,
        env: Mapping[str, str] | None = None, extra_binds: Mapping[str, str | Path] | None = None,
        timeout: float | None = None, rerun_killed: bool = False, machine: str | Path | MachineDir | None = None,
        state: str | None = None, program_stdout: int | None = None) -> RunResult:
    """Run *argv* with the machine's mock at the canonical paths; see the module docstring.

    *fixture* (default ``phyp-power6``) and *state* (``capture`` or ``armed``)
    make a new machine; with *machine* they are needed only when the directory
    holds none yet. *output* is a directory the program writes its dump to
    (created mode 0700 if missing); the ``enospc`` fault limits it. The trace
    goes to *trace* (or the work directory). With *rerun_killed*, a run killed
    by the ``kill-after`` fault is run once more against the same machine
    (what was released stays released), as an operator would after a crash of
    the collector. *program_stdout* is where the program's standard output
    goes (default: ours).
    """
    plan = faults if isinstance(faults, FaultPlan) else parse_faults(list(faults))
    argv = [os.fspath(a) for a in argv]
    if not argv:
        raise RunError("no command to run")
    if machine is None:
        from mockfs.dumps.served import resolve_served

        # Resolved here, failing with the fixture's own message rather than in the supervisor, and only once.
        served = resolve_served(fixture or "phyp-power6")
    tmp = None
    try:
        if workdir is None:
            with stop_signals_held():  # a stop that lands while the scratch is made is taken once `tmp` has it
                tmp = Scratch("abi-run-")
            workdir = tmp.name
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        mdir = _machine_for(served if machine is None else fixture, machine, state, work)
        if not _command_exists(argv[0], mdir, env):
            raise RunError(f"{argv[0]}: command not found (on the host or in the machine's root file system)")
        out = _make_output(output)
        record = _fork_supervisor(work, lambda: _supervise(argv, mdir, out, work, plan, env, extra_binds, timeout,
                                                           rerun_killed, program_stdout))
        trace_file = work / "mock" / "trace.jsonl"
        if trace is not None and trace_file.exists():
            shutil.copyfile(trace_file, trace)
            trace_file = Path(trace)
        codes = [int(c) for c in record["returncodes"]]  # type: ignore[union-attr]
        result = RunResult(codes[-1], dict(record["report"]), trace_file if trace_file.exists() else None,  # type: ignore[call-overload]
                           out, plan.describe(), codes, dict(record["machine"]), list(record["seal"]),  # type: ignore[call-overload]
                           mdir.fixture)
    finally:
        if tmp is not None:  # a trace the caller asked for was copied out above
            tmp.cleanup()
    if tmp is not None and trace is None:
        result.trace_path = None
    return result


def _fork_supervisor(work: Path, body: Any) -> dict[str, object]:
    """Run *body* in a forked supervisor that dies with us; its result record, or RunError."""
    result_path = work / "result.json"
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the supervisor
        code = 0
        try:
            syscalls.die_with_parent(parent)
            record = body()
        except BaseException as exc:  # the supervisor reports everything, then leaves
            if isinstance(exc, AbiError):
                record = {"error": str(exc)}
            else:
                import traceback

                record = {"error": "".join(traceback.format_exception(exc))}
            code = 1
        finally:
            with contextlib.suppress(BaseException):
                result_path.write_text(json.dumps(record))
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    try:
        record = json.loads(result_path.read_text())
    except (OSError, ValueError):
        raise RunError(f"the run supervisor died without a result (wait status {status})") from None
    if "error" in record:
        error = str(record["error"])
        raise RunError(error.strip().splitlines()[-1] if "Traceback" in error else error)
    return record

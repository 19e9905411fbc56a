"""Run an unmodified program against a mocked crashed machine.

:func:`run` forks a supervisor that leaves the host's mount namespace (so the
FUSE mock it mounts exists only there), serves the fixture, runs the program
through :func:`mockfs.sandbox.namespace.run_in_namespace` with the mock at the
canonical paths, unmounts and reports. The supervisor and the mock daemon die
with the caller (``PR_SET_PDEATHSIG``), and a namespace dies with its last
process, so even a SIGKILL leaves no mount and no daemon on the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from abi_specs.errors import AbiError
from mockfs.fuse.faults import FaultPlan, parse_faults
from mockfs.sandbox import syscalls

#: Exit status of ``abi-harness run`` when the program succeeded but broke the ABI's contract.
EXIT_VIOLATIONS = 3


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

    @property
    def violations(self) -> list[dict[str, object]]:
        return list(self.report.get("violations", []))  # type: ignore[arg-type]

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
                "faults": self.faults,
                "output": str(self.output) if self.output else None, **self.report}


def _limit_output(output: Path, size: int, keep: Path) -> None:
    """Put a tmpfs of *size* bytes over *output*; the real directory stays reachable at *keep*."""
    keep.mkdir(parents=True, exist_ok=True)
    try:
        syscalls.mount(output, keep, None, syscalls.MS_BIND)
        syscalls.mount("tmpfs", output, "tmpfs", 0, f"size={size},mode=0700")
    except OSError as exc:
        raise RunError(f"cannot limit {output} to {size} bytes: {exc.strerror}") from None


def _supervise(argv: list[str], fixture: str, output: Path | None, workdir: Path, faults: FaultPlan,
               env: Mapping[str, str] | None, extra_binds: Mapping[str, str | Path] | None,
               timeout: float | None, rerun_killed: bool) -> dict[str, object]:
    """The supervisor's work, in its private namespace; returns the result record."""
    from mockfs.sandbox.namespace import run_in_namespace

    from .testbed import MockMount

    try:
        syscalls.private_mount_namespace()
    except OSError as exc:
        raise RunError(f"cannot create a private mount namespace: {exc.strerror} (run as root)") from None
    keep = workdir / "output-real"
    if faults.enospc and output is not None:
        _limit_output(output, faults.enospc, keep)
    mock = MockMount(fixture, faults=faults, workdir=workdir / "mock")
    mock.start()
    codes: list[int] = []
    try:
        while True:
            try:
                done = run_in_namespace(mock.root, argv, env=env, extra_binds=extra_binds, timeout=timeout)
                codes.append(done.returncode)
            except FileNotFoundError as exc:
                return {"error": f"{argv[0]}: command not found ({exc.strerror})"}
            except subprocess.TimeoutExpired:
                codes.append(128 + signal.SIGKILL)
                break
            # The kill-after fault fires once: the same command runs again on the same machine.
            if not (rerun_killed and faults.kill_after and codes[-1] == 128 + signal.SIGKILL and len(codes) == 1):
                break
    finally:
        report = mock.stop()
    if faults.enospc and output is not None:
        shutil.copytree(output, keep, dirs_exist_ok=True, symlinks=True)
    return {"returncodes": codes, "report": report}


def run(argv: Sequence[str], *, fixture: str = "phyp-power6", output: str | Path | None = None,
        trace: str | Path | None = None, faults: Sequence[str] | FaultPlan = (), workdir: str | Path | None = None,
        env: Mapping[str, str] | None = None, extra_binds: Mapping[str, str | Path] | None = None,
        timeout: float | None = None, rerun_killed: bool = False) -> RunResult:
    """Run *argv* with *fixture*'s mock at the canonical paths; see the module docstring.

    *output* is a directory the program writes its dump to (created if
    missing); the ``enospc`` fault limits it. The trace goes to *trace* (or
    the work directory). With *rerun_killed*, a run killed by the ``kill-after``
    fault is run once more against the same machine (what was released stays
    released), as an operator would after a crash of the collector.
    """
    plan = faults if isinstance(faults, FaultPlan) else parse_faults(list(faults))
    argv = [os.fspath(a) for a in argv]
    if not argv:
        raise RunError("no command to run")
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        raise RunError(f"{argv[0]}: command not found")
    from mockfs.machine import resolve_fixture

    resolve_fixture(fixture)  # fail here, with the fixture's own message, not in the supervisor
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="abi-run-")
        workdir = tmp.name
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(output).resolve() if output is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    result_path = work / "result.json"
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the supervisor
        code = 0
        try:
            syscalls.die_with_parent(parent)
            record = _supervise(argv, fixture, out, work, plan, env, extra_binds, timeout, rerun_killed)
        except BaseException as exc:  # the supervisor reports everything, then leaves
            record = {"error": str(exc) if isinstance(exc, AbiError) else "".join(traceback.format_exception(exc))}
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
        raise RunError(str(record["error"]).strip().splitlines()[-1] if "Traceback" in str(record["error"])
                       else str(record["error"]))
    trace_file = work / "mock" / "trace.jsonl"
    if trace is not None and trace_file.exists():
        shutil.copyfile(trace_file, trace)
        trace_file = Path(trace)
    codes = [int(c) for c in record["returncodes"]]
    result = RunResult(codes[-1], dict(record["report"]), trace_file if trace_file.exists() else None,
                       out, plan.describe(), codes)
    if tmp is not None and trace is None:
        result.trace_path = None
        tmp.cleanup()
    return result

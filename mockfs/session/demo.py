"""The main job: the reference collector on a built-in fixture, through the runner, verified."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from abi_specs.errors import AbiError
from mockfs.dumps import VerifyReport, verify_dump
from mockfs.machine import VmcoreImage, resolve_fixture
from mockfs.sandbox.scratch import Scratch
from mockfs.sandbox.stops import stop_signals_held

from .runner import RunResult, run

#: The built-in fixture the demo uses on each platform.
DEMO_FIXTURES = {"phyp": "phyp-power6", "fadump": "fadump-power9", "kdump": "kdump-x86_64"}


class DemoError(AbiError):
    """The demo could not run; the message says what is missing."""


@dataclass
class DemoResult:
    """What the demo did: the run, and the saved dump checked against the fixture."""

    fixture: str
    command: list[str]
    result: RunResult
    dump: VerifyReport | None

    @property
    def ok(self) -> bool:
        return self.dump is not None and self.dump.ok(complete=True) and self.result.exit_status == 0


def collector_path() -> str:
    """The installed vmcore-save: the console script next to this Python, else on PATH."""
    beside = Path(sys.executable).parent / "vmcore-save"
    found = str(beside) if beside.exists() else shutil.which("vmcore-save")
    if found is None:
        raise DemoError("vmcore-save is not installed (make install, or pip install the package)")
    return found


def run_demo(platform: str = "phyp") -> DemoResult:
    """Save the dump of *platform*'s demo fixture with vmcore-save, and verify it page by page."""
    fixture = DEMO_FIXTURES[platform]
    scratch = None
    try:
        with stop_signals_held():  # a stop that lands while the scratch is made is taken once `scratch` has it
            scratch = Scratch("abi-demo-")
        out = Path(scratch.name) / "dump"
        command = [collector_path(), "--quiet", str(out)]
        result = run(command, fixture=fixture, output=out)
        dump = out / "vmcore"
        verdict = verify_dump(VmcoreImage(resolve_fixture(fixture)), dump) if dump.exists() else None
        return DemoResult(fixture, command, result, verdict)
    finally:
        if scratch is not None:
            scratch.cleanup()

"""Shared test set-up: hypothesis profiles and the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# CI runs many examples; a developer's run fewer. Neither has a deadline: the
# machine is shared and noisy, and speed is measured in bench/, not here.
settings.register_profile("ci", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

REPO = Path(__file__).resolve().parent.parent


def cli_path() -> Path:
    """The installed ``abi-harness`` console script next to this Python."""
    script = Path(sys.executable).parent / "abi-harness"
    if not script.exists():
        raise RuntimeError(f"{script} is missing: install the package (make install)")
    return script


def run_cli(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``abi-harness`` command; never raises on a non-zero exit."""
    return subprocess.run(
        [str(cli_path()), *args],
        input=stdin.decode("latin-1") if stdin is not None else None,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def gcore_of_sleep(directory: Path) -> Path:
    """A core of a real process, written by gdb's gcore (a user core, not a vmcore)."""
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        out = directory / "sleep.core"
        subprocess.run(["gdb", "-batch", "-p", str(sleeper.pid), "-ex", f"gcore {out}"],
                       check=True, capture_output=True, timeout=120)
        return out
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.fixture
def cli():
    """The real command line: ``cli("check", path)`` returns the finished process."""
    return run_cli

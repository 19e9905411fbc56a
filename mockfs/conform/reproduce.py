"""A failure kept so that it reproduces: the example on disk, and a replay that judges it as conform did.

``save_failure`` writes into a directory the minimal failing example's
fixture (``failure.toml``), what else makes the example (``example.json``:
the faults, the collector's command, the arming command) and
``reproduce.sh``. The script runs ``abi-harness conform --replay DIR``: the
same machine, the same faults, the rerun after a kill, the arming half when
there was one; judged by the same rules, and exiting 1 while it fails.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Any

from mockfs.machine import load_fixture, write_fixture

from .arming import Arming
from .campaign import ConformReport, Example, Outcome, check_example

EXAMPLE_FILE = "example.json"
FIXTURE_FILE = "failure.toml"


def _commands(report: ConformReport, directory: Path) -> list[str]:
    """What the replay does, spelled as the commands a person would type (for reading, not running)."""
    ex = report.minimal.example  # type: ignore[union-attr]
    out = directory / "output"
    faults = " ".join(f"--fault {shlex.quote(f)}" for f in ex.faults)
    command = " ".join(shlex.quote(a.replace("{output}", str(out))) for a in report.command)
    machine = directory / "machine"
    lines = [f"abi-harness run --machine {machine} --fixture {directory / FIXTURE_FILE} --state "
             f"{'armed' if report.arming else 'capture'} -- true"]
    if report.arming is not None:
        if report.arming.packages:
            lines.append(f"abi-harness machine install {machine} {' '.join(report.arming.packages)}")
        lines += [f"abi-harness run --machine {machine} -- sh -c {shlex.quote(report.arming.command)}",
                  f"abi-harness crash {machine}"]
    lines.append(" ".join(f"abi-harness run --machine {machine} --output {out} {faults} -- {command}".split()))
    if any(f.startswith("kill-after:") for f in ex.faults):
        lines.append(f"abi-harness run --machine {machine} --output {out} -- {command}   # the rerun after the kill")
    return lines


def _cli() -> str:
    """The abi-harness that ran conform: the replay must not depend on PATH."""
    import sys

    beside = Path(sys.executable).parent / "abi-harness"
    return str(beside) if beside.exists() else (shutil.which("abi-harness") or "abi-harness")


def save_failure(report: ConformReport, directory: Path) -> list[Path]:
    """Keep the minimal failure in *directory* (see the module docstring); returns the files written."""
    if report.minimal is None:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    ex = report.minimal.example
    manifest = directory / FIXTURE_FILE
    write_fixture(ex.fixture, manifest)
    doc: dict[str, Any] = {"command": report.command, "faults": list(ex.faults),
                           "arm": report.arming.command if report.arming else None,
                           "install": list(report.arming.packages) if report.arming else [],
                           "problems": report.minimal.problems}
    (directory / EXAMPLE_FILE).write_text(json.dumps(doc, indent=2) + "\n")
    reproduce = directory / "reproduce.sh"
    lines = ["#!/bin/sh", "# What conform found:", *[f"#   {p}" for p in report.minimal.problems],
             "#", f"# The example: {ex.describe()}; the fixture is {FIXTURE_FILE}, the rest {EXAMPLE_FILE}.",
             "# The replay below runs it again and judges it as conform does (exit 1 while it fails).",
             "# By hand, it is:", *[f"#   {line}" for line in _commands(report, directory)],
             "", f'exec "${{ABI_HARNESS:-{_cli()}}}" conform --replay "$(dirname "$0")"', ""]
    reproduce.write_text("\n".join(lines))
    reproduce.chmod(0o755)
    report.saved = [manifest, directory / EXAMPLE_FILE, reproduce]
    return report.saved


def replay(directory: Path, timeout: float = 600) -> tuple[Example, list[str], Outcome]:
    """Run the example kept in *directory* again; (example, command, outcome)."""
    doc = json.loads((directory / EXAMPLE_FILE).read_text())
    fixture = load_fixture(directory / FIXTURE_FILE)
    example = Example(fixture, tuple(doc["faults"]))
    arming = None
    if doc.get("arm"):
        from mockfs.tools import debs

        packages = tuple(doc.get("install", []))
        trees = tuple((debs.unpacked(debs.resolve(p)) or [debs.unpack(debs.resolve(p))])[-1] for p in packages)
        arming = Arming(doc["arm"], packages, trees)
    work = directory / "replay"
    shutil.rmtree(work, ignore_errors=True)
    outcome = check_example(doc["command"], example, work, timeout=timeout, arming=arming)
    # Keep what the collector left for a look, but not the machine's memory.
    for big in ("run", "machine"):
        shutil.rmtree(work / big, ignore_errors=True)
    os.chmod(work, 0o700)
    return example, doc["command"], outcome

"""The arming half of a dump service, judged: ``abi-harness conform --arm CMD``.

One example's machine boots armed (its production kernel), CMD runs on it,
the machine crashes, the collector runs in the capture kernel (judged as
ever, by :mod:`.campaign`), and then the machine must be armed again the way
its platform's life says (``rearm`` in ``specs/lifecycle.toml``):

* ``itself``: nothing to run, the capture kernel registers again once
  everything is given back (phyp);
* ``service``: the same kernel goes on, CMD runs again and must arm it (fadump);
* ``reboot``: the machine reboots into production, CMD runs there (kdump).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from abi_specs import builtin_spec
from mockfs.machine import Fixture
from mockfs.session.machines import MachineDir, transition
from mockfs.session.runner import RunResult, run


@dataclass(frozen=True)
class Arming:
    """How each example is armed: the command, and packages to put into each machine first."""

    command: str
    packages: tuple[str, ...] = ()  # Debian packages put into every machine (abi-harness machine install)
    trees: tuple[Path, ...] = ()  # ... their unpacked trees (mockfs.tools.debs)

    def argv(self) -> list[str]:
        return ["sh", "-c", self.command]


def _arm(arming: Arming, machine: Path, work: Path, step: str, timeout: float) -> RunResult:
    return run(arming.argv(), machine=machine, workdir=work / f"run-{step}", timeout=timeout)


def arm_and_crash(arming: Arming, fixture: Fixture, work: Path, timeout: float) -> tuple[Path, list[str]]:
    """Boot *fixture*'s machine armed, run the arming command, crash it; returns the machine and the problems.

    No problem means the crash left a dump: the collector can run.
    """
    path = work / "machine"
    mdir = MachineDir.create(path, fixture, "armed")
    for tree in arming.trees:
        mdir.install(tree)
    result = _arm(arming, path, work, "arm", timeout)
    problems = []
    if result.returncode != 0:
        problems.append(f"the arming command exited with {result.returncode}")
    ran = transition(path, "crash", "abi-harness conform")
    if ran != ["crash"]:
        armed_by = builtin_spec().lifecycle(fixture.platform).armed_by
        problems.append(f"the crash left no dump: {arming.command!r} did not arm the machine ({armed_by} was false)")
    return path, problems


def check_rearmed(arming: Arming, machine: Path, work: Path, timeout: float) -> list[str]:
    """After a complete collection: is the machine armed again as its platform expects?"""
    mdir = MachineDir.open(machine)
    lifecycle = builtin_spec().lifecycle(mdir.fixture.platform)
    if lifecycle.rearm == "reboot":
        transition(machine, "reboot", "abi-harness conform")
    if lifecycle.rearm in ("service", "reboot"):
        result = _arm(arming, machine, work, "rearm", timeout)
        if result.returncode != 0:
            return [f"arming again after the collection: the arming command exited with {result.returncode}"]
    doc = MachineDir.open(machine).describe()
    if doc["armed"]:
        return []
    if lifecycle.rearm == "itself":
        return [f"after the collection the machine is not armed again: {mdir.fixture.platform} registers by itself "
                f"once everything is released, and {lifecycle.armed_by} is still false"]
    after = "after a reboot" if lifecycle.rearm == "reboot" else "in the same kernel"
    return [f"after the collection, {arming.command!r} {after} did not arm the machine again "
            f"({lifecycle.armed_by} is false)"]

"""Property-based conformance of any collector command against mocked firmware.

Each hypothesis example is a generated crashed machine (platform, arch,
memory size, CPUs, log) and a fault plan (read errors, short reads, a kill
part-way then a rerun, a full output directory). The collector runs through
:func:`mockfs.session.runner.run`; then the example is judged:

* the dump it saved is the fixture's memory, page for page (``fixture verify``);
* the mock recorded no violation of the ABI's contract;
* at the end every reserved range was released exactly once (when the save
  could complete), and nothing was released before it was read;
* the saved files are not readable by other users;
* the exit status tells the truth: 0 exactly when the dump is complete.

A failure is shrunk by hypothesis to a minimal fixture and fault plan.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from abi_specs import builtin_spec
from abi_specs.units import format_size
from mockfs.dumps import DumpFormatError, VerifyReport, verify_dump
from mockfs.fuse.faults import parse_faults
from mockfs.machine import Fixture, VmcoreImage, write_fixture
from mockfs.machine.generate import MIN_MEMORY, new_fixture
from mockfs.session.runner import RunResult, run

from .arming import Arming, arm_and_crash, check_rearmed, reproducer_lines

MiB = 1 << 20
#: Memory sizes drawn per platform: the smallest machines the model allows, so examples stay fast.
MEMORY_CHOICES = {p: (m, m + 64 * MiB) for p, m in MIN_MEMORY.items()}
#: Faults that can make a complete save impossible: the collector must then fail honestly.
BLOCKING = ("eio", "enospc")


@dataclass(frozen=True)
class Example:
    """One generated machine and fault plan."""

    fixture: Fixture
    faults: tuple[str, ...]

    def describe(self) -> str:
        fx = self.fixture
        faults = " ".join(self.faults) or "no faults"
        failed = ", firmware flagged the dump as failed" if self.dump_failed else ""
        return f"{fx.platform}/{fx.arch} Linux {fx.osrelease} {format_size(fx.ram_size)} {len(fx.cpus)} cpus{failed}, {faults}"

    @property
    def dump_failed(self) -> bool:
        return self.fixture.phyp is not None and self.fixture.phyp.dump_status == "error"

    def key(self) -> str:
        return hashlib.sha1(repr((self.fixture, self.faults)).encode()).hexdigest()


@dataclass
class Outcome:
    """How one example went."""

    example: Example
    problems: list[str]
    seconds: float
    result: RunResult | None = None
    dump: VerifyReport | None = None

    @property
    def passed(self) -> bool:
        return not self.problems


@st.composite
def examples(draw: st.DrawFn, platform: str | None = None, arch: str | None = None) -> Example:
    """Generated crashed machines with fault plans (see the module docstring); *arch* keeps one architecture."""
    spec = builtin_spec()
    platforms = sorted(p for p in spec.platforms if arch is None or arch in spec.platforms[p].arches)
    plat = platform or draw(st.sampled_from(platforms))
    arch = arch or draw(st.sampled_from(spec.platforms[plat].arches))
    memory = draw(st.sampled_from(MEMORY_CHOICES[plat]))
    cpus = draw(st.integers(1, 4))
    text = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=60)
    messages = draw(st.lists(text, max_size=4))
    # The kernel versions at which the platform's ABI changes, as the spec records them.
    version = draw(st.sampled_from(spec.notable_versions(plat)))
    # Now and then firmware flags a phyp dump as failed: the collector must cope with no dump.
    status = draw(st.sampled_from(["ok"] * 7 + ["error"])) if plat == "phyp" else "ok"
    fixture = new_fixture(plat, arch, memory, cpus, messages, seed=draw(st.integers(0, 2**32 - 1)), name="conform",
                          osrelease=f"{version}-conform", dump_status=status)
    if status == "error":
        return Example(fixture, ())  # no dump to read: read and write faults have nothing to act on
    size = VmcoreImage(fixture).size
    page = spec.arches[arch].page_size
    kind = draw(st.sampled_from(["none", "none", "short", "delay", "kill", "eio", "enospc"]))
    faults: tuple[str, ...] = ()
    if kind == "short":
        # Short reads of whole pages and of odd sizes; tiny ones would only make the suite slow.
        faults = (f"short:{draw(st.sampled_from([65536, 100_000, 1 << 20 | 7]))}",)
    elif kind == "delay":
        faults = ("delay:0.2",)
    elif kind == "kill":
        faults = (f"kill-after:{draw(st.integers(1, max(1, size // MiB - 1))) * MiB}",)
    elif kind == "eio":
        at = draw(st.integers(1, size // page - 1)) * page
        faults = (f"eio:{at:#x}-{at + page:#x}",)
    elif kind == "enospc":
        faults = (f"enospc:{draw(st.integers(1, max(1, size // MiB - 1))) * MiB}",)
    return Example(fixture, faults)


def _best_dump(output: Path, image: VmcoreImage) -> tuple[Path | None, VerifyReport | None]:
    """The file in *output* that holds the most of the fixture's memory."""
    best: tuple[Path | None, VerifyReport | None] = (None, None)
    for path in sorted(p for p in output.rglob("*") if p.is_file()):
        try:
            report = verify_dump(image, path)
        except (DumpFormatError, OSError, ValueError):
            continue
        if best[1] is None or report.identical > best[1].identical:
            best = (path, report)
    return best


def judge(example: Example, result: RunResult, output: Path, image: VmcoreImage) -> tuple[list[str], VerifyReport | None]:
    """The problems of one finished example (empty when it conforms)."""
    if example.dump_failed:
        return _judge_failed_dump(result, output, image), None
    problems: list[str] = []
    plan = parse_faults(list(example.faults))
    path, dump = _best_dump(output, image) if output.exists() else (None, None)
    complete = dump is not None and dump.ok(complete=True)
    if dump is not None and not dump.ok(complete=False):
        first = dump.problems[0] if dump.problems else None
        where = f" (first: {first.kind} page at {first.paddr:#x}{', ' + first.detail if first.detail else ''})" if first else ""
        problems.append(f"saved dump {path.name} is not the fixture's memory: {dump.different} different, "
                        f"{dump.misplaced} misplaced, {dump.extra} extra pages{where}")
    blocked = result.returncode != 0 and any(f.split(":")[0] in BLOCKING for f in example.faults)
    for v in result.violations:
        if v["kind"] == "memory-held" and blocked and not complete:
            continue  # an honest failure must keep unsaved memory reserved
        problems.append(f"violation {v['kind']}: {v['message']}")
    for p in output.rglob("*") if output.exists() else []:
        mode = stat.S_IMODE(p.lstat().st_mode)
        if p.is_file() and mode & 0o077:
            problems.append(f"{p.relative_to(output)} is readable by other users (mode {mode:04o})")
    if result.returncode == 0 and not complete:
        missing = "no dump found" if dump is None else f"{dump.missing} pages missing"
        problems.append(f"exit status 0 after an incomplete save ({missing})")
    if result.returncode != 0 and complete and not result.violations and not plan.kill_after:
        problems.append(f"exit status {result.returncode} although the dump is complete")
    if plan.kill_after and len(result.returncodes) == 1 and result.returncode == 0 and not complete:
        problems.append("killed part-way, the rerun never happened")
    return problems, dump


def _judge_failed_dump(result: RunResult, output: Path, image: VmcoreImage) -> list[str]:
    """A dump firmware flagged as failed: there is nothing to save, and nothing to give back.

    The collector must not claim a dump (no file in *output* may pass for
    one), must break no rule, and must end by itself rather than by a signal;
    its exit status is its own choice.
    """
    problems = [f"violation {v['kind']}: {v['message']}" for v in result.violations]
    for path in sorted(p for p in output.rglob("*") if p.is_file()) if output.exists() else []:
        problems.append(f"{path.relative_to(output)} saved although the firmware flagged the dump as failed")
    if result.returncode >= 128:
        problems.append(f"the collector died of signal {result.returncode - 128} on a machine with a failed dump")
    return problems


def check_example(template: Sequence[str], example: Example, work: Path, timeout: float = 600,
                  arming: Arming | None = None) -> Outcome:
    """Run the collector on one example and judge it; with *arming*, the arming half first and after."""
    started = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "fixture.toml"
    write_fixture(example.fixture, manifest)
    output = work / "output"
    argv = [a.replace("{output}", str(output)) for a in template]
    machine = None
    if arming is not None:
        machine, problems = arm_and_crash(arming, example.fixture, work, timeout)
        if problems:
            return Outcome(example, problems, time.monotonic() - started)
    result = run(argv, fixture=str(manifest), output=output, faults=list(example.faults), workdir=work / "run",
                 rerun_killed=True, timeout=timeout, machine=machine)
    image = VmcoreImage(example.fixture)
    problems, dump = judge(example, result, output, image)
    if arming is not None and machine is not None and not problems and result.returncode == 0:
        problems += check_rearmed(arming, machine, work, timeout)
    return Outcome(example, problems, time.monotonic() - started, result, dump)


@dataclass
class ConformReport:
    """Every example run, and the minimal failure if there was one."""

    command: list[str]
    arming: Arming | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    minimal: Outcome | None = None
    saved: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    @property
    def failed(self) -> int:
        return len(self.outcomes) - self.passed


class _Failed(AssertionError):
    pass


def conform(
    template: Sequence[str],
    platform: str | None = None,
    examples_count: int = 50,
    seed: int | None = None,
    work: Path | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    shrink_budget: int = 25,
    arming: Arming | None = None,
    arch: str | None = None,
) -> ConformReport:
    """Run the conformance suite on *template* (``{output}`` is replaced per example).

    With *arming*, each example's machine boots armed and is armed by its
    command, crashes, and must be armed again after the collection (see
    :mod:`.arming`).
    """
    report = ConformReport(list(template), arming)
    known: dict[str, Outcome] = {}
    failures = 0
    tmp = None
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix="abi-conform-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
        work = Path(tmp.name)

    @settings(max_examples=examples_count, deadline=None, database=None, derandomize=seed is None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink], print_blob=False)
    @given(examples(platform, arch))
    def one(example: Example) -> None:
        nonlocal failures
        key = example.key()
        if key not in known:
            if failures and failures > shrink_budget:
                return  # shrinking budget spent: treat further candidates as passing
            outcome = check_example(template, example, work / f"ex-{len(known)}", arming=arming)
            shutil.rmtree(work / f"ex-{len(known)}", ignore_errors=True)  # dumps and machines are large
            known[key] = outcome
            report.outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
            if outcome.problems:
                failures += 1
        outcome = known[key]
        if outcome.problems:
            report.minimal = outcome
            raise _Failed("; ".join(outcome.problems))

    if seed is not None:
        one = hypothesis_seed(seed)(one)
    try:
        one()
    except _Failed:
        pass
    except HypothesisException as exc:  # flaky collectors: keep the last failure seen
        if report.minimal is None:
            raise
        report.minimal.problems.append(f"(hypothesis: {exc})")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return report


def save_failure(report: ConformReport, directory: Path) -> list[Path]:
    """Write the minimal failing fixture and a one-line reproducer into *directory*."""
    if report.minimal is None:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "failure.toml"
    write_fixture(report.minimal.example.fixture, manifest)
    faults = " ".join(f"--fault {shlex.quote(f)}" for f in report.minimal.example.faults)
    command = " ".join(shlex.quote(a.replace("{output}", str(directory / "output"))) for a in report.command)
    killed = bool(parse_faults(list(report.minimal.example.faults)).kill_after)
    if report.arming is not None:
        lines = reproducer_lines(report.arming, manifest, directory, faults, command)
    elif killed:
        # The kill and the operator's rerun, on one machine kept in DIR: the rerun is judged on both.
        machine = directory / "machine"
        lines = [f"rm -rf {machine}",
                 " ".join(f"abi-harness run --machine {machine} --fixture {shlex.quote(str(manifest))} "
                          f"--output {directory / 'output'} {faults} -- {command}".split()),
                 f"abi-harness run --machine {machine} --output {directory / 'output'} -- {command}"]
    else:
        lines = [" ".join(f"abi-harness run --fixture {shlex.quote(str(manifest))} --output {directory / 'output'} "
                          f"{faults} -- {command}".split())]
    reproduce = directory / "reproduce.sh"
    reproduce.write_text("#!/bin/sh\n# " + "; ".join(report.minimal.problems) + "\n" + "\n".join(lines) + "\n")
    reproduce.chmod(0o755)
    report.saved = [manifest, reproduce]
    return report.saved


def junit_xml(report: ConformReport) -> str:
    """The outcomes as JUnit XML, one test case per example."""
    suite = ElementTree.Element("testsuite", name="abi-harness conform", tests=str(len(report.outcomes)),
                                failures=str(report.failed), time=f"{sum(o.seconds for o in report.outcomes):.3f}")
    for i, outcome in enumerate(report.outcomes):
        case = ElementTree.SubElement(suite, "testcase", classname="conform", name=f"example {i}: {outcome.example.describe()}",
                                      time=f"{outcome.seconds:.3f}")
        if outcome.problems:
            failure = ElementTree.SubElement(case, "failure", message=outcome.problems[0])
            failure.text = "\n".join(outcome.problems)
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)

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

The examples are drawn first (as hypothesis's generate phase draws them,
so a seed gives one list), then run side by side (:mod:`.pool`), a slice of
them with a shard. A failure is then shrunk by hypothesis, one run at a time,
to a minimal fixture and fault plan.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from abi_specs import builtin_spec
from abi_specs.units import format_size, plural
from mockfs.dumps import VerifyReport
from mockfs.fuse.faults import parse_faults
from mockfs.machine import Fixture, VmcoreImage, write_fixture
from mockfs.machine.generate import MIN_MEMORY, new_fixture
from mockfs.sandbox.stops import stop_signals_held
from mockfs.session.runner import RunResult, run

from .arming import Arming, arm_and_crash, check_rearmed
from .judging import judge_failed_dump, judge_run
from .pool import Job, run_ordered
from .workspace import Workspace

MiB = 1 << 20
#: Memory sizes drawn per platform: the smallest machines the model allows, so examples stay fast.
MEMORY_CHOICES = {p: (m, m + 64 * MiB) for p, m in MIN_MEMORY.items()}


@dataclass(frozen=True)
class Example:
    """One generated machine and fault plan."""

    fixture: Fixture
    faults: tuple[str, ...]

    def describe(self) -> str:
        fx = self.fixture
        faults = " ".join(self.faults) or "no faults"
        failed = ", firmware flagged the dump as failed" if self.dump_failed else ""
        size = format_size(fx.ram_size)
        return f"{fx.platform}/{fx.arch} Linux {fx.osrelease} {size} {plural(len(fx.cpus), 'cpu')}{failed}, {faults}"

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
    number: int = 0  # the example's place in the campaign, from 1 (0: a shrinking run or a replay)

    @property
    def passed(self) -> bool:
        return not self.problems


#: The kinds of fault plan drawn (by default "none" twice as often: a plain save is the common case).
FAULT_KINDS = ("none", "short", "delay", "kill", "eio", "enospc")


@st.composite
def examples(draw: st.DrawFn, platform: str | None = None, arch: str | None = None,
             kinds: tuple[str, ...] = ()) -> Example:
    """Generated crashed machines with fault plans (see the module docstring); *arch* keeps one
    architecture, *kinds* the kinds of fault plan (default: all of :data:`FAULT_KINDS`)."""
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
    kind = draw(st.sampled_from(list(kinds) if kinds else ["none", *FAULT_KINDS]))
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


def judge(example: Example, result: RunResult, output: Path, image: VmcoreImage) -> tuple[list[str], VerifyReport | None]:
    """The problems of one finished example (empty when it conforms), and the dump it saved."""
    counts = result.report.get("violation_counts") or {}  # the true totals: violations holds the first few
    if example.dump_failed:
        return judge_failed_dump(result.returncode, result.violations, output, counts), None  # type: ignore[arg-type]
    plan = parse_faults(list(example.faults))
    problems, saved = judge_run(plan, example.faults, result.returncodes or [result.returncode], result.violations,
                                output, image, counts)  # type: ignore[arg-type]
    return problems, saved.report


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
    """The examples run (as many as asked for), and the minimal failure if there was one."""

    command: list[str]
    arming: Arming | None = None
    outcomes: list[Outcome] = field(default_factory=list)  # one per example run, in the campaign's order
    drawn: int = 0  # the examples of the whole campaign (a shard runs some of them)
    shard: tuple[int, int] = (1, 1)
    minimal: Outcome | None = None
    shrink_runs: int = 0  # runs hypothesis made while shrinking (not examples)
    interrupted: bool = False
    saved: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    @property
    def failed(self) -> int:
        return len(self.outcomes) - self.passed


class _Failed(AssertionError):
    pass


def default_jobs() -> int:
    """How many examples run at once by default: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def in_shard(number: int, shard: tuple[int, int]) -> bool:
    """Whether example *number* (from 1) is in *shard* (K, N): every N-th example, from the K-th on."""
    index, count = shard
    return (number - 1) % count == index - 1


def _space_needed(example: Example) -> int:
    """The scratch bytes one example may fill: its whole dump (a failed phyp dump has none)."""
    return 0 if example.dump_failed else VmcoreImage(example.fixture).size


def _space_budget(work: Path) -> int:
    """What the dumps being written at once may fill together: half the room left where they go."""
    fs = os.statvfs(work)
    return fs.f_bavail * fs.f_frsize // 2


def _search(count: int, seed: int | None, strategy: st.SearchStrategy[Example], shrink: bool,
            body: Callable[[Example], None]) -> None:
    """Hypothesis over *strategy* with *body* as the test: the draw, then (*shrink*) the replay that shrinks.

    Both passes go through this one function: derandomized (no *seed*),
    hypothesis seeds from the test's source, so both see one sequence.
    """
    @settings(max_examples=count, deadline=None, database=None, derandomize=seed is None,
              suppress_health_check=list(HealthCheck), print_blob=False,
              phases=[Phase.generate, Phase.shrink] if shrink else [Phase.generate])
    @given(strategy)
    def one(example: Example) -> None:
        body(example)

    (hypothesis_seed(seed)(one) if seed is not None else one)()


def draw_examples(count: int, seed: int | None = None, platform: str | None = None, arch: str | None = None,
                  kinds: tuple[str, ...] = (), should_stop: Callable[[], bool] = lambda: False) -> list[Example]:
    """The campaign's examples, in order: as hypothesis's generate phase draws them (one list per seed)."""
    drawn: dict[str, Example] = {}

    def record(example: Example) -> None:
        if should_stop():  # a signal hypothesis may have taken for the end of its own search
            raise KeyboardInterrupt
        if example.key() not in drawn and len(drawn) < count:
            drawn[example.key()] = example

    strategy = examples(platform, arch, kinds)
    _search(count, seed, strategy, False, record)
    # Hypothesis may draw one example twice; N examples are N, so more rounds (seeded from this
    # one, so a seed still means one list) fill the gap. A space smaller than N ends it early.
    for extra in range(1, _EXTRA_ROUNDS + 1):
        if len(drawn) >= count:
            break
        _search(count, (seed or 0) * 1000 + extra, strategy, False, record)
    return list(drawn.values())


#: How many more draws fill in for examples hypothesis drew twice.
_EXTRA_ROUNDS = 4


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
    on_shrink: Callable[[Outcome], None] | None = None,
    kinds: tuple[str, ...] = (),
    should_stop: Callable[[], bool] = lambda: False,
    jobs: int | None = None,
    shard: tuple[int, int] = (1, 1),
    tmpfs: bool = False,
) -> ConformReport:
    """Run the conformance suite on *template* (``{output}`` is replaced per example).

    First *examples_count* examples are drawn; those of *shard* (K, N: every
    N-th from the K-th) run, *jobs* at a time (default: :func:`default_jobs`),
    each judged whatever the others gave; *on_outcome* sees them in the
    campaign's order. Then, when some failed, hypothesis replays the same
    sequence (the results are remembered; other shards' examples pass) and
    shrinks the first failure to a minimal one in at most *shrink_budget*
    more runs. With *arming*, each example's machine boots armed and is armed
    by its command, crashes, and must be armed again after the collection
    (see :mod:`.arming`). Ctrl-C ends it with the examples done so far
    (``interrupted``). Without *work*, the examples write in a scratch
    directory, on a private tmpfs with *tmpfs* (see :mod:`.workspace`: this
    process leaves the host's mount namespace, so it is for a process of its
    own, such as the command line's).
    """
    if examples_count < 1:
        raise ValueError(f"the number of examples must be at least 1, not {examples_count}")
    if not 1 <= shard[0] <= shard[1]:
        raise ValueError(f"shard {shard[0]}/{shard[1]}: K/N needs 1 <= K <= N")
    workers = default_jobs() if jobs is None else jobs
    if workers < 1:
        raise ValueError(f"the number of jobs must be at least 1, not {workers}")
    report = ConformReport(list(template), arming, shard=shard)
    place = work  # or the workspace's, set below

    def checked(example: Example, slot: Path) -> Outcome:
        try:
            return check_example(template, example, slot, arming=arming)
        finally:
            shutil.rmtree(slot, ignore_errors=True)  # dumps and machines are large

    def run_job(job: Job[Example]) -> Outcome:
        outcome = checked(job.item, place / f"ex-{job.number}")
        outcome.number = job.number
        return outcome

    tmp: Workspace | None = None
    try:
        # Inside the try, stops held until `tmp` has it: a stop signal at any point still removes the scratch.
        if work is None:
            with stop_signals_held():
                tmp = Workspace(tmpfs)
        place = tmp.path if tmp is not None else work
        drawn = draw_examples(examples_count, seed, platform, arch, kinds, should_stop)
        report.drawn = len(drawn)
        todo = [Job(n, ex, _space_needed(ex)) for n, ex in enumerate(drawn, 1) if in_shard(n, shard)]
        report.outcomes, interrupted = run_ordered(todo, run_job, workers=workers, space=_space_budget(place),
                                                   on_result=on_outcome or (lambda _o: None), should_stop=should_stop)
        if interrupted:
            raise KeyboardInterrupt
        if report.failed:
            others = {ex.key() for n, ex in enumerate(drawn, 1) if not in_shard(n, shard)}
            shrink = _Shrink(report, others, shrink_budget, lambda ex, n: checked(ex, place / f"shrink-{n}"),
                             on_shrink, should_stop)
            shrink.run(examples_count, seed, examples(platform, arch, kinds))
    except KeyboardInterrupt:
        report.interrupted = True
    except Exception:
        # A signal that lands inside hypothesis's own set-up can leave it failing an internal
        # assertion instead of passing the KeyboardInterrupt on: the signal is the cause.
        if not should_stop():
            raise
        report.interrupted = True
    finally:
        if tmp is not None:
            tmp.cleanup()
    report.interrupted = report.interrupted or should_stop()
    return report


@dataclass
class _Shrink:
    """The first failure shrunk: hypothesis replays the draw, the examples' outcomes remembered, then shrinks.

    The examples of other shards pass (they are judged there); every new
    candidate is one more run, up to the budget, after which candidates pass.
    """

    report: ConformReport
    others: set[str]
    budget: int
    check: Callable[[Example, int], Outcome]  # (example, run number) -> outcome
    on_shrink: Callable[[Outcome], None] | None
    should_stop: Callable[[], bool]
    known: dict[str, Outcome] = field(default_factory=dict)  # by example key

    def run(self, count: int, seed: int | None, strategy: st.SearchStrategy[Example]) -> None:
        self.known.update((o.example.key(), o) for o in self.report.outcomes)
        self.report.minimal = next(o for o in self.report.outcomes if o.problems)
        try:
            _search(count, seed, strategy, True, self.test)
        except _Failed:
            pass
        except HypothesisException as exc:  # a flaky collector: keep the last failure seen
            self.report.minimal.problems.append(f"(hypothesis: {exc})")

    def test(self, example: Example) -> None:
        if self.should_stop():
            raise KeyboardInterrupt
        key = example.key()
        if key in self.others:
            return
        outcome = self.known.get(key)
        if outcome is None:
            if self.report.shrink_runs >= self.budget:
                return  # shrinking budget spent: treat further candidates as passing
            self.report.shrink_runs += 1
            outcome = self.known[key] = self.check(example, self.report.shrink_runs)
            if self.on_shrink:
                self.on_shrink(outcome)
        if outcome.problems:
            self.report.minimal = outcome
            raise _Failed("; ".join(outcome.problems))

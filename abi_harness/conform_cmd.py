"""`abi-harness conform` and `abi-harness demo`: collectors judged against the mock."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

from abi_specs import builtin_spec

from .errors import STOPPED_BY, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mockfs.conform.arming import Arming
    from mockfs.conform.campaign import Outcome


def _command(args: argparse.Namespace) -> list[str]:
    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("no collector command given: abi-harness conform [OPTIONS] -- CMD ARGS ({output} is replaced)")
    return argv


def _arming(args: argparse.Namespace) -> Arming | None:
    """--arm CMD and --install PACKAGE: the arming half, with the packages unpacked once, up front."""
    from mockfs.conform.arming import Arming

    if args.arm is None:
        if args.install:
            raise UsageError("--install puts packages into armed machines: it needs --arm CMD")
        return None
    from mockfs.tools import debs

    trees = []
    for package in args.install:
        name = debs.resolve(package)
        found = debs.unpacked(name)
        trees.append(found[-1] if found else debs.unpack(name))
    return Arming(args.arm, tuple(args.install), tuple(trees))


def _fault_kinds(text: str) -> str:
    from mockfs.conform.campaign import FAULT_KINDS

    bad = [k for k in text.split(",") if k not in FAULT_KINDS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown kind {bad[0]!r} (known: {', '.join(FAULT_KINDS)})")
    return text


def _jobs(text: str) -> int:
    """--jobs N: a whole number of examples at once, at least 1."""
    try:
        jobs = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of jobs") from None
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"{jobs}: at least one job is needed")
    return jobs


def _shard(text: str) -> tuple[int, int]:
    """--shard K/N: the K-th of N slices, 1 <= K <= N."""
    k, slash, n = text.partition("/")
    if not (slash and k.isdigit() and n.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N (the K-th of N shards, e.g. 1/4)")
    if not 1 <= int(k) <= int(n):
        raise argparse.ArgumentTypeError(f"{text}: K must be from 1 to N (shards are counted from 1)")
    return int(k), int(n)


def _shard_size(total: int, shard: tuple[int, int]) -> int:
    """How many of *total* examples fall in *shard*."""
    k, n = shard
    return len(range(k - 1, total, n))


def _check_writable(path: str) -> None:
    """Fail now, not after an hour of examples, when the JUnit file cannot be written."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--junit {target}: is a directory")
    existed = target.exists()
    try:
        with open(target, "a"):
            pass
    except OSError as exc:
        raise UsageError(f"--junit {target}: cannot write: {exc.strerror}") from None
    if not existed:
        target.unlink()


def cmd_replay(args: argparse.Namespace) -> int:
    """``conform --replay DIR``: the kept example again, judged as conform judged it."""
    from mockfs.conform.reproduce import EXAMPLE_FILE, replay

    directory = Path(args.replay)
    if not (directory / EXAMPLE_FILE).is_file():
        raise UsageError(f"{directory}: no {EXAMPLE_FILE} here (conform --keep-failures DIR writes one)")
    example, command, outcome = replay(directory)
    print(f"abi-harness conform: replaying {example.describe()}: {' '.join(command)}", file=sys.stderr)
    for problem in outcome.problems:
        print(f"  {problem}", file=sys.stderr)
    print("FAIL" if outcome.problems else "pass: the example conforms now")
    return 1 if outcome.problems else 0


def cmd_conform(args: argparse.Namespace) -> int:
    from abi_specs.units import plural
    from mockfs.conform.campaign import conform, default_jobs
    from mockfs.conform.junit import junit_xml
    from mockfs.conform.reproduce import save_failure
    from mockfs.dumps.verify import reuse_window_buffers

    reuse_window_buffers()  # every example's dump is compared with its machine's memory, here
    if args.replay:
        return cmd_replay(args)
    argv = _command(args)
    if args.examples < 1:
        raise UsageError(f"--examples {args.examples}: at least one example is needed")
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        raise UsageError(f"{argv[0]}: command not found")
    if args.junit:
        _check_writable(args.junit)
    if not any("{output}" in a for a in argv):
        print("abi-harness conform: warning: no {output} in the command: the dump must land in the directory "
              "the collector chooses itself, where conform cannot find it", file=sys.stderr)
    total = args.examples
    arches = builtin_spec().platforms[args.platform].arches if args.platform else ()
    if args.arch and arches and args.arch not in arches:
        raise UsageError(f"--arch {args.arch}: {args.platform} machines are {', '.join(arches)}")

    def show(outcome: Outcome) -> None:
        mark = "pass" if outcome.passed else "FAIL"
        print(f"[{outcome.number:>3}/{total}] {mark}  {outcome.example.describe()}  ({outcome.seconds:.1f} s)",
              file=sys.stderr)
        for problem in outcome.problems[:3]:
            print(f"          {problem}", file=sys.stderr)
        if len(outcome.problems) > 3:
            print(f"          ... {len(outcome.problems) - 3} more", file=sys.stderr)

    def shrinking(_outcome: Outcome) -> None:
        report_runs[0] += 1
        if sys.stderr.isatty():
            print(f"\rshrinking the first failure: {report_runs[0]} runs", end="", file=sys.stderr, flush=True)

    report_runs = [0]
    arming = _arming(args)
    how = f", each machine armed by {args.arm!r}" if arming else ""
    shard = args.shard or (1, 1)
    mine = _shard_size(total, shard)
    part = f", shard {shard[0]}/{shard[1]}: {mine} of them" if args.shard else ""
    jobs = args.jobs or default_jobs()
    print(f"abi-harness conform: {plural(total, 'example')} of {' '.join(argv)}{how}{part}, {plural(jobs, 'job')}",
          file=sys.stderr)
    kinds = tuple(k for k in (args.faults or "").split(",") if k)
    report = conform(argv, args.platform, total, args.seed, on_outcome=show, arming=arming, arch=args.arch,
                     on_shrink=shrinking, kinds=kinds, should_stop=lambda: bool(STOPPED_BY), jobs=jobs, shard=shard,
                     tmpfs=True)
    if report_runs[0]:
        print("\r" if sys.stderr.isatty() else "", end="", file=sys.stderr)
        print(f"shrunk the first failure in {report_runs[0]} more runs (not counted as examples)", file=sys.stderr)
    if args.junit:
        Path(args.junit).write_text(junit_xml(report))
    if report.minimal is not None:
        m = report.minimal
        print(f"\nminimal failure: {m.example.describe()}", file=sys.stderr)
        for problem in m.problems:
            print(f"  {problem}", file=sys.stderr)
        if args.keep_failures:
            saved = save_failure(report, Path(args.keep_failures))
            print(f"  kept in {saved[0].parent}; reproduce with: sh {saved[-1]}", file=sys.stderr)
    done = "interrupted: " if report.interrupted else ""
    of = f" of {mine}" if report.interrupted else ""
    sliced = f" (shard {shard[0]}/{shard[1]} of {plural(total, 'example')})" if args.shard else ""
    print(f"{done}{report.passed} passed, {report.failed} failed{of}{sliced}")
    if report.interrupted:
        return 128 + (STOPPED_BY[0] if STOPPED_BY else signal.SIGINT)
    return 0 if report.failed == 0 else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from mockfs.dumps.verify import reuse_window_buffers
    from mockfs.session.demo import DEMO_FIXTURES, run_demo
    from mockfs.session.report import render_report

    reuse_window_buffers()

    print(f"Running the reference collector on {DEMO_FIXTURES[args.platform]} through the runner:")
    demo = run_demo(args.platform)
    out = demo.command[-1]
    print(f"  abi-harness run --fixture {demo.fixture} --output {out} -- vmcore-save --quiet {out}\n")
    print(render_report(demo.result))
    if demo.dump is None:
        print(f"  the collector left no dump in {out}")
        return 1
    d = demo.dump
    print(f"  dump verified against the fixture: {d.identical} identical pages, {d.different} different, "
          f"{d.missing} missing, {d.misplaced} misplaced")
    print("  result: " + ("the dump is complete and no violation was recorded" if demo.ok else "FAILED"))
    return 0 if demo.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``conform`` and ``demo`` to the top-level parser."""
    p = sub.add_parser(
        "conform", help="property-based conformance of a collector command",
        description="Run CMD through 'abi-harness run' once per hypothesis example: generated crashed machines "
        "and fault plans. {output} in ARGS is replaced by a fresh output directory per example. Checks the "
        "saved dump page by page, the mock's violations, the releases, the files' modes and the exit status; "
        "a failure is shrunk to a minimal fixture and fault plan. Exit 0 only when every example passed.",
    )
    p.add_argument("--platform", choices=sorted(builtin_spec().platforms), help="only this platform (default: all)")
    p.add_argument("--arch", choices=sorted(builtin_spec().arches),
                   help="only machines of this architecture (default: every one the platform has)")
    p.add_argument("--faults", metavar="KIND,...", type=_fault_kinds,
                   help="only these kinds of fault plan: none, short (short reads), delay (slow reads), kill (a kill "
                   "part-way, then a rerun on the same machine), eio (a read error), enospc (a full output directory); "
                   "default: all")
    p.add_argument("--examples", type=int, default=50, metavar="N", help="number of examples (default: %(default)s)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed, for a reproducible run")
    p.add_argument("--jobs", type=_jobs, metavar="N",
                   help="run N examples at once (default: the CPUs this process may use); the verdicts are the same "
                   "for any N")
    p.add_argument("--shard", type=_shard, metavar="K/N",
                   help="run only the K-th of N slices of the examples (every N-th, from the K-th), e.g. one job of a "
                   "CI matrix each; together the N shards give the whole campaign's verdicts")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (one test case per example)")
    p.add_argument("--keep-failures", metavar="DIR",
                   help="keep the minimal failure in DIR: its fixture, the example and reproduce.sh, which replays "
                   "and judges it")
    p.add_argument("--arm", metavar="CMD",
                   help="judge the arming half too: each machine boots armed, CMD (a shell command) runs on it, the "
                   "machine crashes, the collector runs in the capture kernel, and afterwards the machine must be "
                   "armed again as its platform expects (phyp by itself; fadump by CMD in the same kernel; kdump by "
                   "CMD after a reboot)")
    p.add_argument("--install", action="append", default=[], metavar="PACKAGE",
                   help="with --arm: put this Debian package into every machine first (unpacked privately, no "
                   "maintainer scripts; see 'abi-harness machine install'); repeatable")
    p.add_argument("--replay", metavar="DIR",
                   help="run the failure kept by --keep-failures DIR again and judge it as conform did (exit 1 "
                   "while it fails); reproduce.sh does this")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the collector to check")
    p.set_defaults(func=cmd_conform)

    p = sub.add_parser(
        "demo", help="the main job: the reference collector on a built-in fixture",
        description="Run the reference collector (vmcore-save) on a built-in fixture through the runner and "
        "print the report: regions read, each release, the dump verified against the fixture, violations.",
    )
    p.add_argument("--platform", choices=sorted(builtin_spec().platforms), default="phyp", help="(default: %(default)s)")
    p.set_defaults(func=cmd_demo)

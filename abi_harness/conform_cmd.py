"""`abi-harness conform` and `abi-harness demo`: collectors judged against the mock."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from abi_specs import builtin_spec

from .errors import UsageError

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


def cmd_conform(args: argparse.Namespace) -> int:
    from mockfs.conform.campaign import conform, junit_xml, save_failure

    argv = _command(args)
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        raise UsageError(f"{argv[0]}: command not found")
    if not any("{output}" in a for a in argv):
        print("abi-harness conform: note: no {output} in the command; the dump must land in the directory "
              "given by the collector itself", file=sys.stderr)
    total = args.examples

    def show(outcome: Outcome) -> None:
        mark = "pass" if outcome.passed else "FAIL"
        print(f"[{len(shown) + 1:>3}] {mark}  {outcome.example.describe()}  ({outcome.seconds:.1f} s)", file=sys.stderr)
        for problem in outcome.problems[:3]:
            print(f"        {problem}", file=sys.stderr)
        shown.append(outcome)

    shown: list[Outcome] = []
    arming = _arming(args)
    how = f", each machine armed by {args.arm!r}" if arming else ""
    print(f"abi-harness conform: up to {total} examples of {' '.join(argv)}{how}", file=sys.stderr)
    arches = builtin_spec().platforms[args.platform].arches if args.platform else ()
    if args.arch and arches and args.arch not in arches:
        raise UsageError(f"--arch {args.arch}: {args.platform} machines are {', '.join(arches)}")
    report = conform(argv, args.platform, total, args.seed, on_outcome=show, arming=arming, arch=args.arch)
    if args.junit:
        Path(args.junit).write_text(junit_xml(report))
    if report.minimal is not None:
        m = report.minimal
        print(f"\nminimal failure: {m.example.describe()}", file=sys.stderr)
        for problem in m.problems:
            print(f"  {problem}", file=sys.stderr)
        if args.keep_failures:
            saved = save_failure(report, Path(args.keep_failures))
            print(f"  saved {saved[0]}; reproduce with: sh {saved[1]}", file=sys.stderr)
    print(f"{report.passed} passed, {report.failed} failed")
    return 0 if report.failed == 0 else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from mockfs.session.demo import DEMO_FIXTURES, run_demo
    from mockfs.session.report import render_report

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
    p.add_argument("--examples", type=int, default=50, metavar="N", help="number of examples (default: %(default)s)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed, for a reproducible run")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (one test case per example)")
    p.add_argument("--keep-failures", metavar="DIR",
                   help="save the minimal failing fixture and a one-line reproducer in DIR")
    p.add_argument("--arm", metavar="CMD",
                   help="judge the arming half too: each machine boots armed, CMD (a shell command) runs on it, the "
                   "machine crashes, the collector runs in the capture kernel, and afterwards the machine must be "
                   "armed again as its platform expects (phyp by itself; fadump by CMD in the same kernel; kdump by "
                   "CMD after a reboot)")
    p.add_argument("--install", action="append", default=[], metavar="PACKAGE",
                   help="with --arm: put this Debian package into every machine first (unpacked privately, no "
                   "maintainer scripts; see 'abi-harness machine install'); repeatable")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the collector to check")
    p.set_defaults(func=cmd_conform)

    p = sub.add_parser(
        "demo", help="the main job: the reference collector on a built-in fixture",
        description="Run the reference collector (vmcore-save) on a built-in fixture through the runner and "
        "print the report: regions read, each release, the dump verified against the fixture, violations.",
    )
    p.add_argument("--platform", choices=sorted(builtin_spec().platforms), default="phyp", help="(default: %(default)s)")
    p.set_defaults(func=cmd_demo)

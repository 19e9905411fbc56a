"""Time the conformance suite on the reference collector, in parallel and one example at a time.

Run (as root): .venv/bin/python bench/bench_conform.py [--examples 100] [--seed 1] [--jobs N]

Runs `abi-harness conform --examples N --seed S -- vmcore-save --quiet {output}`
twice in the same session: with the default number of jobs (the CPUs; or
--jobs N) and with --jobs 1. Prints both wall times, their ratio, the
examples' own times (where the time goes: the slowest kinds of example), and
whether the goal is met: 100 examples in at most 60 s on 2 cores. Both runs
must give the same verdicts (same seed); the benchmark says so when they do
not. Nothing is asserted: the machine may be shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from abi_specs.units import plural

GOAL_EXAMPLES, GOAL_SECONDS = 100, 60.0
_LINE = re.compile(r"^\[\s*(\d+)/\d+\] (pass|FAIL)  (\S+) .*?, ([^,]*)  \((\d+\.\d) s\)$")


def campaign(examples: int, seed: int, jobs: int | None) -> tuple[float, subprocess.CompletedProcess[str]]:
    """One conform run: its wall time and process."""
    tool = Path(sys.executable).parent / "abi-harness"
    collector = shutil.which("vmcore-save") or str(Path(sys.executable).parent / "vmcore-save")
    argv = [str(tool), "conform", "--examples", str(examples), "--seed", str(seed)]
    if jobs is not None:
        argv += ["--jobs", str(jobs)]
    t = time.perf_counter()
    proc = subprocess.run([*argv, "--", collector, "--quiet", "{output}"], capture_output=True, text=True)
    return time.perf_counter() - t, proc


def verdicts(proc: subprocess.CompletedProcess[str]) -> list[tuple[int, str, str]]:
    """(number, pass/FAIL, platform and faults) per example, from the console."""
    return [(int(m[1]), m[2], f"{m[3]} {m[4]}") for line in proc.stderr.splitlines() if (m := _LINE.match(line))]


def where_time_goes(proc: subprocess.CompletedProcess[str]) -> str:
    """The examples' own seconds by platform and kind of fault plan, most first."""
    by_kind: dict[str, list[float]] = defaultdict(list)
    for line in proc.stderr.splitlines():
        if m := _LINE.match(line):
            platform = m[3].split("/")[0]
            fault = m[4].split(":")[0] if m[4] != "no faults" else "none"
            by_kind[f"{platform} {fault}"].append(float(m[5]))
    rows = sorted(by_kind.items(), key=lambda kv: -sum(kv[1]))
    return "\n".join(f"    {kind:<17} {plural(len(s), 'example'):<12} {sum(s):6.1f} s  (mean {sum(s) / len(s):.2f} s)"
                      for kind, s in rows)


def summary(proc: subprocess.CompletedProcess[str]) -> str:
    out = proc.stdout.strip().splitlines()
    return f"{out[-1] if out else proc.stderr.strip()[-200:]}; exit {proc.returncode}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=GOAL_EXAMPLES)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=None, help="the parallel run's jobs (default: conform's own default)")
    args = ap.parse_args()
    cpus = len(os.sched_getaffinity(0))
    parallel_s, parallel = campaign(args.examples, args.seed, args.jobs)
    serial_s, serial = campaign(args.examples, args.seed, 1)
    jobs = args.jobs or cpus
    print(f"conform, {args.examples} examples on vmcore-save, seed {args.seed}, {cpus} CPUs:")
    label = f"--jobs {jobs}" + (" (default)" if args.jobs is None else "")
    for name, seconds, proc in ((label, parallel_s, parallel), ("--jobs 1", serial_s, serial)):
        print(f"  {name:<{len(label)}}: {seconds:6.1f} s  ({summary(proc)})")
    print(f"  speed-up {serial_s / parallel_s:.2f}x with {jobs} jobs")
    if verdicts(parallel) != verdicts(serial):
        print("  THE VERDICTS DIFFER between the two runs")
    else:
        print(f"  same verdicts for all {len(verdicts(serial))} examples")
    print("  the examples' own time (--jobs 1), by platform and fault plan:")
    print(where_time_goes(serial))
    per_100 = parallel_s * GOAL_EXAMPLES / args.examples
    met = "met" if per_100 <= GOAL_SECONDS else "NOT met"
    print(f"  goal: {GOAL_EXAMPLES} examples in <= {GOAL_SECONDS:.0f} s on 2 cores: {met} ({per_100:.1f} s per "
          f"{GOAL_EXAMPLES} examples with {jobs} jobs)")


if __name__ == "__main__":
    main()

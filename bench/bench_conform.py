"""Time the conformance suite on the reference collector.

Run (as root): .venv/bin/python bench/bench_conform.py [--examples 50] [--seed 1]

The goal: 50 examples of `abi-harness conform -- vmcore-save --quiet {output}`
in under a minute on a 2-core machine. Prints the wall time and the verdict.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    tool = Path(sys.executable).parent / "abi-harness"
    collector = shutil.which("vmcore-save") or str(Path(sys.executable).parent / "vmcore-save")
    t = time.perf_counter()
    proc = subprocess.run([str(tool), "conform", "--examples", str(args.examples), "--seed", str(args.seed), "--",
                           collector, "--quiet", "{output}"], capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    verdict = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-200:]
    print(f"conform, {args.examples} examples on vmcore-save: {elapsed:.1f} s ({verdict}; exit {proc.returncode})")


if __name__ == "__main__":
    main()

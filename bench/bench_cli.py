"""Wall time of the command line: start-up of specs and check, and a whole `run -- true`.

Run (as root, for run): .venv/bin/python bench/bench_cli.py [--runs 10]

Each command runs --runs times after one warm-up; the median is printed next
to the median of `python -c pass` (the interpreter alone) taken in the same
loop, so that a loaded machine shows as a slow baseline. Byte code is written
to a private cache (PYTHONPYCACHEPREFIX), as an installed package has it:
PYTHONDONTWRITEBYTECODE would make every start compile every module.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS = {
    "python -c pass": ([sys.executable, "-c", "pass"], None, (0,)),
    "abi-harness specs": ([str(BIN / "abi-harness"), "specs"], None, (0,)),
    "abi-harness check": ([str(BIN / "abi-harness"), "check", "--spec", "kexec_crash_size", "-"], b"0\n", (0,)),
    # true collects nothing: the run ends with 3, "violations recorded".
    "abi-harness run -- true": ([str(BIN / "abi-harness"), "run", "--", "true"], None, (0, 3)),
}


def once(argv: list[str], stdin: bytes | None, ok: tuple[int, ...], env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, capture_output=True, env=env)
    took = time.perf_counter() - t
    if proc.returncode not in ok:
        sys.exit(f"{' '.join(argv)}: exit status {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="abi-bench-pyc-") as pyc:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pyc
        times: dict[str, list[float]] = {name: [] for name in COMMANDS}
        for argv, stdin, ok in COMMANDS.values():
            once(argv, stdin, ok, env)  # warm-up: byte code and the page cache
        for _ in range(args.runs):  # interleaved, so that load hits every command alike
            for name, (argv, stdin, ok) in COMMANDS.items():
                times[name].append(once(argv, stdin, ok, env))
    for name, values in times.items():
        print(f"{name:<26} median {statistics.median(values) * 1e3:6.0f} ms   best {min(values) * 1e3:6.0f} ms"
              f"   (of {args.runs})")


if __name__ == "__main__":
    main()

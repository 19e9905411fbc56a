"""vmcore-save against ``dd bs=1M`` through the same FUSE mock, output on the same filesystem.

Run (as root): .venv/bin/python bench/bench_collector.py [--fixture kdump-x86_64] [--runs 3] [--out-dir /dev/shm]

Each run mounts the fixture afresh (vmcore-save gives phyp memory back, and a
mock whose memory was released would serve other bytes), then times

* ``dd if=/proc/vmcore of=OUT/dd.vmcore bs=1M`` (no fsync: dd's best case), and
* ``python -m collectors.vmcore_save --quiet --root MOCK OUT`` (fsyncs every
  64 MiB, records its state, releases memory on phyp), interpreter start included.

Both write to ``--out-dir`` (tmpfs by default, so the disk does not dominate).
Prints the median and the best of the runs, and the ratios; nothing is asserted (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mockfs.session.testbed import MockMount


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def one_run(fixture: str, out_root: Path) -> tuple[float, float, int]:
    """(dd seconds, vmcore-save seconds, bytes) on fresh mounts of *fixture*."""
    with tempfile.TemporaryDirectory(dir=out_root, prefix="bench-collector-") as tmp:
        out = Path(tmp)
        with MockMount(fixture) as mock:
            size = mock.image.size
            dd = timed(["dd", f"if={mock.path('/proc/vmcore')}", f"of={out / 'dd.vmcore'}", "bs=1M"])
        (out / "dd.vmcore").unlink()
        with MockMount(fixture) as mock:
            save = timed([sys.executable, "-m", "collectors.vmcore_save", "--quiet", "--root", str(mock.root),
                          str(out / "saved")])
        if mock.violations:
            raise SystemExit(f"vmcore-save broke the ABI contract: {mock.violations[:3]}")
        shutil.rmtree(out / "saved")
    return dd, save, size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fixture", action="append", help="fixture name (repeatable; default: all three built-ins)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out-dir", type=Path, default=Path("/dev/shm"))
    args = p.parse_args()
    for fixture in args.fixture or ["kdump-x86_64", "fadump-power9", "phyp-power6"]:
        dds, saves, size = [], [], 0
        for _ in range(args.runs):
            dd, save, size = one_run(fixture, args.out_dir)
            dds.append(dd)
            saves.append(save)
        for how, pick in (("median", statistics.median), ("best", min)):
            dd, save = pick(dds), pick(saves)
            print(f"{fixture:14} {size / 2**30:5.2f} GiB  {how:6}  dd bs=1M {size / dd / 1e6:5.0f} MB/s  "
                  f"vmcore-save {size / save / 1e6:5.0f} MB/s  ratio {dd / save:4.2f}  ({args.runs} runs)")


if __name__ == "__main__":
    main()

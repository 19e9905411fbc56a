"""Measure the FUSE mock against a baseline in the same run.

Run (as root): .venv/bin/python bench/bench_mock.py [--fixture kdump-x86_64] [--runs 3]

* streaming /proc/vmcore through the mock vs the same bytes on tmpfs, with
  ``dd bs=1M`` and with a page-aligned reader (readinto a page-aligned buffer);
* mount ready time with the library already imported (median);
* an attribute write-then-read round trip (open, write, close, open, read, close).

Prints medians and ratios; nothing is asserted (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import mmap
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from mockfs.dumps import export_file
from mockfs.fuse.daemon import mount, umount
from mockfs.live import LiveMachine
from mockfs.machine import VmcoreImage, resolve_fixture

MiB = 1 << 20


def dd_rate(path: Path) -> float:
    """MB/s of ``dd bs=1M`` reading *path* to /dev/null."""
    size = os.stat(path).st_size
    t = time.perf_counter()
    subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M"], check=True, capture_output=True)
    return size / (time.perf_counter() - t) / 1e6


def aligned_rate(path: Path) -> float:
    """MB/s of a reader that reads 1 MiB at a time into a page-aligned buffer."""
    buf = mmap.mmap(-1, MiB)
    view = memoryview(buf)
    total = 0
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            total += n
    elapsed = time.perf_counter() - t
    view.release()
    buf.close()
    return total / elapsed / 1e6


def median_of(runs: int, fn, *args) -> float:
    return statistics.median(fn(*args) for _ in range(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixture", action="append", help="fixture(s) to stream (default: kdump-x86_64 and phyp-power6)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mounts", type=int, default=20)
    ap.add_argument("--round-trips", type=int, default=300)
    args = ap.parse_args()
    for name in args.fixture or ["kdump-x86_64", "phyp-power6"]:
        measure(name, args)


def measure(name: str, args: argparse.Namespace) -> None:
    fixture = resolve_fixture(name)
    image = VmcoreImage(fixture)
    with tempfile.TemporaryDirectory(prefix="abi-bench-", dir="/dev/shm") as shm, \
            tempfile.TemporaryDirectory(prefix="abi-bench-") as work:
        baseline = Path(shm) / "vmcore"
        export_file(image, baseline)
        root = Path(work) / "root"
        root.mkdir()
        mount(LiveMachine(image), root)
        try:
            served = root / "proc" / "vmcore"
            print(f"fixture {name}: /proc/vmcore of {image.size / MiB:.0f} MiB, median of {args.runs} runs")
            for label, fn in (("dd bs=1M", dd_rate), ("page-aligned reader", aligned_rate)):
                tmpfs = median_of(args.runs, fn, baseline)
                mock = median_of(args.runs, fn, served)
                print(f"  {label:<20} tmpfs {tmpfs:7.0f} MB/s   mock {mock:7.0f} MB/s   ratio {mock / tmpfs:.2f}")

            # kdump's kexec_crash_size takes "0"; other platforms have no attribute that does.
            attr = root / "sys" / "kernel" / "kexec_crash_size"
            if not attr.exists():
                return
            times = []
            for _ in range(args.round_trips):
                t = time.perf_counter()
                fd = os.open(attr, os.O_WRONLY)
                os.write(fd, b"0\n")
                os.close(fd)
                fd = os.open(attr, os.O_RDONLY)
                os.read(fd, 4096)
                os.close(fd)
                times.append(time.perf_counter() - t)
            shm_attr = Path(shm) / "attr"
            shm_attr.write_text("0\n")
            base = []
            for _ in range(args.round_trips):
                t = time.perf_counter()
                shm_attr.write_bytes(b"0\n")
                shm_attr.read_bytes()
                base.append(time.perf_counter() - t)
            print(f"  attribute write+read round trip: mock {statistics.median(times) * 1e6:.0f} us, "
                  f"tmpfs {statistics.median(base) * 1e6:.0f} us (median of {args.round_trips})")
        finally:
            umount(root)

        ready = []
        for _ in range(args.mounts):
            machine = LiveMachine(image)
            t = time.perf_counter()
            mount(machine, root)
            ready.append(time.perf_counter() - t)
            umount(root)
        print(f"  mount ready: {statistics.median(ready) * 1e3:.1f} ms median, "
              f"{min(ready) * 1e3:.1f} ms best (of {args.mounts}, library already imported)")


if __name__ == "__main__":
    main()

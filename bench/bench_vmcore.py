"""Measure VmcoreImage on a 1 TiB fixture: load time, RSS, and 1 MiB read throughput.

Run: PYTHONPATH=. python bench/bench_vmcore.py [--reads N] [--arch x86_64|ppc64|ppc64le]
Prints numbers only; nothing is asserted (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time

from mockfs.machine import Cpu, Fixture, LogRecord, VmcoreImage

MiB, TiB = 1 << 20, 1 << 40


def rss_mib() -> float:
    """Current resident set size in MiB (from /proc/self/status)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reads", type=int, default=400)
    ap.add_argument("--arch", default="x86_64", choices=["x86_64", "ppc64", "ppc64le"])
    args = ap.parse_args()

    rss0 = rss_mib()
    t0 = time.perf_counter()
    fx = Fixture(
        name="one-tib",
        platform="kdump",
        arch=args.arch,
        ram=((0, TiB),),
        cpus=tuple(Cpu(pid=i + 1) for i in range(256)),
        log=tuple(LogRecord(f"message {i}", i * 1000) for i in range(2000)),
        zero_pages=tuple(range(TiB // 2, TiB // 2 + 1000 * 65536, 65536)),
        free_pages=tuple(range(TiB // 4, TiB // 4 + 1000 * 65536, 65536)),
    )
    img = VmcoreImage(fx)
    load = time.perf_counter() - t0
    print(f"arch {args.arch}, page size {fx.page_size}, core size {img.size / TiB:.3f} TiB")
    print(f"load: {load * 1000:.1f} ms, RSS {rss_mib():.1f} MiB (+{rss_mib() - rss0:.1f} MiB for the fixture)")

    rnd = random.Random(0)
    for label, align in (("page-aligned", fx.page_size), ("unaligned", 1)):
        times = []
        for _ in range(args.reads):
            off = rnd.randrange(img.header_size, img.size - MiB) // align * align
            t = time.perf_counter()
            data = img.read(off, MiB)
            times.append(time.perf_counter() - t)
            assert len(data) == MiB
        med = statistics.median(times)
        print(
            f"read 1 MiB {label:12s}: median {med * 1e6:7.1f} us = {MiB / med / 1e9:5.2f} GB/s, "
            f"p90 {sorted(times)[int(len(times) * 0.9)] * 1e6:7.1f} us"
        )
    # mem_map windows are generated struct pages rather than pattern pages.
    times = []
    for _ in range(args.reads // 4):
        paddr = rnd.randrange(img.kernel.memmap_start, img.kernel.end - MiB)
        t = time.perf_counter()
        img.phys_read(paddr, MiB)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(f"read 1 MiB of mem_map     : median {med * 1e6:7.1f} us = {MiB / med / 1e9:5.2f} GB/s")
    print(f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()

"""What one 1 MiB read of /proc/vmcore costs, layer by layer, against tmpfs in the same run.

Run (as root): .venv/bin/python bench/bench_layers.py [--fixture kdump-x86_64] [--runs 3]

Streams with ``dd bs=1M`` (2 GiB) through file systems that add one layer at a time:

1. tmpfs: the kernel's page-cache copy, the baseline;
2. libfuse3 with a read callback in C that returns at once (no copy, no Python):
   the kernel's FUSE round trip plus libfuse's high-level loop (needs cc; skipped without);
3. the same with mfusepy's Python read callback copying a constant 1 MiB
   (ctypes, the GIL, mfusepy's wrapper and one memmove);
4. the mock's /proc/vmcore.

and times in-process, per 1 MiB, the generator (VmcoreImage.read) and the live
machine's bookkeeping around it (LiveMachine.read_vmcore). Prints microseconds
per MiB and ratios to tmpfs; nothing is asserted.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import shutil
import stat
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from mockfs.fuse.binding import Fuse, mfusepy
from mockfs.fuse.daemon import mount, umount
from mockfs.live import LiveMachine
from mockfs.machine import VmcoreImage, resolve_fixture
from mockfs.sandbox import syscalls

MiB, SIZE = 1 << 20, 2 << 30
CONST = b"\x5a" * MiB
C_SOURCE = "int noop_read(const char *p, char *b, unsigned long s, long o, void *f) { return (int)s; }\n"


class ConstOps(mfusepy.Operations):
    """One 2 GiB file, ``/f``, whose every read is the constant."""

    use_ns = True

    def __init__(self, ready_w: int) -> None:
        self._ready_w = ready_w

    def init(self, path: str) -> None:
        os.write(self._ready_w, b"1")

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        if path == "/f":
            return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": SIZE}
        raise mfusepy.FuseOSError(errno.ENOENT)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return CONST if size == MiB else CONST[:size]


def serve_const(mountpoint: Path, c_read: str | None) -> int:
    """Fork a daemon serving ConstOps (its read replaced by *c_read*'s noop_read); its pid once mounted."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            syscalls.keep_heap_memory()
            if c_read:
                lib = ctypes.CDLL(c_read)
                main = mfusepy.fuse_main_real

                def patched(argc, argv, ops, size, data):  # type: ignore[no-untyped-def]
                    ops.contents.read = ctypes.cast(lib.noop_read, type(ops.contents.read))
                    return main(argc, argv, ops, size, data)

                mfusepy.fuse_main_real = patched
            # The mock's loop: single-threaded.
            Fuse(ConstOps(ready_w), str(mountpoint), foreground=True, nothreads=True, direct_io=True)
        finally:
            os._exit(0)
    os.close(ready_w)
    if os.read(ready_r, 1) != b"1":
        raise SystemExit("the constant file system did not mount")
    os.close(ready_r)
    return pid


def dd_us_per_mib(path: Path, runs: int) -> float:
    """Median microseconds per MiB of ``dd bs=1M`` reading 2 GiB of *path*."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M", f"count={SIZE // MiB}"], check=True,
                       capture_output=True)
        times.append((time.perf_counter() - t) / (SIZE // MiB) * 1e6)
    return statistics.median(times)


def in_process(image: VmcoreImage, reads: int = 400) -> tuple[float, float]:
    """Median microseconds per 1 MiB read: VmcoreImage.read, then LiveMachine.read_vmcore.

    Measured as the daemon runs them: with glibc keeping 1 MiB buffers on the heap (else each read's
    pages fault in afresh, ten times the cost).
    """
    syscalls.keep_heap_memory()
    machine = LiveMachine(image)
    out = []
    for fn in (image.read, machine.read_vmcore):
        times = []
        for i in range(reads):
            offset = image.layout.loads_start + (i * MiB) % (image.size - image.layout.loads_start - MiB)
            t = time.perf_counter()
            fn(offset, MiB)
            times.append(time.perf_counter() - t)
        out.append(statistics.median(times) * 1e6)
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixture", default="kdump-x86_64")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    image = VmcoreImage(resolve_fixture(args.fixture))
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="abi-bench-", dir="/dev/shm") as shm, \
            tempfile.TemporaryDirectory(prefix="abi-bench-") as work:
        base = Path(shm) / "f"
        with open(base, "wb") as f:
            for _ in range(SIZE // MiB):
                f.write(CONST)
        rows.append(("tmpfs", dd_us_per_mib(base, args.runs)))
        base.unlink()
        c_read = None
        if shutil.which("cc"):
            (Path(work) / "noop.c").write_text(C_SOURCE)
            c_read = str(Path(work) / "noop.so")
            subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", c_read, str(Path(work) / "noop.c")], check=True)
        mnt = Path(work) / "mnt"
        mnt.mkdir()
        for label, lib in (("libfuse3, C read callback, no copy", c_read), ("mfusepy read callback, memmove", None)):
            if label.startswith("libfuse3") and lib is None:
                continue
            pid = serve_const(mnt, lib)
            try:
                rows.append((label, dd_us_per_mib(mnt / "f", args.runs)))
            finally:
                subprocess.run(["fusermount3", "-u", str(mnt)], check=True)
                os.waitpid(pid, 0)
        mount(LiveMachine(image), mnt)
        try:
            rows.append((f"the mock's /proc/vmcore ({args.fixture})", dd_us_per_mib(mnt / "proc" / "vmcore", args.runs)))
        finally:
            umount(mnt)
    gen, live = in_process(image)
    tmpfs = rows[0][1]
    print(f"dd bs=1M, median of {args.runs}, microseconds per MiB (ratio = tmpfs time / this time)")
    for label, us in rows:
        print(f"  {label:<45} {us:7.0f} us   {tmpfs / us:5.2f}x tmpfs")
    print(f"in process, per MiB: VmcoreImage.read {gen:.0f} us, LiveMachine.read_vmcore {live:.0f} us")


if __name__ == "__main__":
    main()

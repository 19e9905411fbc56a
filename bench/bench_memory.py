"""Peak memory of the mock daemon while /proc/vmcore of a large machine streams through it.

Run (as root): .venv/bin/python bench/bench_memory.py [--memory 64G] [--readers 8]

Makes a fixture of the given size (``abi-harness fixture new``), mounts it, and
reads the whole /proc/vmcore with ``dd bs=1M``: once with one reader, then, on a
fresh daemon, split into --readers slices read at the same time. Prints the
daemon's VmHWM (peak resident set, /proc/PID/status) after each, its VmRSS
before the first read, and the time taken. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mockfs.fuse.daemon import mount, umount
from mockfs.live import LiveMachine
from mockfs.machine import VmcoreImage, resolve_fixture

MiB = 1 << 20


def status_kib(pid: int, key: str) -> int:
    """A ``VmXXX:`` line of /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def stream(path: Path, size: int, readers: int) -> float:
    """Read *path* whole with *readers* concurrent ``dd bs=1M`` over equal slices; seconds taken."""
    blocks = -(-size // MiB)
    per = -(-blocks // readers)
    t = time.perf_counter()
    procs = [subprocess.Popen(["dd", f"if={path}", "of=/dev/null", "bs=1M", f"skip={i * per}", f"count={per}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(readers)]
    if any(p.wait() != 0 for p in procs):
        sys.exit(f"{path}: a dd reader failed")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memory", default="64G", help="RAM of the generated machine (default 64G)")
    ap.add_argument("--platform", default="kdump", help="platform of the generated machine (default kdump: 4 KiB pages)")
    ap.add_argument("--readers", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="abi-bench-mem-") as work:
        manifest = Path(work) / "big.toml"
        subprocess.run([sys.executable, "-m", "abi_harness.cli", "fixture", "new", "--platform", args.platform,
                        "--memory", args.memory, "-o", str(manifest)], check=True)
        image = VmcoreImage(resolve_fixture(str(manifest)))
        root = Path(work) / "root"
        root.mkdir()
        print(f"{args.platform} machine of {args.memory}: /proc/vmcore of {image.size / MiB / 1024:.1f} GiB")
        for readers in (1, args.readers):
            handle = mount(LiveMachine(image), root)
            try:
                before = status_kib(handle.pid, "VmRSS")
                took = stream(root / "proc" / "vmcore", image.size, readers)
                peak = status_kib(handle.pid, "VmHWM")
            finally:
                umount(root)
            print(f"  {readers} reader(s): daemon VmRSS {before / 1024:.1f} MiB before, VmHWM {peak / 1024:.1f} MiB "
                  f"after the whole stream ({image.size / took / 1e9:.2f} GB/s, {took:.0f} s)")


if __name__ == "__main__":
    main()

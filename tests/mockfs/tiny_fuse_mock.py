"""A tiny FUSE mock with a handful of dump ABI files: ``python tiny_fuse_mock.py MOUNTPOINT WRITELOG``.

Used by test_namespace.py to check the namespace runner against a mock served
by an unrelated process; it appends ``path=data`` to WRITELOG for each write
and ``read PATH by COMM`` for each read of /proc/vmcore.
"""

from __future__ import annotations

import errno
import os
import stat
import sys

VMCORE = bytes(range(256)) * 64 + b"tail"
RELEASE_REGION = "0x1000-0x2000\n"


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _serve_fuse_mock(mountpoint: str, write_log: str) -> None:
    import mfusepy

    files: dict[str, bytes] = {
        "/sys/kernel/release_region": RELEASE_REGION.encode(),
        "/sys/kernel/fadump/release_mem": b"0\n",
        "/sys/kernel/fadump/enabled": b"1\n",
        "/proc/vmcore": VMCORE,
        "/proc/device-tree/rtas/ibm,configure-kernel-dump": b"\x00\x00\x00\x01",
    }
    links = {"/sys/kernel/fadump_enabled": "fadump/enabled"}
    dirs = {"/"}
    for path in [*files, *links]:
        parent = os.path.dirname(path)
        while parent not in dirs:
            dirs.add(parent)
            parent = os.path.dirname(parent)

    class Mock:
        use_ns = True

        def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
            if path in dirs:
                return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
            if path in links:
                return {"st_mode": stat.S_IFLNK | 0o777, "st_nlink": 1, "st_size": len(links[path])}
            if path == "/proc/vmcore":
                return {"st_mode": stat.S_IFREG | 0o400, "st_nlink": 1, "st_size": len(VMCORE), "st_uid": 0, "st_gid": 0}
            if path in files:
                # sysfs-like: size 4096, and direct_io, so that readers read it all
                return {"st_mode": stat.S_IFREG | 0o644, "st_nlink": 1, "st_size": 4096}
            raise mfusepy.FuseOSError(errno.ENOENT)

        def readdir(self, path: str, fh: int) -> list[str]:
            prefix = path.rstrip("/") + "/"
            children = {p[len(prefix) :].split("/")[0] for p in [*files, *links, *dirs] if p.startswith(prefix) and p != prefix}
            return [".", "..", *sorted(children)]

        def readlink(self, path: str) -> str:
            return links[path]

        def open(self, path: str, flags: int) -> int:
            if path not in files:
                raise mfusepy.FuseOSError(errno.ENOENT)
            return 0

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            if path == "/proc/vmcore":
                pid = mfusepy.fuse_get_context()[2]
                with open(write_log, "a") as log:
                    log.write(f"read {path} by {_comm(pid)}\n")
            return files[path][offset : offset + size]

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            files[path] = data
            with open(write_log, "a") as log:
                log.write(f"{path}={data.decode(errors='replace')}")
            return len(data)

        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            return 0  # sysfs-like: `echo > file` truncates first

    mfusepy.FUSE(Mock(), mountpoint, foreground=True, direct_io=True, max_threads=4, max_idle_threads=4)


if __name__ == "__main__":
    _serve_fuse_mock(sys.argv[1], sys.argv[2])

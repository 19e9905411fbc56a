"""The raw virtio disk the capture kernel copies /proc/vmcore to, and the sparse copy out of it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from .profiles import DISK_MAGIC, SPARSE_CHUNK, VMCORE_MAGIC, OracleError

# The disk
# --------------------------------------------------------------------------


def create_disk(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, DISK_MAGIC.encode().ljust(512, b"\0"))
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def _read_disk_header(disk: BinaryIO) -> dict[str, str]:
    text = disk.read(4096).split(b"\0", 1)[0].decode("ascii", "replace")
    lines = text.splitlines()
    if not lines or lines[0] != VMCORE_MAGIC:
        raise OracleError("the disk holds no vmcore header (capture kernel never wrote it)")
    return dict(line.split("=", 1) for line in lines[1:] if "=" in line)


def extract_vmcore(disk_path: Path, dest: Path) -> int:
    """Copy the vmcore out of the raw disk into ``dest`` (0600, sparse).

    All-zero 64 KiB chunks are skipped with a seek, so the result takes only
    the space of the non-zero data.  Returns the vmcore length.
    """
    with disk_path.open("rb") as disk:
        header = _read_disk_header(disk)
        if header.get("dd_rc") != "0":
            raise OracleError(f"guest dd of /proc/vmcore failed (status {header.get('dd_rc')})")
        offset, length = int(header["offset"]), int(header["length"])
        disk.seek(offset)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            _sparse_copy(disk, out, length)
    dest.chmod(0o600)
    with dest.open("rb") as fh:
        if fh.read(4) != b"\x7fELF":
            raise OracleError(f"{dest} does not start with an ELF header")
    return length


def _sparse_copy(src: BinaryIO, dst: BinaryIO, length: int) -> None:
    zero = bytes(SPARSE_CHUNK)
    left = length
    while left > 0:
        chunk = src.read(min(SPARSE_CHUNK, left))
        if not chunk:
            raise OracleError(f"disk image ends {left} bytes before the vmcore does")
        if chunk == zero[: len(chunk)]:
            dst.seek(len(chunk), os.SEEK_CUR)
        else:
            dst.write(chunk)
        left -= len(chunk)
    dst.truncate(length)

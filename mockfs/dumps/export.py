"""Write the bytes of any fixture to a file: atomically, and readable by the owner only."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from .images import Image

CHUNK = 1 << 20


def export_file(
    image: Image,
    path: str | os.PathLike[str],
    *,
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
    mode: int = 0o600,
    sparse: bool = False,
) -> int:
    """Write *image* to *path* atomically: via ``PATH.partial``, mode 0600, then rename.

    Streams *chunk* bytes at a time and calls *progress* with each count written.
    With *sparse*, an all-zero chunk is skipped over instead of written, so
    that a core's free memory takes no disk.
    On any failure the partial file is removed and the OSError propagates, so
    *path* is either the complete image or untouched. Returns the size.
    """
    final = Path(path)
    partial = final.with_name(final.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # umask cannot widen it, but an older partial file may have another mode
        zero = bytes(chunk)
        for off in range(0, image.size, chunk):
            raw = image.read(off, chunk)
            if sparse and raw == zero[:len(raw)]:
                os.lseek(fd, len(raw), os.SEEK_CUR)
                if progress:
                    progress(len(raw))
                continue
            data = memoryview(raw)
            while data:
                n = os.write(fd, data)
                data = data[n:]
                if progress:
                    progress(n)
        os.ftruncate(fd, image.size)  # a sparse tail: the size still counts
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(partial, final)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return image.size

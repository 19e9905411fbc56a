"""A seekable, read-only file object over any "read at offset" function.

pyelftools wants a file; the vmcore image, an imported core, the dump readers
and the collector's view of /proc/vmcore all offer ``read(offset, length)``-style
access instead.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any


class ReadAtStream(io.RawIOBase):
    """A file view of *size* bytes whose content ``read_at(offset, length)`` gives."""

    def __init__(self, read_at: Callable[[int, int], bytes], size: int) -> None:
        super().__init__()
        self._read_at = read_at
        self.size = size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buf: Any) -> int:
        data = self._read_at(self.pos, len(buf))
        buf[: len(data)] = data
        self.pos += len(data)
        return len(data)

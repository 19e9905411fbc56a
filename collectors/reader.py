"""Reading /proc/vmcore without losing a byte: retries, and errors narrowed to the page."""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path

from .errors import Failure

CHUNK = 1 << 20  # one read: a multiple of every page size a kernel uses
READ_TRIES = 4  # attempts of a failing page read before giving up on it
RETRY_DELAY = 0.05  # seconds; grows with each attempt


class ReadFailure(Failure):
    """/proc/vmcore could not be read at ``offset``."""

    def __init__(self, offset: int, reason: str) -> None:
        self.offset = offset
        super().__init__(reason)



class VmcoreReader:
    """Reads /proc/vmcore into one preallocated, page-aligned buffer.

    Short reads are continued; an error on a multi-page read is narrowed down to
    the page, and a page is tried READ_TRIES times before its offset is reported.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self.size = os.fstat(self.file.fileno()).st_size
        self._buf = mmap.mmap(-1, CHUNK)  # anonymous mmap: page aligned, like O_DIRECT wants
        self.view = memoryview(self._buf)
        self.page_size = 4096
        self._at = 0

    def close(self) -> None:
        self.view.release()
        self._buf.close()
        self.file.close()

    def pread(self, offset: int, length: int) -> bytes:
        """Up to *length* bytes at *offset* (fewer only at the end): for the core's head."""
        out = bytearray()
        tries = 0
        while len(out) < length:
            try:
                data = os.pread(self.file.fileno(), length - len(out), offset + len(out))
            except OSError as exc:
                tries += 1
                if tries >= READ_TRIES:
                    raise ReadFailure(offset + len(out), f"{self.path}: read error at offset {offset + len(out):#x}: "
                                      f"{exc.strerror} (tried {tries} times)") from None
                time.sleep(RETRY_DELAY * tries)
                continue
            if not data:
                break
            out += data
            tries = 0
        return bytes(out)

    def fill(self, pos: int, n: int) -> tuple[int, ReadFailure | None]:
        """Read file bytes [pos, pos+n) into ``view[:n]``: (bytes read, why it stopped early)."""
        view, ps = self.view, self.page_size
        got, tries, careful = 0, 0, False
        if self._at != pos:
            self.file.seek(pos)
            self._at = pos
        while got < n:
            want = n - got
            if careful:  # after an error: one page at a time, to save all good pages and name the bad one
                want = min(want, ps - (pos + got) % ps)
            try:
                count = self.file.readinto(view[got:got + want])
            except OSError as exc:
                self.file.seek(pos + got)
                self._at = pos + got
                if not careful and want > ps - (pos + got) % ps:
                    careful = True
                    continue
                tries += 1
                if tries >= READ_TRIES:
                    at = pos + got
                    return got, ReadFailure(at, f"{self.path}: read error at offset {at:#x}: {exc.strerror} "
                                            f"(tried {tries} times)")
                time.sleep(RETRY_DELAY * tries)
                continue
            if not count:
                at = pos + got
                return got, ReadFailure(at, f"{self.path}: ends at offset {at:#x}, before its size {self.size:#x}")
            got += count
            self._at += count
            tries = 0
        return got, None

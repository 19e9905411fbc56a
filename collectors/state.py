"""The collector's durable record of progress: ``OUTPUT_DIR/vmcore-save.state``.

The state says how many bytes of the output file are known to be on disk
(``saved``: a prefix of /proc/vmcore, fsynced before it is recorded) and what
memory was given back (``released``). A rerun after a crash trusts exactly
this and nothing else. It is rewritten atomically after every step: a
temporary file is written and fsynced, renamed over the old one, and the
directory is fsynced so the rename itself survives a power cut.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

FORMAT = 1
STATE_NAME = "vmcore-save.state"


class StateError(ValueError):
    """A state file that cannot be used; the message names the file and the problem."""


@dataclass
class State:
    """Progress of one dump into one output directory."""

    platform: str
    size: int  # st_size of /proc/vmcore
    identity: str  # fingerprint of the core's head: the same crash, or not
    page_size: int
    ranges: list[list[int]] = field(default_factory=list)  # phyp: release_region (start, length) pairs
    saved: int = 0  # bytes of the output file known to be durable
    released: list[list[int]] = field(default_factory=list)  # phyp: (start, length) written, in order
    # A release written to the kernel whose outcome was not yet recorded when the
    # process died: [start, length] for phyp, [1] for fadump's release_mem.
    pending: list[int] | None = None
    release_mem_done: bool = False  # fadump
    complete: bool = False
    format: int = FORMAT

    def save(self, path: Path, dir_fd: int) -> None:
        """Replace *path* atomically with this state (durable on return)."""
        tmp = path.with_name(path.name + ".tmp")
        data = (json.dumps(asdict(self), indent=1) + "\n").encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        os.fsync(dir_fd)

    @classmethod
    def load(cls, path: Path) -> State | None:
        """The state in *path*, None if there is none; StateError if it is unusable."""
        try:
            raw = path.read_text()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise StateError(f"{path}: unknown state format {data.get('format')!r}")
            return cls(**data)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, StateError):
                raise
            raise StateError(f"{path}: unreadable state file ({exc})") from None

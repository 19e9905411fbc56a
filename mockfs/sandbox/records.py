"""Records of live runs and mock daemons under the runtime directory.

A record is a small dict written as a Python literal (``repr``: the runner
writes one at every start and may use builtin modules only) and read back with
``ast.literal_eval``. Writes are atomic: a temporary file named after the
writer's pid, then a rename, so a writer killed half-way leaves only a
``PID.tmp`` that :func:`mockfs.sandbox.cleanup.cleanup` can remove.
"""

from __future__ import annotations

import os
from typing import Any


def write_record(path: str, record: dict[str, Any]) -> None:
    """Write *record* to *path* atomically, readable by its owner only."""
    tmp = os.path.join(os.path.dirname(path), f"{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, repr(record).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def read_record(path: str) -> dict[str, Any] | None:
    """The record in *path*, or None when it is missing or unreadable."""
    import ast

    try:
        with open(path) as f:
            record = ast.literal_eval(f.read())
    except (OSError, ValueError, SyntaxError):
        return None
    return record if isinstance(record, dict) else None

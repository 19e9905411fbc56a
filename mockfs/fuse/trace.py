"""The JSON Lines trace of every operation on the mock."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TextIO


def command_name(pid: int) -> str:
    """The command name of *pid* (``/proc/PID/comm``), or ``?`` once it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


class Trace:
    """Appends one JSON object per operation to a file (or nowhere)."""

    def __init__(self, path: str | Path | None) -> None:
        self._lock = threading.Lock()
        self._out: TextIO | None = open(path, "a", encoding="utf-8", buffering=1) if path else None  # noqa: SIM115
        self._names: dict[int, str] = {}

    @property
    def enabled(self) -> bool:
        return self._out is not None

    def record(self, pid: int, path: str, op: str, **fields: object) -> None:
        if self._out is None:
            return
        name = self._names.get(pid)
        if name is None:
            name = self._names[pid] = command_name(pid)
        line = {"time": round(time.time(), 6), "pid": pid, "comm": name, "path": path, "op": op, **fields}
        with self._lock:
            self._out.write(json.dumps(line) + "\n")

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

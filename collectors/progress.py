"""A progress bar on a terminal, nothing otherwise.

rich is imported only when a bar is shown: a collector run from a service or a
script should neither pay for it nor print control characters into a log.
"""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Bytes saved out of a total; a no-op unless *enabled* and stderr is a TTY."""

    def __init__(self, total: int, done: int, enabled: bool, label: str = "saving vmcore") -> None:
        self._bar: Any = None
        self._task: Any = None
        if not (enabled and sys.stderr.isatty()):
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._bar.add_task(label, total=total, completed=done)
        self._bar.start()

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def update(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done)

    def note(self, text: str) -> None:
        """Print a line above the bar (or nowhere when no bar is shown)."""
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

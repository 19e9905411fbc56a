"""Kernel versions: ``6.1``, ``5.15.121``, ``6.1.0-57-amd64`` (what uname -r prints), compared by number."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, order=True)
class KernelVersion:
    """major.minor.patch of a kernel release; anything after the numbers is ignored."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> KernelVersion:
        """The version at the start of *text*; ValueError naming it when there is none."""
        m = _VERSION.match(text.strip())
        if not m:
            raise ValueError(f"{text!r} is not a kernel version (e.g. 6.1, 5.15.121, 6.1.0-57-amd64)")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}" + (f".{self.patch}" if self.patch else "")

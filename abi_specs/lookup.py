"""Finding an ABI file by name or by path: one rule for the spec and for its quick-check table.

Builtin modules only: ``abi-harness check`` looks entries up before (and
usually without) loading the spec's model.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Protocol, TypeVar

    class Named(Protocol):
        name: str
        path: str

    E = TypeVar("E", bound=Named)


def find_named(files: Iterable[E], name: str) -> E | None:
    """The first of *files* called *name* (its short name or its canonical path)."""
    return next((f for f in files if name in (f.name, f.path)), None)


def find_by_path(files: Iterable[E], path: str) -> E | None:
    """The file whose canonical path *path* ends with (a mount prefix is allowed); the longest wins."""
    matches = [f for f in files if path.endswith(f.path.lstrip("/"))]
    return max(matches, key=lambda f: len(f.path), default=None)

"""``suppress``: contextlib.suppress without contextlib, which imports collections into every runner."""

from __future__ import annotations


class suppress:
    """Ignore the given exceptions in a ``with`` block."""

    def __init__(self, *exceptions: type[BaseException]) -> None:
        self.exceptions = exceptions

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: object) -> bool:
        return kind is not None and issubclass(kind, self.exceptions)

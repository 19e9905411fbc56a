"""Errors raised by the spec's parsers, loaders and validators.

Every error carries enough context for a one-line message that names what was
being read, where (an offset), and what was expected there.
"""

from __future__ import annotations

import errno as _errno


def show_text(text: str | bytes, limit: int = 12) -> str:
    """Quote the start of *text* for an error message ("end of input" if empty)."""
    if not text:
        return "end of input"
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    cut = text[:limit]
    return repr(cut) + ("..." if len(text) > limit else "")


class AbiError(Exception):
    """Base class of every error this package reports to users."""


class ParseError(AbiError):
    """Text that does not match an ABI format.

    *offset* is the 0-based character offset where matching failed, *expected*
    names the token that was expected there and *found* shows what stands there.
    """

    def __init__(self, what: str, offset: int, expected: str, found: str) -> None:
        self.what = what
        self.offset = offset
        self.expected = expected
        self.found = found
        super().__init__(f"{what}: at offset {offset}: expected {expected}, found {found}")


class WriteRejected(AbiError):
    """A write the kernel would refuse, with the errno it returns.

    *condition* names the spec's error condition that refused it (see
    ``abi_specs.model.CONDITIONS``), when there is one.
    """

    def __init__(self, what: str, errno: int, reason: str, condition: str = "") -> None:
        self.what = what
        self.errno = errno
        self.reason = reason
        self.condition = condition
        name = _errno.errorcode.get(errno, str(errno))
        super().__init__(f"{what}: write fails with {name}: {reason}")


class SpecFileError(AbiError):
    """A spec file (TOML) that cannot be loaded: names the file, the key and the problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")


class CoreError(AbiError):
    """An ELF core file that breaks the layout rules of /proc/vmcore."""

    def __init__(self, what: str, offset: int | None, problem: str) -> None:
        self.what = what
        self.offset = offset
        self.problem = problem
        at = f" at file offset {offset:#x}" if offset is not None else ""
        super().__init__(f"{what}{at}: {problem}")

"""Check a live or captured ABI file against the spec.

:func:`check_bytes` takes the file's content and the spec entry and returns
the parsed values (plain JSON-able data, numbers as integers) or raises an
:class:`~abi_specs.errors.AbiError` whose message is one line saying what is
wrong and where.
"""

from __future__ import annotations

import io
import os
import sys
from collections import namedtuple

from .errors import AbiError
from .lookup import find_by_path, find_named

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a quick command 3 ms; annotations alone use it
    from typing import BinaryIO

    from .model import AbiFile, Spec

    Entry = AbiFile | "QuickEntry"


class CheckUsageError(AbiError):
    """The check cannot run: no spec named or guessable, or an unreadable file."""


class QuickEntry(namedtuple("QuickEntry", ("name", "path", "kind", "mode", "read"))):
    """What checking a text file needs of its spec entry (an :class:`AbiFile` has the same attributes).

    The built-in spec's entries are cached as these next to the spec
    (:func:`quick_entries`), so that ``abi-harness check`` of a text file loads
    neither the spec nor its model (whose dataclasses cost it half its start).
    """

    __slots__ = ()

    @property
    def quick(self) -> bool:
        """Whether the check needs nothing more (a core or a device-tree property needs the spec itself)."""
        return self.kind not in ("core", "property")


def quick_entries(spec: Spec) -> tuple[QuickEntry, ...]:
    """Every file of *spec*, in order, as a :class:`QuickEntry` (cached by :func:`abi_specs.builtin_spec`)."""
    return tuple(QuickEntry(f.name, f.path, f.kind, f.mode, f.read) for f in spec.files)


def quick_entry(name: str | None, path: str) -> QuickEntry | None:
    """The built-in spec's entry for a check of *path* (by *name*, or guessed from *path*), from the cache;
    None when the cache is not current or the check needs the whole spec (which then says what is wrong)."""
    from .listing import package_stamp
    from .spec_cache import load

    entries = load(package_stamp(), tuple, index=1)
    if entries is None:
        return None
    found = find_named(entries, name) if name else find_by_path(entries, path) if path != "-" else None
    return found if found is not None and found.quick else None


def choose_spec(spec: Spec, name: str | None, path: str) -> AbiFile:
    """The spec entry named *name*, or the one *path* ends with."""
    if name:
        try:
            return spec.get(name)
        except KeyError as exc:
            raise CheckUsageError(exc.args[0]) from None
    guessed = spec.guess(path) if path != "-" else None
    if guessed is None:
        raise CheckUsageError(f"{path}: cannot tell which ABI file this is from its path; name it with --spec")
    return guessed


def check_bytes(entry: Entry, data: bytes) -> dict[str, object]:
    """Validate *data* as the content of *entry*; return the parsed values."""
    return check_stream(entry, io.BytesIO(data), len(data))


def check_stream(entry: Entry, stream: BinaryIO, size: int) -> dict[str, object]:
    """Validate the content of *entry* read from *stream* (*size* bytes)."""
    if entry.kind == "core":
        from .vmcore import validate_core  # ELF reading: only when a core is checked

        assert entry.core is not None
        return validate_core(stream, entry.core, size, entry.name).as_dict()
    data = stream.read()
    if entry.kind == "property":
        assert entry.cells is not None
        return entry.cells.unpack(data, entry.name)
    if entry.read is None:
        what = "write-only" if not entry.mode & 0o444 else "its content has no format in the spec"
        raise CheckUsageError(f"{entry.name}: {what} (mode {entry.mode:#o}): there is no read format to check")
    values = entry.read.parse(data)
    result: dict[str, object] = dict(values)
    if entry.read.ranges:
        result["ranges"] = entry.read.ranges_of(values)
    return result


def check_path(entry: Entry, path: str) -> dict[str, object]:
    """Validate the file at *path* (``-`` for standard input)."""
    if path == "-":
        data = sys.stdin.buffer.read()
        return check_bytes(entry, data)
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if entry.kind != "core" or not os.path.isfile(path):
                return check_bytes(entry, stream.read())
            return check_stream(entry, stream, size)
    except OSError as exc:
        raise CheckUsageError(f"{path}: {exc.strerror or exc}") from None

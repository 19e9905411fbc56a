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
from pathlib import Path
from typing import BinaryIO

from .errors import AbiError
from .model import AbiFile, Spec


class CheckUsageError(AbiError):
    """The check cannot run: no spec named or guessable, or an unreadable file."""


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


def check_bytes(entry: AbiFile, data: bytes) -> dict[str, object]:
    """Validate *data* as the content of *entry*; return the parsed values."""
    return check_stream(entry, io.BytesIO(data), len(data))


def check_stream(entry: AbiFile, stream: BinaryIO, size: int) -> dict[str, object]:
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


def check_path(entry: AbiFile, path: str) -> dict[str, object]:
    """Validate the file at *path* (``-`` for standard input)."""
    if path == "-":
        data = sys.stdin.buffer.read()
        return check_bytes(entry, data)
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if entry.kind != "core" or not Path(path).is_file():
                return check_bytes(entry, stream.read())
            return check_stream(entry, stream, size)
    except OSError as exc:
        raise CheckUsageError(f"{path}: {exc.strerror or exc}") from None

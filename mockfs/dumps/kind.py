"""Whether a manifest names an imported core, told without loading the importer.

A run of a built-in or synthesized fixture never needs :mod:`.imported` (nor
the ELF header reader it brings); this sniff is all it asks of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from abi_specs.tomlreader import parse_toml
from mockfs.machine.model import FixtureError

#: The ``kind`` of an imported core's manifest (written first, for the sniff below).
KIND = "imported-core"


def is_imported_manifest(path: str | os.PathLike[str]) -> bool:
    """True if *path* is a TOML manifest whose ``kind`` is :data:`KIND`."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    # Cheap sniff before a full parse: the writer puts ``kind`` first.
    return KIND.encode() in head and read_manifest(Path(path)).get("kind") == KIND


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest's TOML document; a :class:`FixtureError` naming the file when it cannot be read."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FixtureError(str(path), "", f"cannot read: {exc.strerror}") from None
    return parse_toml(raw, str(path), FixtureError)

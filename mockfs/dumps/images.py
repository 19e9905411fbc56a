"""Any fixture by name or path: the built-ins, synthesized manifests and imported cores."""

from __future__ import annotations

import os

from mockfs.machine import Fixture, VmcoreImage, builtin_fixture_names, resolve_fixture

from .imported import ImportedCore, load_imported
from .kind import is_imported_manifest

#: Anything with ``size`` and ``read(offset, length)``: the bytes of a /proc/vmcore.
Image = VmcoreImage | ImportedCore


def _is_imported(text: str) -> bool:
    return text not in builtin_fixture_names() and is_imported_manifest(text)


def open_image(name_or_path: str | os.PathLike[str]) -> Image:
    """The bytes of any fixture: a built-in name, a synthesized manifest or an imported one."""
    text = str(name_or_path)
    return load_imported(text) if _is_imported(text) else VmcoreImage(resolve_fixture(text))


def load_any(name_or_path: str | os.PathLike[str]) -> Fixture | ImportedCore:
    """The fixture itself (for ``show``): a Fixture, or an ImportedCore for imported manifests."""
    text = str(name_or_path)
    return load_imported(text) if _is_imported(text) else resolve_fixture(text)

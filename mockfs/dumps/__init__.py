"""Dumps read back: imported cores, saved dumps in every format, and their verification.

* imported: :class:`ImportedCore`, a fixture backed by a real ELF core file;
* images: ``open_image`` (the bytes of any fixture) and ``load_any``;
* export: ``export_file`` (atomic, mode 0600);
* formats: readers of ELF, kdump-compressed and flattened dumps;
* verify: ``verify_dump``, a saved dump against its fixture, page by page;

These modules read and write files; the pure model they compare against is
:mod:`mockfs.machine`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CoreImportError": ".imported",
    "DumpFormatError": ".formats",
    "Image": ".images",
    "ImportedCore": ".imported",
    "VerifyReport": ".verify",
    "export_file": ".export",
    "import_core": ".imported",
    "load_any": ".images",
    "load_imported": ".imported",
    "open_image": ".images",
    "verify_dump": ".verify",
    "write_imported": ".imported",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Imported on first use: a run needs the fixture and its image, not the generator or the exporter.
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Dumps read back: imported cores, saved dumps in every format, and their verification.

* imported: :class:`ImportedCore`, a fixture backed by a real ELF core file;
* kind: whether a manifest names an imported core, told without importing :mod:`.imported`;
* images: ``open_image`` (the bytes of any fixture) and ``load_any``;
* export: ``export_file`` (atomic, mode 0600);
* formats: readers of ELF, kdump-compressed and flattened dumps;
* verify: ``verify_dump``, a saved dump against its fixture, page by page;

These modules read and write files; the pure model they compare against is
:mod:`mockfs.machine`.
"""

from __future__ import annotations

from abi_specs.lazy import lazy_exports

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

__getattr__ = lazy_exports(__name__, _EXPORTS)

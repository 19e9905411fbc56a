"""Dumps read back: imported cores, saved dumps in every format, and their verification.

* imported: :class:`ImportedCore`, a fixture backed by a real ELF core file;
* images: ``open_image`` (the bytes of any fixture) and ``load_any``;
* export: ``export_file`` (atomic, mode 0600);
* formats: readers of ELF, kdump-compressed and flattened dumps;
* verify: ``verify_dump``, a saved dump against its fixture, page by page;

These modules read and write files; the pure model they compare against is
:mod:`mockfs.machine`.
"""

from .export import export_file
from .formats import DumpFormatError
from .images import Image, load_any, open_image
from .imported import CoreImportError, ImportedCore, import_core, load_imported, write_imported
from .verify import VerifyReport, verify_dump

__all__ = [
    "CoreImportError",
    "DumpFormatError",
    "Image",
    "ImportedCore",
    "VerifyReport",
    "export_file",
    "import_core",
    "load_any",
    "load_imported",
    "open_image",
    "verify_dump",
    "write_imported",
]

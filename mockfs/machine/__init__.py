"""Machine model of a crashed Linux system and on-demand /proc/vmcore synthesis.

Pure Python, no FUSE and no I/O beyond reading fixture files:

* model: :class:`Fixture` and its parts, validation, phyp/fadump layouts;
* manifest: TOML fixture files (``load_fixture``, ``write_fixture``, built-ins);
* image: :class:`VmcoreImage` (``size``, ``read``) and ``export_vmcore``;
* generate: ``new_fixture`` (a valid fixture from a few parameters), ``parse_size``;
* importcore: :class:`ImportedCore` (a fixture backed by a real ELF core file),
  ``open_image`` (bytes of any fixture) and ``export_file`` (atomic, mode 0600);
* verify: ``verify_dump`` (a saved dump against its fixture, page by page).
"""

from .generate import new_fixture, parse_size
from .image import VmcoreImage, export_vmcore
from .importcore import CoreImportError, ImportedCore, export_file, import_core, load_imported, open_image
from .manifest import (
    builtin_fixture_names,
    dumps_fixture,
    load_fixture,
    parse_fixture,
    resolve_fixture,
    write_fixture,
)
from .model import (
    ARCH_INFO,
    Cpu,
    Fadump,
    Fixture,
    FixtureError,
    LogRecord,
    Overlay,
    PhypDump,
    PhypLayout,
)
from .pattern import page_origin
from .printk import expected_dmesg
from .verify import DumpFormatError, VerifyReport, verify_dump

__all__ = [
    "ARCH_INFO",
    "CoreImportError",
    "Cpu",
    "DumpFormatError",
    "Fadump",
    "Fixture",
    "FixtureError",
    "ImportedCore",
    "LogRecord",
    "Overlay",
    "PhypDump",
    "PhypLayout",
    "VerifyReport",
    "VmcoreImage",
    "builtin_fixture_names",
    "dumps_fixture",
    "expected_dmesg",
    "export_file",
    "export_vmcore",
    "import_core",
    "load_fixture",
    "load_imported",
    "new_fixture",
    "open_image",
    "page_origin",
    "parse_fixture",
    "parse_size",
    "resolve_fixture",
    "verify_dump",
    "write_fixture",
]

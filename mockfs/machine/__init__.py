"""The machine model: a crashed Linux system and the bytes of its /proc/vmcore.

Pure computation, with one edge: :mod:`~mockfs.machine.manifest` reads and
writes fixture manifests (and the blob files they name).

* model: :class:`Fixture` and its parts, and their validation;
* manifest: TOML fixture files (``load_fixture``, ``write_fixture``, the built-ins);
* generate: ``new_fixture`` (a valid fixture from a few parameters);
* kernel, printk, memmap, x86_pagetables, pattern, notes: what the crashed
  kernel left in memory (VMCOREINFO, log buffers, ``mem_map``, page tables,
  the self-describing page pattern, the CPU notes);
* image: :class:`VmcoreImage`, the /proc/vmcore of a fixture (``size``, ``read``).

Reading dumps back, imported cores and verification live in :mod:`mockfs.dumps`.
"""

from .generate import new_fixture
from .image import VmcoreImage
from .manifest import (
    builtin_fixture_names,
    dumps_fixture,
    load_fixture,
    parse_fixture,
    resolve_fixture,
    write_fixture,
)
from .model import (
    Cpu,
    Fadump,
    Fixture,
    FixtureError,
    LogRecord,
    Overlay,
    PhypDump,
)
from .pattern import page_origin
from .printk import expected_dmesg

__all__ = [
    "Cpu",
    "Fadump",
    "Fixture",
    "FixtureError",
    "LogRecord",
    "Overlay",
    "PhypDump",
    "VmcoreImage",
    "builtin_fixture_names",
    "dumps_fixture",
    "expected_dmesg",
    "load_fixture",
    "new_fixture",
    "page_origin",
    "parse_fixture",
    "resolve_fixture",
    "write_fixture",
]

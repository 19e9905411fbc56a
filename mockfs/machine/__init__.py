"""Machine model of a crashed Linux system and on-demand /proc/vmcore synthesis.

Pure Python, no FUSE and no I/O beyond reading fixture files:

* model: :class:`Fixture` and its parts, validation, phyp/fadump layouts;
* manifest: TOML fixture files (``load_fixture``, ``write_fixture``, built-ins);
* image: :class:`VmcoreImage` (``size``, ``read``) and ``export_vmcore``.
"""

from .image import VmcoreImage, export_vmcore
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

__all__ = [
    "ARCH_INFO",
    "Cpu",
    "Fadump",
    "Fixture",
    "FixtureError",
    "LogRecord",
    "Overlay",
    "PhypDump",
    "PhypLayout",
    "VmcoreImage",
    "builtin_fixture_names",
    "dumps_fixture",
    "expected_dmesg",
    "export_vmcore",
    "load_fixture",
    "page_origin",
    "parse_fixture",
    "resolve_fixture",
    "write_fixture",
]

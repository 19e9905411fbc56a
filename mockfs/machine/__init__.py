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

from __future__ import annotations

from abi_specs.lazy import lazy_exports

_EXPORTS = {
    "Cpu": ".model",
    "Fadump": ".model",
    "Fixture": ".model",
    "FixtureError": ".model",
    "LogRecord": ".model",
    "Overlay": ".model",
    "PhypDump": ".model",
    "VmcoreImage": ".image",
    "builtin_fixture_names": ".manifest",
    "dumps_fixture": ".manifest",
    "expected_dmesg": ".printk",
    "load_fixture": ".manifest",
    "new_fixture": ".generate",
    "page_origin": ".pattern",
    "parse_fixture": ".manifest",
    "resolve_fixture": ".manifest",
    "write_fixture": ".manifest",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)

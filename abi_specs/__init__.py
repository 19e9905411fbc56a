"""The Linux crash-dump ABI, encoded once.

Paths, modes, platforms, architectures, read and write formats, errors and
semantics of the sysfs/procfs files of phyp dump, fadump and kdump live in
``abi_specs/specs`` as TOML; this package turns them into codecs, validators,
hypothesis strategies and Documentation/ABI entries, and holds the pure models
the rest of the project takes its facts from (:mod:`.phyp`, :mod:`.fadump`,
:mod:`.vmcore_layout`, :mod:`.arches`, :mod:`.elf`).

>>> from abi_specs import builtin_spec
>>> spec = builtin_spec().get("release_region")
>>> spec.read.parse("CPU:0x0-0x0: HPTE:0x0-0x0: DUMP:0x0-0x0, 0x0-0x0:\\n")["cpu_addr"]
0

Names are imported on first use, so ``from abi_specs import AbiError`` does not
load the spec.
"""

from __future__ import annotations

from .lazy import lazy_exports

_EXPORTS = {
    "AbiError": ".errors",
    "CoreError": ".errors",
    "ParseError": ".errors",
    "SpecFileError": ".errors",
    "WriteRejected": ".errors",
    "AbiFile": ".model",
    "Platform": ".platform",
    "Spec": ".model",
    "builtin_spec": ".specfile",
    "load_spec_file": ".specfile",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)

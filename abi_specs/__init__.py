"""The Linux crash-dump ABI, encoded once.

Paths, modes, platforms, read and write formats, errors and semantics of the
sysfs/procfs files of phyp dump, fadump and kdump live in ``abi_specs/specs``
as TOML; this package turns them into codecs, validators, hypothesis
strategies and Documentation/ABI entries.

>>> from abi_specs import builtin_spec
>>> spec = builtin_spec().get("release_region")
>>> spec.read.parse("CPU:0x0-0x0: HPTE:0x0-0x0: DUMP:0x0-0x0, 0x0-0x0:\\n")["cpu_addr"]
0
"""

from .errors import AbiError, CoreError, ParseError, SpecFileError, WriteRejected
from .model import AbiFile, Platform, Spec
from .specfile import builtin_spec, load_spec_file

__all__ = [
    "AbiError",
    "AbiFile",
    "CoreError",
    "ParseError",
    "Platform",
    "Spec",
    "SpecFileError",
    "WriteRejected",
    "builtin_spec",
    "load_spec_file",
]

"""The live machine's state: what the dump ABI files of a fixture's machine show, and what writes do.

:class:`LiveMachine` is the facade the FUSE view uses; the parts are the
tree of files (:mod:`.tree`), their values (:mod:`.attributes`), the store
methods (:mod:`.stores`), the machine's life: its answers to sealed system
calls and its crashes and reboots (:mod:`.life`), its own /proc files
(:mod:`.procfiles`: cmdline, iomem, kcore) and /proc/sys (:mod:`.sysctl`),
the crashed memory and what was given back (:mod:`.memory`) and the mutable
state (:mod:`.state`). The judgement of the collector is :mod:`mockfs.judge`.
The only I/O is reading the host's /proc/sys, whose values a machine shows
until it writes its own.
"""

from .machine import LiveMachine
from .state import MachineState
from .tree import Node

__all__ = ["LiveMachine", "MachineState", "Node"]

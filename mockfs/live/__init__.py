"""The live machine's state: what the dump ABI files of a fixture's machine show, and what writes do.

:class:`LiveMachine` is the facade the FUSE view uses; the parts are the
tree of files (:mod:`.tree`), their values (:mod:`.attributes`), the store
methods (:mod:`.stores`), the crashed memory and what was given back
(:mod:`.memory`) and the mutable state (:mod:`.state`). The judgement of the
collector is :mod:`mockfs.judge`. No I/O happens here.
"""

from .machine import LiveMachine
from .state import MachineState
from .tree import Node

__all__ = ["LiveMachine", "MachineState", "Node"]

"""Package names imported on first use (PEP 562): one rule for every package that re-exports lazily.

A package lists the names it offers and the submodule each lives in; a name
is imported when first asked for, and kept. Quick commands import only what
they use: ``from abi_specs import AbiError`` loads no spec, and a run of a
built-in fixture loads neither the fixture generator nor the core importer.
"""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for *package* that imports each name of *exports* (name: submodule) on first use."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__

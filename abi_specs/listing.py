"""The spec's files as plain rows (what ``abi-harness specs`` prints), for the built-in spec from the cache.

The rows of the built-in spec are cached next to it (:mod:`abi_specs.spec_cache`)
as plain data, so listing them loads neither the spec nor its model: this
module imports neither at the top.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a quick command 3 ms; annotations alone use it
    from typing import Any

    from .model import Spec

    Row = dict[str, Any]


def listing(spec: Spec) -> list[Row]:
    """One row per ABI file: name, path, kind, mode (and in octal), platforms, presence, stability, link."""
    return [
        {
            "name": f.name,
            "path": f.path,
            "kind": f.kind,
            "mode": f.mode,
            "mode_octal": f"{f.mode:04o}",
            "platforms": list(f.platforms),
            "present": list(f.present),
            "stability": f.stability,
            "link_to": f.link_to or None,
        }
        for f in spec.files
    ]


def package_stamp() -> tuple[Any, ...]:
    """The cache stamp of the built-in spec (see :func:`abi_specs.spec_cache.source_stamp`)."""
    from .spec_cache import source_stamp

    return source_stamp(os.path.dirname(os.path.abspath(__file__)))


def builtin_listing() -> list[Row]:
    """:func:`listing` of the built-in spec: from the cache when it is current, else from the spec (which caches it)."""
    from .spec_cache import load

    rows = load(package_stamp(), list, index=0)
    if rows is None:
        from .specfile import builtin_spec

        rows = listing(builtin_spec())
    return rows

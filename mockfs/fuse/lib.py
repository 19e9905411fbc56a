"""The one loader of the FUSE binding: mfusepy on libfuse3.

mfusepy picks libfuse2 when both are installed unless told otherwise, and it
reads the choice from the environment when it is first imported. Every daemon
imports the binding through :func:`load_mfusepy`; :func:`libfuse3_path` finds
the library once so that a runner can hand its path to the daemons it forks.
Builtin modules only until the binding is wanted.
"""

from __future__ import annotations

import os
from typing import Any

_PATH: list[str | None] = []


def libfuse3_path() -> str | None:
    """The libfuse3 library name as the dynamic loader knows it, looked up once (find_library runs ldconfig)."""
    if not _PATH:
        from ctypes.util import find_library

        _PATH.append(find_library("fuse3"))
    return _PATH[0]


def load_mfusepy(library: str | None = None) -> Any:
    """Import mfusepy bound to libfuse3 (*library*: a path found earlier)."""
    if library:
        os.environ["FUSE_LIBRARY_PATH"] = library
    elif not os.environ.get("FUSE_LIBRARY_PATH"):
        os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    import mfusepy

    return mfusepy

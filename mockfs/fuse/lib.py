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


#: The soname the dynamic loader finds whatever uname says.
SONAME = "libfuse3.so.3"


def libfuse3_path() -> str | None:
    """The libfuse3 library name as the dynamic loader knows it, looked up once.

    The soname is tried with the loader itself first: find_library runs
    ldconfig in a subprocess (about 10 ms of every run) and keeps only the
    entries of uname's architecture, which inside a run of a mocked ppc64
    machine says ppc64. find_library remains for a library the loader does not
    find by its soname.
    """
    if not _PATH:
        import ctypes

        try:
            ctypes.CDLL(SONAME)
            found: str | None = SONAME
        except OSError:
            from ctypes.util import find_library

            found = find_library("fuse3")
        _PATH.append(found)
    return _PATH[0]


def load_mfusepy(library: str | None = None) -> Any:
    """Import mfusepy bound to libfuse3 (*library*: a path found earlier)."""
    library = library or os.environ.get("FUSE_LIBRARY_PATH") or libfuse3_path()
    if library:
        os.environ["FUSE_LIBRARY_PATH"] = library
    else:
        os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # mfusepy says which library is missing
    import mfusepy

    return mfusepy

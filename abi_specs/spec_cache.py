"""A private per-user cache of the built-in spec, so that quick commands need not build it.

Building the spec (parsing its TOML, checking every key, compiling the
formats) is most of what ``abi-harness specs`` and ``check`` spend. The built
:class:`~abi_specs.model.Spec` is pickled to ``$XDG_CACHE_HOME/abi-harness/spec/``
(``~/.cache`` without it), after the cheaper objects made from it that quick
commands read instead (``specs``' rows, ``check``'s quick entries), and after a
stamp of what it was built from: the
Python version, the package folder, and the name, size and modification time
of every ``abi_specs`` module and spec TOML file. A cache whose stamp differs,
or that cannot be read, trusted or unpickled, is ignored and the spec built
afresh; one that cannot be written costs only time.

The folder is 0700 and the files 0600, and a file not owned by the user or
open to others is not loaded: a pickle runs code when loaded.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a quick command 3 ms; annotations alone use it
    from typing import Any

#: Raised when the cache's layout changes, so that old caches are not read.
_LAYOUT = 3


def cache_dir() -> str:
    """The folder of the spec cache (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG rule: a relative value is ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "abi-harness", "spec")


def source_stamp(package_dir: str) -> tuple[Any, ...]:
    """What a spec built from *package_dir* depends on: its modules and spec files, by name, size and mtime.

    Stat-only, so that checking costs well under a millisecond; an edit that
    keeps both the size and the nanosecond mtime is not seen.
    """
    files = []
    for sub in ("", "specs"):
        with os.scandir(os.path.join(package_dir, sub)) as entries:
            for e in entries:
                if e.name.endswith((".py", ".toml")):
                    st = e.stat()
                    files.append((sub, e.name, st.st_size, st.st_mtime_ns))
    return (_LAYOUT, sys.version, os.path.abspath(package_dir), tuple(sorted(files)))


def _cache_file(stamp: tuple[Any, ...]) -> str:
    # One file per installation (the editable checkout and a wheel's site-packages differ).
    return os.path.join(cache_dir(), f"spec-{zlib.crc32(stamp[2].encode()):08x}.pickle")


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & 0o077


def load(stamp: tuple[Any, ...], kind: type, index: int = 0) -> Any | None:
    """The *index*-th object :func:`save` stored for *stamp*, if of type *kind*; else None (no cache, stale,
    foreign or corrupt). Objects before it are unpickled too: put the cheap ones first."""
    try:
        with open(_cache_file(stamp), "rb") as f:
            if not (_private(os.fstat(f.fileno())) and _private(os.stat(cache_dir()))):
                return None
            unpickler = pickle.Unpickler(f)
            if unpickler.load() != stamp:  # the stamp first: a stale spec is never unpickled
                return None
            value = None
            for _ in range(index + 1):
                value = unpickler.load()
    except Exception:  # garbage can fail unpickling in any way; the cache is only a shortcut
        return None
    return value if isinstance(value, kind) else None


def _dispatch_table() -> dict[type, Any]:
    """Pickle's reducers, and one for :class:`struct.Struct` (binary layouts keep them), which has none."""
    import copyreg
    import struct

    def reduce_struct(s: struct.Struct) -> tuple[Any, ...]:
        return struct.Struct, (s.format,)

    return {**copyreg.dispatch_table, struct.Struct: reduce_struct}


def _drop_marshal_caches(folder: str) -> None:
    """Remove the TOML-table caches (``spec-*.marshal``) earlier versions left, one per spec text."""
    with os.scandir(folder) as entries:
        for e in entries:
            if e.name.startswith("spec-") and e.name.endswith(".marshal") and e.is_file(follow_symlinks=False):
                os.unlink(e.path)


def save(stamp: tuple[Any, ...], *values: Any) -> None:
    """Store *values* built from *stamp*, atomically; any failure leaves the cache as it was."""
    folder = cache_dir()
    tmp = ""
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.stat(folder)
        if st.st_uid != os.geteuid():
            return  # someone else's (sudo keeping HOME): neither written nor, in load, read
        if st.st_mode & 0o077:
            os.chmod(folder, 0o700)  # made under a lax umask
        path = _cache_file(stamp)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            pickler = pickle.Pickler(f, pickle.HIGHEST_PROTOCOL)
            pickler.dispatch_table = _dispatch_table()
            for value in (stamp, *values):
                pickler.dump(value)
        os.replace(tmp, path)
        tmp = ""
        _drop_marshal_caches(os.path.dirname(folder))
    except Exception:  # an unwritable folder, full disk, an unpicklable value: build next time too
        pass
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

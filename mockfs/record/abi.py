"""What a live kernel's dump ABI holds, read (never written): presence, mode, link, value of every file.

The paths are the spec's (:func:`mockfs.oracle.guest.dump_files`), so a
recording and the oracle's guest record the same set. Each entry is a small
dict that goes into a recorded fixture's ``[recorded]`` table as it is:
``present``, ``mode`` (permission bits), ``type`` (file, link, dir), ``link``
(a link's target), and ``value``: an attribute's text, a property's bytes in
hex. /proc/vmcore is recorded by its size only; its bytes go to the core.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from abi_specs import builtin_spec
from mockfs.oracle.guest import dump_files


def _entry_kind(path: str) -> str:
    for f in builtin_spec().files:
        if f.path == path:
            return f.kind
    return "attribute" if path.startswith("/sys/") else "property"


def record_file(root: Path, path: str) -> dict[str, Any]:
    """One file as the kernel shows it under *root* (``/`` on a real machine); reads only."""
    where = root / path.lstrip("/")
    try:
        st = os.lstat(where)
    except FileNotFoundError:
        return {"present": False}
    except OSError as exc:
        return {"present": True, "error": exc.strerror or str(exc)}
    out: dict[str, Any] = {"present": True, "mode": stat.S_IMODE(st.st_mode)}
    if stat.S_ISLNK(st.st_mode):
        out.update(type="link", link=os.readlink(where))
        return out
    if stat.S_ISDIR(st.st_mode):
        out.update(type="dir", names=sorted(os.listdir(where)))
        return out
    out.update(type="file", size=st.st_size)
    if not st.st_mode & 0o444:
        return out  # write-only: nothing to read, and nothing is ever written
    try:
        with open(where, "rb") as f:
            data = f.read(1 << 20)
    except OSError as exc:
        out["read_error"] = exc.strerror or str(exc)
        return out
    if _entry_kind(path) == "property":
        out["hex"] = data.hex()
    else:
        out["value"] = data.decode("latin-1")
    return out


def record_abi(root: Path = Path("/")) -> dict[str, dict[str, Any]]:
    """Every dump ABI file the spec knows, and /proc/vmcore's presence and size, under *root*."""
    files = {path: record_file(root, path) for path in dump_files()}
    vmcore = builtin_spec().get("vmcore").path
    try:
        st = os.stat(root / vmcore.lstrip("/"))
        files[vmcore] = {"present": True, "mode": stat.S_IMODE(st.st_mode), "type": "file", "size": st.st_size}
    except FileNotFoundError:
        files[vmcore] = {"present": False}
    return files


def platform_of(files: dict[str, dict[str, Any]]) -> str:
    """Which dump mechanism the recorded files show (by the spec's paths)."""
    spec = builtin_spec()
    if files.get(spec.get("release_region").path, {}).get("present"):
        return "phyp"
    if any(files.get(spec.get(n).path, {}).get("present") for n in ("fadump/enabled", "fadump_enabled")):
        return "fadump"
    return "kdump"

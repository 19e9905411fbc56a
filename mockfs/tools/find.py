"""Find a real tool: on PATH, in the system directories, or in a private package tree."""

from __future__ import annotations

import shutil
from pathlib import Path

from abi_specs.errors import AbiError

from .debs import private_root

#: Where packages put programs, relative to their root.
BIN_DIRS = ("usr/sbin", "usr/bin", "sbin", "bin")
#: Which package brings which tool, for the hint of a missing one.
PROVIDERS = {
    "kdump-config": "kdump-tools", "kexec": "kexec-tools", "vmcore-dmesg": "kexec-tools",
    "makedumpfile": "makedumpfile", "eu-readelf": "elfutils", "gdb-multiarch": "gdb-multiarch",
    "qemu-system-x86_64": "qemu-system-x86", "busybox": "busybox-static", "cpio": "cpio",
    "fusermount3": "fuse3", "gdb": "gdb",
}  # fmt: skip


class ToolMissing(AbiError):
    """A tool the harness needs is not installed; the message names its package."""


def find_tool(name: str) -> Path | None:
    """The path of the program *name*, or None."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if found:
        return Path(found)
    root = private_root()
    if root.is_dir():
        for tree in sorted(root.iterdir(), reverse=True):
            for sub in BIN_DIRS:
                candidate = tree / sub / name
                if candidate.is_file():
                    return candidate
    return None


def require_tool(name: str) -> Path:
    """The path of *name*; :class:`ToolMissing` naming the package that brings it otherwise."""
    path = find_tool(name)
    if path is None:
        package = PROVIDERS.get(name, name)
        raise ToolMissing(f"{name} is not installed (Debian package {package}; 'make install' sets it up)")
    return path

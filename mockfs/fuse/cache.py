"""Keep the kernel's cache of the mock's names and attributes honest.

The mock mounts with entry and attribute timeouts, so that an open, write and
close of an attribute costs one open, one write and one release instead of a
lookup and a getattr per path component. The answers the kernel caches can
change only when a write changes the machine: a crash boots another kernel
(another tree: files appear and go away) and a registration changes the size of
a device-tree property. :class:`KernelCache` tells the kernel after each such
write, from inside the write, before the writer sees its result:

* a name that appears needs nothing: negative answers are never cached
  (``negative_timeout=0``);
* a name that goes away, or whose attributes changed, has its cached attributes
  dropped (``fuse_invalidate_path``): the next stat or open asks the daemon,
  which answers ENOENT or the new attributes.

The kernel's cached names themselves stay (libfuse's high-level API has no
call to drop one), which is enough as long as no name changes type between a
machine's two kernels: ``tests/mockfs/test_kernel_cache.py`` checks that no
spec file does, for every platform and version.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable
from typing import Any

from mockfs.live import LiveMachine

#: Seconds the kernel may keep names and attributes: long, since every change is invalidated.
TIMEOUT = 60.0


def _invalidator(mfusepy: Any) -> Callable[[str], None]:
    """``fuse_invalidate_path`` of the filesystem serving the current request."""
    lib = mfusepy._libfuse
    lib.fuse_invalidate_path.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.fuse_invalidate_path.restype = ctypes.c_int

    def invalidate(path: str) -> None:
        context = lib.fuse_get_context()
        if context:  # NULL outside a request: nothing is mounted to tell
            # An uncached path answers -ENOENT: nothing to drop.
            lib.fuse_invalidate_path(context.contents.fuse, path.encode())

    return invalidate


class KernelCache:
    """Invalidates what a write of *machine* changed; one instance per mount."""

    def __init__(self, machine: LiveMachine, mfusepy: Any) -> None:
        self.machine = machine
        self._invalidate = _invalidator(mfusepy)
        self._properties: tuple[object, list[str]] = (None, [])  # (tree, its property paths)

    def snapshot(self) -> object:
        """What the kernel may have cached: the tree (rebuilt, never mutated, when the kernel changes)."""
        return self.machine.nodes()

    def after_write(self, before: object) -> None:
        """A write ran: drop the cached attributes of every name it may have changed."""
        after = self.machine.nodes()
        if after is not before:
            self._drop(set(before) | set(after))  # type: ignore[call-overload]
        else:
            # Property sizes follow their content (ibm,kernel-dump after a registration).
            self._drop(self._property_paths(after))

    def _property_paths(self, tree: Any) -> list[str]:
        """The device-tree properties of *tree*, found once per tree (a write must not scan it each time)."""
        if self._properties[0] is not tree:
            paths = [path for path, node in tree.items() if node.entry is not None and node.entry.kind == "property"]
            self._properties = (tree, paths)
        return self._properties[1]

    def _drop(self, paths: Iterable[str]) -> None:
        for path in paths:
            self._invalidate("/" + path)

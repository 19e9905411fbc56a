"""The one runtime directory: run and mount records, and the runners' staging mount point.

``$ABI_HARNESS_RUNTIME_DIR`` if set, else ``/run/abi-harness`` for root, else
``$XDG_RUNTIME_DIR/abi-harness`` or ``/tmp/abi-harness-<uid>``. Builtin modules
only: the in-namespace runner imports this at every start.
"""

from __future__ import annotations

import os

RUNTIME_DIR_ENV = "ABI_HARNESS_RUNTIME_DIR"


def host_uid() -> int:
    """Who we are on the host: root in a user namespace of ours (rootless mode) is its owner."""
    uid = os.geteuid()
    try:
        with open("/proc/self/uid_map") as f:
            first = f.readline().split()
    except OSError:
        return uid
    if len(first) == 3 and first != ["0", "0", "4294967295"] and int(first[0]) <= uid < int(first[0]) + int(first[2]):
        return int(first[1]) + uid - int(first[0])
    return uid


def runtime_dir() -> str:
    """The runtime directory (not created)."""
    if override := os.environ.get(RUNTIME_DIR_ENV):
        return os.path.realpath(override)
    uid = host_uid()
    if uid == 0:
        return "/run/abi-harness"
    if xdg := os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(xdg, "abi-harness")
    return f"/tmp/abi-harness-{uid}"


def subdir(name: str, root: str | None = None) -> str:
    """``root/name`` (root: the runtime directory), created mode 0700 if missing."""
    path = os.path.join(root or runtime_dir(), name)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path

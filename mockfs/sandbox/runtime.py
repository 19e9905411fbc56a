"""The one runtime directory: run and mount records, and the runners' staging mount point.

``$ABI_HARNESS_RUNTIME_DIR`` if set, else ``/run/abi-harness`` for root, else
``$XDG_RUNTIME_DIR/abi-harness`` or ``/tmp/abi-harness-<uid>``. Builtin modules
only: the in-namespace runner imports this at every start.
"""

from __future__ import annotations

import os

RUNTIME_DIR_ENV = "ABI_HARNESS_RUNTIME_DIR"


def runtime_dir() -> str:
    """The runtime directory (not created)."""
    if override := os.environ.get(RUNTIME_DIR_ENV):
        return os.path.realpath(override)
    if os.geteuid() == 0:
        return "/run/abi-harness"
    if xdg := os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(xdg, "abi-harness")
    return f"/tmp/abi-harness-{os.geteuid()}"


def subdir(name: str, root: str | None = None) -> str:
    """``root/name`` (root: the runtime directory), created mode 0700 if missing."""
    path = os.path.join(root or runtime_dir(), name)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path

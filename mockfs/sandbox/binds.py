"""Which bind targets would undo a seal of the run's root (builtin modules only).

The output directory and extra binds are the host's own directories, bound
over the sealed root at their own paths. Over ``/``, ``/proc``, ``/sys`` or
``/dev`` (or anything below the last three) such a bind would put the host's
files back where the runner sealed them, silently; so they are refused.
"""

from __future__ import annotations

import os

#: The sealed trees and the seal each holds.
SEALED_TREES = (
    ("/proc", "/proc (the machine's sysrq-trigger, sysctls and vmcore; the host's procfs read-only)"),
    ("/sys", "/sys (read-only, with the machine's /sys/kernel)"),
    ("/dev", "/dev (/dev/kmsg closed, a private /dev/shm)"),
)


def undone_seal(target: str | os.PathLike[str]) -> str | None:
    """The seal a bind at *target* would undo, or None when the target is harmless.

    Both the path as written (normalised: ``/proc/..`` is ``/``) and the path its
    links lead to on the host are checked.
    """
    raw = os.fspath(target)
    for path in dict.fromkeys((os.path.normpath(raw), os.path.realpath(raw))):
        if seal := sealed_tree(path):
            return seal
    return None


def sealed_tree(path: str) -> str | None:
    """The seal of the tree a normalised *path* lies in (``/`` itself included), or None."""
    if path in ("/", "//"):
        return "the root file system (an overlay: writes stay in the machine)"
    for top, seal in SEALED_TREES:
        if path == top or path.startswith(top + "/"):
            return seal
    return None


def bind_undoes_seal(target: str | os.PathLike[str], source: str | os.PathLike[str]) -> str | None:
    """The seal an extra bind of *source* at *target* would undo, or None.

    A source in the host's ``/``, /proc, /sys or /dev would bring the host's
    own files back writable; a target of ``/`` or a sealed tree's top would hide
    the seal itself; and /proc takes no binds below it. A host file of one's own
    at a new name under /sys or /dev (a configuration file, say) undoes nothing.
    """
    if seal := undone_seal(source):
        return seal
    path = os.path.normpath(os.fspath(target))
    if path in ("/", "//") or path == "/proc" or path.startswith("/proc/") or path in (t for t, _ in SEALED_TREES):
        return undone_seal(path)
    return None

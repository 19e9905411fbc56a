"""Where a campaign's examples write their dumps: a tmpfs of the campaign's own when it can have one.

Every example writes a whole dump (hundreds of MiB), which tmpfs takes much
faster than a disk; but the runner refuses an output directory under /dev
(its bind would undo the seal of /dev), so /dev/shm is out. As root, a
campaign that asks for it leaves the host's mount namespace and mounts a tmpfs
over its scratch directory: only this process and its children see the
mount, and it goes with them, even after a SIGKILL (the directory left on the
host is empty, and ``abi-harness cleanup`` removes it by its owner). Otherwise,
or when that fails, the scratch is a plain directory in ``$TMPDIR``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from mockfs.sandbox import syscalls
from mockfs.sandbox.scratch import Scratch


class Workspace:
    """The campaign's scratch directory; :meth:`cleanup` removes it (and its tmpfs)."""

    def __init__(self, tmpfs: bool = False) -> None:
        self._scratch = Scratch("abi-conform-")
        self.path = Path(self._scratch.name)
        self.tmpfs = False
        try:
            self.tmpfs = tmpfs and _private_tmpfs(self.path)
        except BaseException:  # a stop signal while it is being set up: leave nothing behind
            self.cleanup()
            raise

    def cleanup(self) -> None:
        if self.tmpfs:
            with contextlib.suppress(OSError):  # detached: an ended example may still hold a file there
                syscalls.umount_lazy(self.path)
        self._scratch.cleanup()


def _private_tmpfs(path: Path) -> bool:
    """Mount a tmpfs over *path*, seen by this process and its children only; whether it worked.

    Only as root (an ordinary user would need a user namespace, which would
    change who the runs think they are) and only while this process has a
    single thread (unshare(CLONE_NEWNS) refuses otherwise).
    """
    if os.geteuid() != 0:
        return False
    try:
        syscalls.private_mount_namespace()
    except OSError:
        return False
    try:
        syscalls.mount("tmpfs", path, "tmpfs", syscalls.MS_NOSUID | syscalls.MS_NODEV, "mode=0700")
    except OSError:
        return False
    return True

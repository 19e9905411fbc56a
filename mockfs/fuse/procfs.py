"""A FUSE file system to mount over /proc inside a private mount namespace.

The kernel refuses overlayfs on top of procfs, and a tmpfs full of bind mounts
freezes ``/proc/self`` on whichever process built it. What this module serves
instead is a one-level directory:

* the root listing is read live from a bind mount of the real procfs, plus
  ``vmcore`` and ``device-tree`` when the mock provides them;
* every real entry (``1``, ``meminfo``, ``sys`` ...) is a symlink into that bind,
  so everything below the first level is answered by the real procfs (and
  magic links such as ``/proc/<pid>/fd/0`` keep working);
* ``self`` and ``thread-self`` are symlinks computed per request from the pid
  that libfuse reports for the caller;
* ``vmcore`` is a read-only regular file, mode 0400 and owned by root like the
  kernel's, whose bytes are read from the mock's file (when the mock's file
  already looks like that, :mod:`mockfs.sandbox.inside` binds it over this entry
  instead, so the mock sees its readers directly);
* ``device-tree`` is a symlink to the mock's directory, as the real one is a
  symlink into /sys/firmware.

mfusepy is imported lazily, through :func:`mockfs.fuse.lib.load_mfusepy`.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from .lib import load_mfusepy

# Names whose symlink target depends on who asks.
_PER_CALLER = ("self", "thread-self")
_DIR_MODE = stat.S_IFDIR | 0o555
_LINK_MODE = stat.S_IFLNK | 0o777


def _tgid_of(real_proc: str, tid: int) -> int:
    """The thread-group id of ``tid``: libfuse reports thread ids, /proc/self names the process."""
    try:
        with open(f"{real_proc}/{tid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return tid


class ProcOverlay:
    """mfusepy operations for the /proc replacement described in the module docstring.

    ``real_proc`` is a directory where the real procfs is bind-mounted;
    ``mock_proc`` is the mock's ``proc`` directory (it may lack either entry, or
    not exist). ``caller_pid`` returns the pid of the process making the current
    request; it defaults to mfusepy's ``fuse_get_context``.
    """

    use_ns = True  # timestamps in nanoseconds; also silences mfusepy's warning

    def __init__(
        self,
        real_proc: str | Path,
        mock_proc: str | Path,
        *,
        caller_pid: Callable[[], int] | None = None,
        on_ready: Callable[[], None] | None = None,
        vmcore_mode: int = 0o400,
    ) -> None:
        self.real_proc = os.fspath(real_proc)
        self.vmcore = os.path.join(os.fspath(mock_proc), "vmcore")
        self.device_tree = os.path.join(os.fspath(mock_proc), "device-tree")
        self._caller_pid = caller_pid
        self._on_ready = on_ready
        self._root_stat = os.stat(self.real_proc)
        self._vmcore_mode = stat.S_IFREG | vmcore_mode  # the spec's mode of /proc/vmcore, whatever the mock says

    # -- helpers -----------------------------------------------------------

    def _pid(self) -> int:
        if self._caller_pid is None:
            self._caller_pid = lambda: load_mfusepy().fuse_get_context()[2]
        return self._caller_pid()

    def _mock_entries(self) -> dict[str, str]:
        """The mock entries present right now (the mock may add or drop them)."""
        found = {}
        if os.path.isfile(self.vmcore):
            found["vmcore"] = self.vmcore
        if os.path.isdir(self.device_tree):
            found["device-tree"] = self.device_tree
        return found

    @staticmethod
    def _name(path: str) -> str:
        name = path.lstrip("/")
        if not name or "/" in name:
            # Only the root is a directory here, so nothing deeper can exist.
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        return name

    def _times(self, st: os.stat_result) -> dict[str, int]:
        return {"st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns}

    # -- FUSE operations -----------------------------------------------------

    def init(self, path: str) -> None:
        """Tell whoever started the daemon that the mount answers."""
        if self._on_ready is not None:
            self._on_ready()

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        """Attributes: a 0555 root, 0400 root-owned vmcore, symlinks for the rest."""
        if path == "/":
            st = self._root_stat
            return {"st_mode": _DIR_MODE, "st_nlink": 2, "st_uid": 0, "st_gid": 0, **self._times(st)}
        name = self._name(path)
        if name == "vmcore" and os.path.isfile(self.vmcore):
            st = os.stat(self.vmcore)
            # The kernel's /proc/vmcore is root's with the spec's mode, whatever the mock says.
            return {"st_mode": self._vmcore_mode, "st_nlink": 1, "st_uid": 0, "st_gid": 0, "st_size": st.st_size,
                    **self._times(st)}
        target = self.readlink(path)
        st = self._root_stat
        return {"st_mode": _LINK_MODE, "st_nlink": 1, "st_uid": 0, "st_gid": 0, "st_size": len(target), **self._times(st)}

    def readlink(self, path: str) -> str:
        """Symlink targets: per-caller for self/thread-self, into the real procfs otherwise."""
        name = self._name(path)
        if name in _PER_CALLER:
            tid = self._pid()
            if tid <= 0:
                # The caller lives in a pid namespace this daemon cannot see.
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
            tgid = _tgid_of(self.real_proc, tid)
            return str(tgid) if name == "self" else f"{tgid}/task/{tid}"
        if name == "device-tree" and os.path.isdir(self.device_tree):
            return self.device_tree
        if name == "vmcore" and os.path.isfile(self.vmcore):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        target = f"{self.real_proc}/{name}"
        # lstat, not exists(): hidden thread ids resolve although unlisted, and
        # real entries that are themselves symlinks (mounts -> self/mounts) must count.
        os.lstat(target)
        return target

    def readdir(self, path: str, fh: int) -> Iterator[tuple[str, dict[str, int], int]]:
        """The live root listing: the real procfs's entries and the mock's."""
        if path != "/":
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        yield ".", {"st_mode": _DIR_MODE}, 0
        yield "..", {"st_mode": _DIR_MODE}, 0
        mock = self._mock_entries()
        for name in os.listdir(self.real_proc):
            if name not in mock:
                yield name, {"st_mode": _LINK_MODE}, 0
        for name in mock:
            yield name, {"st_mode": self._vmcore_mode if name == "vmcore" else _LINK_MODE}, 0

    def open(self, path: str, flags: int) -> int:
        """Only vmcore can be opened, and only for reading."""
        if self._name(path) != "vmcore":
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        if flags & os.O_ACCMODE != os.O_RDONLY:
            # Root passes the 0400 check in the kernel; the real vmcore has no write either.
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        return os.open(self.vmcore, os.O_RDONLY | os.O_CLOEXEC)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        """Bytes of the mock's vmcore, at any offset and size (direct_io passes the reader's)."""
        return os.pread(fh, size, offset)

    def release(self, path: str, fh: int) -> int:
        """Close the mock file behind a vmcore handle."""
        os.close(fh)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        """Report procfs's numbers, so df and friends see something sensible."""
        sv = os.statvfs(self.real_proc)
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_namemax")
        return {key: getattr(sv, key) for key in keys}


def serve(
    real_proc: str | Path, mock_proc: str | Path, mountpoint: str | Path, *, on_ready: Callable[[], None] | None = None,
    vmcore_mode: int = 0o400,
) -> None:
    """Mount :class:`ProcOverlay` on ``mountpoint`` and serve it until unmounted or killed.

    Blocks in the foreground. ``on_ready`` runs once the kernel has completed the
    FUSE handshake, i.e. when lookups through the mount stop blocking.
    """
    mfusepy = load_mfusepy()
    ops = ProcOverlay(real_proc, mock_proc, on_ready=on_ready, vmcore_mode=vmcore_mode)
    mfusepy.FUSE(
        ops,
        os.fspath(mountpoint),
        foreground=True,
        fsname="proc",
        subtype="abi-harness-proc",
        # Other users (a collector dropping privileges) must reach /proc too, and
        # the kernel enforces the modes we report (vmcore 0400) for them.
        allow_other=True,
        default_permissions=True,
        # vmcore: the reader's request size reaches us and a read after a change is fresh.
        direct_io=True,
        # Entry names map to fixed targets except self/thread-self, whose targets
        # are asked for on every resolution (symlink caching is not enabled).
        entry_timeout=1.0,
        attr_timeout=1.0,
        negative_timeout=0.0,
        # libfuse 3.14 complains on stderr unless the thread limits are explicit.
        max_threads=8,
        max_idle_threads=8,
    )

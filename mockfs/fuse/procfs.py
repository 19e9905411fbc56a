"""A FUSE file system to mount over /proc inside a private mount namespace.

The kernel refuses overlayfs on top of procfs, and a tmpfs full of bind mounts
freezes ``/proc/self`` on whichever process built it. What this module serves
instead is a one-level directory:

* the root listing is read live from a bind mount of the real procfs, plus the
  machine's entries (whatever the mock's ``proc`` directory holds: vmcore,
  device-tree, sys, sysrq-trigger, iomem, cmdline, kcore);
* every real entry (``1``, ``meminfo``...) is a symlink into that bind, so
  everything below the first level is answered by the real procfs (and magic
  links such as ``/proc/<pid>/fd/0`` keep working). In a run, "the real
  procfs" is the run's own (``run_proc``), which its init mounts in the run's
  PID namespace: the program sees its run's processes only, numbered as
  ``getpid()`` numbers them;
* ``self`` and ``thread-self`` are symlinks computed per request from the pid
  that libfuse reports for the caller (in the daemon's PID namespace, so
  translated through the host procfs's ``NStgid``/``NSpid`` into the run's);
* each machine entry is a regular file or a directory, root's, with the mock's
  mode (vmcore: the spec's), forwarding reads and writes to the mock's file;
  the runner binds the mock's own entries over them, so that the mock's daemon
  sees the callers directly. ``sys`` and ``sysrq-trigger`` are always there,
  so that they can be sealed even for a mock without them;
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
#: Entries that exist as bind targets whatever the mock holds: the runner seals them.
ALWAYS = ("sys", "sysrq-trigger")
_DIR_MODE = stat.S_IFDIR | 0o555
_LINK_MODE = stat.S_IFLNK | 0o777


def _ids_of(real_proc: str, tid: int) -> tuple[list[int], list[int]]:
    """The thread-group ids and thread ids of thread *tid*, one per PID namespace from *real_proc*'s down.

    libfuse reports thread ids, /proc/self names the process; a thread of a run (in a PID namespace
    below ours) has two of each, the second as the run numbers it.
    """
    tgids, tids = [tid], [tid]
    try:
        with open(f"{real_proc}/{tid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"NStgid:"):
                    tgids = [int(n) for n in line.split()[1:]]
                elif line.startswith(b"NSpid:"):
                    tids = [int(n) for n in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return tgids, tids


def _enoent() -> OSError:
    return OSError(errno.ENOENT, os.strerror(errno.ENOENT))


class ProcOverlay:
    """mfusepy operations for the /proc replacement described in the module docstring.

    ``real_proc`` is a directory where the real procfs is bind-mounted;
    ``mock_proc`` is the mock's ``proc`` directory (it may hold any of the
    machine's entries, or not exist). ``run_proc``, when given, is where the
    run's own procfs is (or will be) mounted: the entries link there, and
    callers in the run's PID namespace get its numbers. ``caller_pid`` returns
    the pid of the process making the current request; it defaults to
    mfusepy's ``fuse_get_context``.
    """

    use_ns = True  # timestamps in nanoseconds; also silences mfusepy's warning

    def __init__(
        self,
        real_proc: str | Path,
        mock_proc: str | Path,
        *,
        run_proc: str | Path | None = None,
        caller_pid: Callable[[], int] | None = None,
        on_ready: Callable[[], None] | None = None,
        vmcore_mode: int = 0o400,
    ) -> None:
        self.real_proc = os.fspath(real_proc)
        self.run_proc = os.fspath(run_proc) if run_proc is not None else None
        self.view = self.run_proc or self.real_proc  # where the entries link: the procfs the callers see
        self.mock_proc = os.fspath(mock_proc)
        self._caller_pid = caller_pid
        self._on_ready = on_ready
        self._root_stat = os.stat(self.real_proc)
        self._vmcore_mode = vmcore_mode  # the spec's mode of /proc/vmcore, whatever the mock says

    # -- helpers -----------------------------------------------------------

    def _pid(self) -> int:
        if self._caller_pid is None:
            self._caller_pid = lambda: load_mfusepy().fuse_get_context()[2]
        return self._caller_pid()

    def _mock(self, name: str) -> str:
        return os.path.join(self.mock_proc, name)

    def _mock_entries(self) -> list[str]:
        """The machine's entries present right now (the mock may add or drop them)."""
        try:
            names = os.listdir(self.mock_proc)
        except OSError:
            names = []
        return sorted(set(names) | {n for n in ALWAYS if os.path.lexists(os.path.join(self.real_proc, n))})

    def _is_mock(self, name: str) -> bool:
        if os.path.lexists(self._mock(name)):
            return True
        return name in ALWAYS and os.path.lexists(os.path.join(self.real_proc, name))

    @staticmethod
    def _name(path: str) -> str:
        name = path.lstrip("/")
        if not name or "/" in name:
            # Only the root is a directory here, so nothing deeper can exist.
            raise _enoent()
        return name

    def _times(self, st: os.stat_result) -> dict[str, int]:
        return {"st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns}

    def _entry_stat(self, name: str) -> dict[str, int]:
        """A machine entry: a directory or a regular file, root's, with the mock's (or the real) mode."""
        source = self._mock(name) if os.path.exists(self._mock(name)) else os.path.join(self.real_proc, name)
        try:
            st = os.stat(source)
        except OSError:
            raise _enoent() from None
        mode = self._vmcore_mode if name == "vmcore" else stat.S_IMODE(st.st_mode)
        kind = stat.S_IFDIR if stat.S_ISDIR(st.st_mode) else stat.S_IFREG
        size = st.st_size if kind == stat.S_IFREG else 0
        return {"st_mode": kind | mode, "st_nlink": 2 if kind == stat.S_IFDIR else 1, "st_uid": 0, "st_gid": 0,
                "st_size": size, **self._times(st)}

    # -- FUSE operations -----------------------------------------------------

    def init(self, path: str) -> None:
        """Tell whoever started the daemon that the mount answers."""
        if self._on_ready is not None:
            self._on_ready()

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        """Attributes: a 0555 root, the machine's entries as they are, symlinks for the rest."""
        if path == "/":
            return {"st_mode": _DIR_MODE, "st_nlink": 2, "st_uid": 0, "st_gid": 0, **self._times(self._root_stat)}
        name = self._name(path)
        if self._is_mock(name) and name != "device-tree":
            return self._entry_stat(name)
        target = self.readlink(path)
        return {"st_mode": _LINK_MODE, "st_nlink": 1, "st_uid": 0, "st_gid": 0, "st_size": len(target),
                **self._times(self._root_stat)}

    def readlink(self, path: str) -> str:
        """Symlink targets: per-caller for self/thread-self, into the real procfs otherwise."""
        name = self._name(path)
        if name in _PER_CALLER:
            tid = self._pid()
            if tid <= 0:
                # The caller lives in a pid namespace this daemon cannot see.
                raise _enoent()
            tgids, tids = _ids_of(self.real_proc, tid)
            if self.run_proc is None or len(tgids) > 1:  # the run's numbers, under the run's /proc
                tgid, tid = tgids[min(1, len(tgids) - 1)], tids[min(1, len(tids) - 1)]
                return str(tgid) if name == "self" else f"{tgid}/task/{tid}"
            # A caller outside the run (its runner): its own entry, in the host's procfs.
            return f"{self.real_proc}/{tgids[0]}" + ("" if name == "self" else f"/task/{tid}")
        if name == "device-tree" and os.path.isdir(self._mock(name)):
            return self._mock(name)
        if self._is_mock(name):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        target = f"{self.view}/{name}"
        # lstat, not exists(): hidden thread ids resolve although unlisted, and
        # real entries that are themselves symlinks (mounts -> self/mounts) must count.
        os.lstat(target)
        return target

    def readdir(self, path: str, fh: int) -> Iterator[tuple[str, dict[str, int], int]]:
        """The live root listing: the real procfs's entries and the machine's."""
        if path != "/":
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        yield ".", {"st_mode": _DIR_MODE}, 0
        yield "..", {"st_mode": _DIR_MODE}, 0
        mock = self._mock_entries()
        for name in os.listdir(self.view):
            if name not in mock:
                yield name, {"st_mode": _LINK_MODE}, 0
        for name in mock:
            yield name, {"st_mode": _LINK_MODE if name == "device-tree" else stat.S_IFREG}, 0

    def open(self, path: str, flags: int) -> int:
        """A machine file opened through to the mock's (the modes are enforced by the kernel already)."""
        name = self._name(path)
        source = self._mock(name)
        if not self._is_mock(name) or not os.path.isfile(source):
            raise _enoent()
        if name == "vmcore" and flags & os.O_ACCMODE != os.O_RDONLY:
            # Root passes the 0400 check in the kernel; the real vmcore has no write either.
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        return os.open(source, (flags & os.O_ACCMODE) | os.O_CLOEXEC)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        """Bytes of the mock's file, at any offset and size (direct_io passes the reader's)."""
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        return 0  # `echo c > file` truncates first; procfs files ignore it

    def release(self, path: str, fh: int) -> int:
        """Close the mock file behind a handle."""
        os.close(fh)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        """Report procfs's numbers, so df and friends see something sensible."""
        sv = os.statvfs(self.real_proc)
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_namemax")
        return {key: getattr(sv, key) for key in keys}


def serve(
    real_proc: str | Path, mock_proc: str | Path, mountpoint: str | Path, *, run_proc: str | Path | None = None,
    on_ready: Callable[[], None] | None = None, vmcore_mode: int = 0o400,
) -> None:
    """Mount :class:`ProcOverlay` on ``mountpoint`` and serve it until unmounted or killed.

    Blocks in the foreground. ``on_ready`` runs once the kernel has completed the
    FUSE handshake, i.e. when lookups through the mount stop blocking.
    """
    from .binding import Fuse  # imports the binding

    ops = ProcOverlay(real_proc, mock_proc, run_proc=run_proc, on_ready=on_ready, vmcore_mode=vmcore_mode)
    Fuse(
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

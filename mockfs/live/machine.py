"""The live machine behind the mock: a fixture plus everything that changes over its life.

A :class:`LiveMachine` is a fixture's machine in one of its kernels (the
production kernel, ``armed``, or the ``capture`` kernel holding the dump) as
its dump ABI shows it: which files exist (:mod:`~mockfs.live.tree`, from the
spec by platform and state), what they read (:mod:`~mockfs.live.attributes`),
what writes do (:mod:`~mockfs.live.stores`), how the machine moves through its
life (:mod:`~mockfs.live.life`: crashes, reboots, kexec loads, from the spec's
lifecycle), and what /proc/vmcore returns once memory was given back
(:mod:`~mockfs.live.memory`). A :class:`~mockfs.judge.Judge` watches the
collector. It does no I/O of its own beyond reading the host's /proc/sys; the
FUSE filesystem in :mod:`mockfs.fuse.fs` is a thin view of it, and whoever
owns it can persist its state (``on_change``).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable

from abi_specs import AbiFile, WriteRejected, builtin_spec
from abi_specs.lifecycle import KernelState
from mockfs.judge import Judge, Violation
from mockfs.machine import VmcoreImage

from . import attributes, procfiles, stores
from .memory import CrashedMemory
from .state import MachineState
from .sysctl import Sysctls
from .tree import Node, build_tree, rel

#: The hidden file through which the runner asks the machine about sealed system calls.
CONTROL = ".control"


class LiveMachine:
    """*image*'s machine in *state* (default: its capture kernel, right after the crash)."""

    def __init__(self, image: VmcoreImage, quirks: frozenset[str] | None = None, state: MachineState | None = None,
                 judge: Judge | None = None, host_proc: str = "/proc") -> None:
        self.image = image
        self.fixture = image.fixture
        self.spec = builtin_spec()
        self.platform = self.spec.platforms[self.fixture.platform]
        self.lifecycle = self.spec.lifecycle(self.fixture.platform)
        self.version = self.fixture.version
        self.sysfs = self.spec.sysfs_era(self.version)  # which sysfs generation the fixture's kernel has
        self.page_size = self.fixture.page_size
        # Kernel behaviours: the spec's for this kernel version, as the fixture overrides them.
        self.quirks = quirks if quirks is not None else self.spec.enabled_quirks(self.version, dict(self.fixture.quirks))
        self.lock = threading.RLock()
        self.state = state or self.initial_state("capture")
        self.judge = judge or Judge()
        self.phyp = self.fixture.phyp_layout() if self.fixture.platform == "phyp" else None
        self.areas = self.phyp.areas(self.page_size) if self.phyp is not None else None
        self.memory = CrashedMemory(image, self.phyp)
        self.memory.freed = self.state.freed
        self.sysctls = Sysctls(self.state, host_proc)
        self.on_change: Callable[[LiveMachine], None] | None = None
        self.on_crash: Callable[[LiveMachine, int], None] | None = None  # kills the run of the writer (pid)
        self.run_namespaces: set[int | None] = set()  # the mount namespaces of the runs using this machine
        self._tree: tuple[KernelState, dict[str, Node]] | None = None
        self._first_event = len(self.state.events)  # the events of this run start here
        self.write_detail: dict[str, object] = {}  # set by a store under the lock; see write_traced
        self.write_count = 0  # the bytes of the write being stored (a store sees only the parsed values)

    def initial_state(self, kernel: str) -> MachineState:
        """A fresh machine: just booted (``armed``), or just crashed (``capture``)."""
        boot = self.lifecycle.boot(self.version)
        state = MachineState(boot, crash_size=self.reserved_crash_size())
        if kernel == "capture":
            state.kernel = self.lifecycle.captured(self.version)
            state.crash_size = 0
            state.dump = 1
            if self.dump_failed:
                state.kernel, _ = self.lifecycle.fire(state.kernel, "failed-dump", self.version)
        return state

    @property
    def dump_failed(self) -> bool:
        """The firmware's header flags the dump as failed (DUMP_ERROR_FLAG): nothing to collect."""
        return self.fixture.phyp is not None and self.fixture.phyp.dump_status == "error"

    def reserved_crash_size(self) -> int:
        """The production kernel's crashkernel= reservation (kdump), 0 when none."""
        ck = self.fixture.crashkernel
        return ck[1] if ck and self.fixture.platform == "kdump" else 0

    def quirk_on(self, entry: AbiFile, name: str) -> bool:
        """Whether this machine's kernel has the behaviour *name* of *entry*."""
        if not any(q.name == name for q in entry.quirks):
            raise ValueError(f"{entry.name} has no quirk {name!r}")
        return name in self.quirks

    def changed(self) -> None:
        """The state changed: let the owner persist it."""
        if self.on_change is not None:
            self.on_change(self)

    # -- the tree -----------------------------------------------------------------------

    def nodes(self) -> dict[str, Node]:
        """Every entry of the mock tree now (except inside /proc/sys), by path relative to the mount root."""
        key = self.state.kernel
        if self._tree is None or self._tree[0] != key:
            tree = build_tree(self.spec.files_for(self.fixture.platform, key, self.version), self.version)
            tree[CONTROL] = Node("file", 0o600)
            self._tree = (key, tree)
        return self._tree[1]

    def lookup(self, path: str) -> Node | None:
        """The node at *path* (relative to the mount root), /proc/sys included."""
        path = path.strip("/")
        node = self.nodes().get(path)
        if node is not None or not path.startswith("proc/sys/"):
            return node
        entry = self.sysctls.entry(path.removeprefix("proc/sys/"))
        if entry is None:
            return None
        return Node("dir" if entry.is_dir else "file", entry.mode, self.spec.get("proc/sys"), path)

    def listdir(self, path: str) -> list[str] | None:
        """The names in the directory *path*, or None when it is not one."""
        path = path.strip("/")
        node = self.lookup(path)
        if node is None or node.kind != "dir":
            return None
        if path == "proc/sys" or path.startswith("proc/sys/"):
            return self.sysctls.listdir(path.removeprefix("proc/sys").lstrip("/"))
        depth = path.count("/") + 1 if path else 0
        nodes = self.nodes()
        # The control file answers lookups only: listings show just the kernel's files.
        return list(dict.fromkeys(sorted(p.split("/")[depth] for p in nodes
                                         if p and p != CONTROL and (not path or p.startswith(path + "/")))))

    def size_of(self, node: Node) -> int:
        """st_size as the kernel reports it: sysfs a fixed size, procfs the real size or 0."""
        entry = node.entry
        if entry is None:
            return 0
        if entry.kind == "core":
            return self.image.size
        if entry.kind == "property":
            return len(self.read_file(entry))
        if entry.kind == "procfs":
            return len(procfiles.kcore(self.fixture)) if entry.name == "proc/kcore" else 0
        return self.page_size  # sysfs gives every attribute a page

    # -- reading ABI files --------------------------------------------------------------

    def values_of(self, entry: AbiFile) -> dict[str, int | str]:
        """The field values *entry* shows now."""
        return attributes.values_of(entry, self.fixture, self.state, self.phyp, self.quirks)

    def read_file(self, entry: AbiFile, node: Node | None = None) -> bytes:
        """The whole content of an attribute, property or procfs file, rendered fresh."""
        if entry.kind == "procfs":
            return self._read_procfs(entry, node)
        return attributes.read_file(entry, self.fixture, self.state, self.phyp, self.quirks)

    def _read_procfs(self, entry: AbiFile, node: Node | None) -> bytes:
        if entry.name == "proc/cmdline":
            return procfiles.cmdline(self.fixture, self.state).encode()
        if entry.name == "proc/iomem":
            return procfiles.iomem(self.fixture, self.state).encode()
        if entry.name == "proc/kcore":
            return procfiles.kcore(self.fixture)
        if entry.name == "proc/sys" and node is not None:
            return self.sysctls.read(node.target.removeprefix("proc/sys/"))
        raise WriteRejected(entry.path, errno.EACCES, "write-only")

    # -- /proc/vmcore -------------------------------------------------------------------

    def open_vmcore(self) -> None:
        """Called on open(): after fadump released the dump, the file is gone."""
        if not self.state.dump_active:
            self.judge.opened_after_release()
            raise WriteRejected("/proc/vmcore", errno.ENOENT, "removed by release_mem")

    def read_vmcore(self, offset: int, length: int) -> bytes:
        """What a read of /proc/vmcore returns now, recording what was read."""
        if not self.state.dump_active:
            # fs/proc/inode.c: once the entry is removed, reads of files opened before fail.
            raise WriteRejected("/proc/vmcore", errno.EIO, "removed by release_mem")
        data = self.image.read(offset, length)
        spans = self.memory.spans(offset, offset + len(data))
        with self.lock:
            for a, b, src in spans:
                self.judge.saw_read(src, src + b - a)
            data, reused = self.memory.overwrite_freed(data, offset, spans)
        for source, size, file_offset in reused:
            self.judge.read_released(source, size, file_offset)
        return data

    # -- opening ----------------------------------------------------------------------

    @staticmethod
    def check_open(entry: AbiFile, mode: int, flags: int) -> None:
        """sysfs refuses at open(2), root included, what the file's mode does not allow.

        kernfs_fop_open() (and sysfs_open_file() before kernfs) fails with
        EACCES an open for writing of a file without write bits, and one for
        reading of a file without read bits: the kernel's own check, not the
        permission check root passes.
        """
        if entry.kind != "attribute":
            return
        access = flags & os.O_ACCMODE
        if access in (os.O_WRONLY, os.O_RDWR) and not mode & 0o222:
            raise WriteRejected(entry.name, errno.EACCES, "opened for writing, but the file has no write bit")
        if access in (os.O_RDONLY, os.O_RDWR) and not mode & 0o444:
            raise WriteRejected(entry.name, errno.EACCES, "opened for reading, but the file has no read bit")

    # -- writes -------------------------------------------------------------------------

    def write_file(self, entry: AbiFile, data: bytes, node: Node | None = None, writer: int = 0) -> int:
        """A write(2) of *data* to *entry*: returns the count or raises WriteRejected."""
        return self.write_traced(entry, data, node, writer)[0]

    def write_traced(self, entry: AbiFile, data: bytes, node: Node | None = None,
                     writer: int = 0) -> tuple[int, dict[str, object]]:
        """:meth:`write_file`, and what this write did for the trace (release_region: frames freed,
        counters, re-registration; empty for other files): each write's own, even when writes race."""
        if not data:
            return self.sysfs.empty_write, {}  # sysfs returns without calling store()
        if entry.name == "proc/sys" and node is not None:
            with self.lock:
                count = self.sysctls.write(node.target.removeprefix("proc/sys/"), data)
            self.changed()
            return count, {}
        if entry.write is None:
            # A kobj_attribute with a write bit but no store method: kobj_attr_store() says EIO.
            raise WriteRejected(entry.name, errno.EIO, "the attribute has no store method")
        data = data[:self.sysfs.write_limit(self.page_size)]
        name = entry.link_to or entry.name
        target = self.spec.get(name)
        with self.lock:
            self.write_detail = {}  # a store that has something to tell sets it; read back under the same lock
            self.write_count = len(data)
            stores.check_state(self, target, name)
            try:
                values = entry.write.parse(data, entry.name)
            except WriteRejected as exc:
                self.judge.malformed_write(entry.path, exc.reason, data)
                raise
            stores.STORES[name](self, target, values, writer)
            detail, self.write_detail = self.write_detail, {}
        self.changed()
        return len(data), detail

    def fire(self, name: str, **detail: object) -> list[str]:
        """Apply a lifecycle transition (the caller holds the lock); returns the transitions that ran.

        Raises :class:`~abi_specs.lifecycle.TransitionRefused` when it does not apply.
        """
        after, ran = self.lifecycle.fire(self.state.kernel, name, self.version)
        self.state.kernel = after
        for step in ran:
            self.state.event(step, **detail)
        if "boot" in ran:  # a fresh production kernel: nothing loaded, nothing written
            self.state.crash_size = self.reserved_crash_size()
            self.state.crash_kernel = self.state.kexec_kernel = None
            self.state.sysctls.clear()
            self.state.bootargs = ""
        if "crash" in ran and after.kernel == "capture":  # a new dump, nothing of it read or released
            self.state.crash_size = 0
            self.state.sysctls.clear()
            self.state.new_dump()
            self.memory.freed = self.state.freed
            self.judge.reset()
            if self.dump_failed:  # the capture kernel finds the error flag: it registers again at once
                self.state.kernel, more = self.lifecycle.fire(self.state.kernel, "failed-dump", self.version)
                for step in more:
                    self.state.event(step, **detail)
                ran = [*ran, *more]
        return ran

    # -- the end ------------------------------------------------------------------------

    def finish(self) -> list[Violation]:
        """Violations that only show at the end (memory still held); all of them."""
        with self.lock:
            final = []
            if self.state.kernel.kernel == "capture" and self.state.dump_active:
                if self.areas is not None:
                    final += self.judge.phyp_held(self.areas, self.state.freed)
                if self.fixture.platform == "fadump":
                    final += self.judge.fadump_held()
            self.judge.conclude(final)
            return self.judge.all_violations

    def summary(self) -> dict[str, object]:
        """What happened, for reports."""
        with self.lock:
            judged = self.judge.summary()
            state = self.state
            return {
                "platform": self.fixture.platform,
                "fixture": self.fixture.name,
                "kernel": state.kernel.kernel,
                "armed": self.lifecycle.is_armed(state.kernel),
                "read_ranges": judged["read_ranges"],
                "bytes_read": judged["bytes_read"],
                "releases": list(state.releases),  # the first MAX_RELEASES
                "release_count": state.release_count,
                "vmcore_present": state.dump_active,
                "reregistered": state.kernel["registered"] and state.kernel.kernel == "capture",
                "events": state.events[self._first_event:],
                "sysctls": dict(state.sysctls),
                "violations": judged["violations"],
                "violation_counts": judged["violation_counts"],
            }


def control_path(mock_root: str) -> str:
    """Where the control file of the mock at *mock_root* is."""
    return f"{mock_root.rstrip('/')}/{rel(CONTROL)}"

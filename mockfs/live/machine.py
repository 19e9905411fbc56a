"""The live machine behind the mock: a fixture plus everything that changes.

A :class:`LiveMachine` is the capture kernel of a fixture's crashed machine as
the dump ABI shows it: which files exist (:mod:`~mockfs.live.tree`, from the
spec by platform and state), what they read (:mod:`~mockfs.live.attributes`),
what writes do (:mod:`~mockfs.live.stores`), and what /proc/vmcore returns
once memory was given back (:mod:`~mockfs.live.memory`). A
:class:`~mockfs.judge.Judge` watches the collector. It does no I/O; the FUSE
filesystem in :mod:`mockfs.fuse.fs` is a thin view of it.
"""

from __future__ import annotations

import errno
import threading

from abi_specs import AbiFile, WriteRejected, builtin_spec
from abi_specs.phyp import quirks as phyp_quirks
from mockfs.judge import Judge, Violation
from mockfs.machine import VmcoreImage

from . import attributes, stores
from .memory import CrashedMemory
from .state import MachineState
from .tree import Node, build_tree


class LiveMachine:
    """The capture kernel of *image*'s fixture, as its dump ABI shows it."""

    def __init__(self, image: VmcoreImage, quirks: frozenset[str] | None = None) -> None:
        self.image = image
        self.fixture = image.fixture
        self.spec = builtin_spec()
        self.platform = self.spec.platforms[self.fixture.platform]
        self.page_size = self.fixture.page_size
        self.quirks = phyp_quirks() if quirks is None else quirks
        self.lock = threading.RLock()
        self.state = MachineState()
        self.judge = Judge()
        self.phyp = self.fixture.phyp_layout() if self.fixture.platform == "phyp" else None
        self.areas = self.phyp.areas(self.page_size) if self.phyp is not None else None
        self.memory = CrashedMemory(image, self.phyp)
        self._files = list(self.spec.files_for(self.fixture.platform, "capture"))
        self._tree: tuple[tuple[bool, bool], dict[str, Node]] | None = None

    # -- the tree -----------------------------------------------------------------------

    def nodes(self) -> dict[str, Node]:
        """Every entry of the mock tree now, by path relative to the mount root."""
        key = (self.state.vmcore_present, self.state.phyp_dump_active)
        if self._tree is None or self._tree[0] != key:
            files = [f for f in self._files if f.kind != "core" or self.state.vmcore_present]
            if self.state.phyp_dump_active:
                files.append(self.spec.get("phyp_dump_active"))
            self._tree = (key, build_tree(files))
        return self._tree[1]

    def size_of(self, entry: AbiFile) -> int:
        """st_size as the kernel reports it: sysfs a fixed size, procfs the real size."""
        if entry.kind == "core":
            return self.image.size
        if entry.kind == "property":
            return len(self.read_file(entry))
        return self.platform.sysfs.attribute_size

    # -- reading ABI files --------------------------------------------------------------

    def values_of(self, entry: AbiFile) -> dict[str, int | str]:
        """The field values *entry* shows now."""
        return attributes.values_of(entry, self.fixture, self.state, self.phyp)

    def read_file(self, entry: AbiFile) -> bytes:
        """The whole content of an attribute or property, rendered fresh."""
        return attributes.read_file(entry, self.fixture, self.state, self.phyp)

    # -- /proc/vmcore -------------------------------------------------------------------

    def open_vmcore(self) -> None:
        """Called on open(): after fadump released the dump, the file is gone."""
        if not self.state.vmcore_present:
            self.judge.opened_after_release()
            raise WriteRejected("/proc/vmcore", errno.ENOENT, "removed by release_mem")

    def read_vmcore(self, offset: int, length: int) -> bytes:
        """What a read of /proc/vmcore returns now, recording what was read."""
        data = self.image.read(offset, length)
        spans = self.memory.spans(offset, offset + len(data))
        with self.lock:
            for a, b, src in spans:
                self.judge.saw_read(src, src + b - a)
            data, reused = self.memory.overwrite_freed(data, offset, spans)
        for source, size, file_offset in reused:
            self.judge.read_released(source, size, file_offset)
        return data

    # -- writes -------------------------------------------------------------------------

    def write_file(self, entry: AbiFile, data: bytes) -> int:
        """A write(2) of *data* to *entry*: returns the count or raises WriteRejected."""
        if not data:
            return self.platform.sysfs.empty_write  # sysfs returns without calling store()
        data = data[:self.platform.write_limit(self.page_size)]
        name = entry.link_to or entry.name
        target = self.spec.get(name)
        assert entry.write is not None
        with self.lock:
            stores.check_state(self, target, name)
            try:
                values = entry.write.parse(data, entry.name)
            except WriteRejected as exc:
                self.judge.malformed_write(entry.path, exc.reason, data)
                raise
            stores.STORES[name](self, target, values)
        return len(data)

    # -- the end ------------------------------------------------------------------------

    def finish(self) -> list[Violation]:
        """Violations that only show at the end (memory still held); all of them."""
        with self.lock:
            if self.areas is not None:
                self.judge.phyp_held(self.areas)
            if self.fixture.platform == "fadump" and self.state.dump_active:
                self.judge.fadump_held()
            return list(self.judge.violations)

    def summary(self) -> dict[str, object]:
        """What happened, for reports."""
        with self.lock:
            judged = self.judge.summary()
            return {
                "platform": self.fixture.platform,
                "fixture": self.fixture.name,
                "read_ranges": judged["read_ranges"],
                "bytes_read": judged["bytes_read"],
                "releases": list(self.state.releases),
                "vmcore_present": self.state.vmcore_present,
                "reregistered": self.state.phyp_dump_active,
                "violations": judged["violations"],
                "violation_counts": judged["violation_counts"],
            }

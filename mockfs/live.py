"""The live machine behind the mock: a fixture plus everything that changes.

A :class:`LiveMachine` is the capture kernel of a fixture's crashed machine as
the dump ABI shows it: which files exist (from :mod:`abi_specs`, by platform
and state), what they read, what writes do to the machine (the parsing rules
and errno come from the spec, a release's effect from
:func:`abi_specs.phyp.release`), and what /proc/vmcore returns once memory was
given back. It also watches the collector: every breach of the ABI's contract
becomes a :class:`Violation` with its evidence. It does no I/O; the FUSE
filesystem in :mod:`mockfs.fs` is a thin view of it.
"""

from __future__ import annotations

import errno
import threading
from dataclasses import dataclass, field

from abi_specs import AbiFile, WriteRejected, builtin_spec
from abi_specs.phyp import PhypAreas, ReleaseCounters, release, saved_at
from abi_specs.phyp import quirks as phyp_quirks
from mockfs.intervals import IntervalSet
from mockfs.machine import VmcoreImage

#: What a page given back to the capture kernel holds when read again.
REUSED_FILL = 0xA5
#: The token firmware reports for ibm,configure-kernel-dump (any value will do).
RTAS_DUMP_TOKEN = 0x2C
#: The sysfs buffer of a VMCOREINFO note is a page plus the note's headers.
VMCOREINFO_NOTE_EXTRA = 36
VMCOREINFO_ADDRESS = 0x1FE3000
#: Violations of one kind recorded with evidence; later ones are only counted.
MAX_PER_KIND = 20


@dataclass(frozen=True)
class Violation:
    """A breach of the ABI's contract by the collector, with the evidence."""

    kind: str
    message: str
    evidence: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "message": self.message, "evidence": self.evidence}


@dataclass(frozen=True)
class Node:
    """One entry of the mock tree: a directory, an ABI file or a symbolic link."""

    kind: str  # "dir", "file" or "link"
    mode: int
    entry: AbiFile | None = None
    target: str = ""


def _rel(path: str) -> str:
    return path.lstrip("/")


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
        self.violations: list[Violation] = []
        self._kinds: dict[str, int] = {}
        self.releases: list[dict[str, object]] = []
        self.read_sources = IntervalSet()  # physical source bytes the collector read
        self.requested = IntervalSet()  # ranges it asked to release (as written)
        self.freed = IntervalSet()  # physical bytes given back to the capture kernel
        self.vmcore_present = True
        self.dump_active = True
        self.registered = False
        self.phyp_dump_active = False
        self.bootargs = ""
        self.counters = ReleaseCounters()
        self.areas: PhypAreas | None = None
        if self.fixture.platform == "phyp":
            lay = self.fixture.phyp_layout()
            self.layout = lay
            self.areas = PhypAreas(self.page_size, lay.reserve_start, lay.reserve_size, lay.scratch_start, lay.scratch_size)
        self._loads = [(p.p_offset, p.p_offset + p.p_filesz, p.p_paddr) for p in image.phdrs[1:]]
        self._files = list(self.spec.files_for(self.fixture.platform, "capture"))
        self._tree: tuple[tuple[bool, bool], dict[str, Node]] | None = None

    # -- the tree -----------------------------------------------------------------------

    def nodes(self) -> dict[str, Node]:
        """Every entry of the mock tree now, by path relative to the mount root."""
        key = (self.vmcore_present, self.phyp_dump_active)
        if self._tree is None or self._tree[0] != key:
            self._tree = (key, self._build_tree())
        return self._tree[1]

    def _build_tree(self) -> dict[str, Node]:
        files = list(self._files)
        if self.phyp_dump_active:
            files.append(self.spec.get("phyp_dump_active"))
        tree: dict[str, Node] = {"": Node("dir", 0o755)}
        for f in files:
            if f.kind == "core" and not self.vmcore_present:
                continue
            rel = _rel(f.path)
            parts = rel.split("/")
            for i in range(1, len(parts)):
                tree.setdefault("/".join(parts[:i]), Node("dir", 0o755))
            if f.link_to:
                tree[rel] = Node("link", 0o777, f, f.link_to)
            else:
                tree[rel] = Node("file", f.mode, f)
        return tree

    def size_of(self, entry: AbiFile) -> int:
        """st_size as the kernel reports it: sysfs says a page, procfs the real size."""
        if entry.kind == "core":
            return self.image.size
        if entry.kind == "property":
            return len(self.read_file(entry))
        return 4096

    # -- reading ABI files ----------------------------------------------------------------

    def values_of(self, entry: AbiFile) -> dict[str, int | str]:
        """The field values *entry* shows now."""
        name = entry.link_to or entry.name
        fields = [f.name for f in entry.read.printf.fields] if entry.read else []
        if name == "release_region":
            return dict(zip(fields, self.layout.pairs()))
        simple: dict[str, int | str] = {
            "phyp_dump_active": 1,
            "fadump/enabled": 1,
            "fadump/registered": int(self.registered),
            "fadump/mem_reserved": self.fixture.fadump.reserve_size if self.fixture.fadump else 0,
            "fadump/hotplug_ready": 1,
            "fadump/bootargs_append": self.bootargs,
            "kexec_crash_loaded": 0,  # the capture kernel has no crash kernel of its own
            "kexec_crash_size": 0,
        }
        if name == "vmcoreinfo":
            return {"address": VMCOREINFO_ADDRESS, "size": self.page_size + VMCOREINFO_NOTE_EXTRA}
        return {fields[0]: simple[name]}

    def read_file(self, entry: AbiFile) -> bytes:
        """The whole content of an attribute or property, rendered fresh."""
        if entry.kind == "property":
            head, records = self._property(entry.name)
            return entry.cells.pack(records, head)
        if entry.read is None:
            raise WriteRejected(entry.name, errno.EACCES, "write-only")
        return entry.read.format(self.values_of(entry)).encode("latin-1")

    def _property(self, name: str) -> tuple[dict[str, int], list[dict[str, int]]]:
        phyp = self.fixture.phyp
        cpu = phyp.cpu_state_size if phyp else 0x10000
        hpte = phyp.hpte_size if phyp else 0x1000
        if name == "ibm,configure-kernel-dump":
            return {}, [{"token": RTAS_DUMP_TOKEN}]
        if name == "ibm,configure-kernel-dump-sizes":
            return {}, [{"section_id": 1, "size": cpu}, {"section_id": 2, "size": hpte}]
        # ibm,kernel-dump: the header registered before the crash, as firmware completed it.
        if phyp:
            lay = self.layout
            rmo = (lay.rmr_copy_len, lay.rmr_copy_addr)
            dest = (lay.cpu_addr, lay.hpte_addr)
        else:
            fad = self.fixture.fadump
            rmo = (fad.boot_memory_size, fad.reserve_start + cpu + hpte)
            dest = (fad.reserve_start, fad.reserve_start + cpu)
        head = {"version": 1, "num_sections": 3, "status": 0x8000 | 0x4000, "first_offset_section": 40,
                "dump_disk_section": 0, "block_num_dd": 0, "num_of_blocks_dd": 0, "offset_dd": 0, "maxtime_to_auto": 0}
        sections = [(0x0001, 0, cpu, dest[0]), (0x0002, 0, hpte, dest[1]), (0x0011, 0, rmo[0], rmo[1])]
        records = [
            {"dump_flags": 1, "source_type": t, "error_flags": 0, "source_address": src, "source_length": n,
             "length_copied": n, "destination_address": d}
            for t, src, n, d in sections
        ]
        return head, records

    # -- /proc/vmcore -------------------------------------------------------------------

    def source_of(self, paddr: int) -> int:
        """Where the capture machine holds the crashed kernel's physical byte *paddr*.

        On phyp the hypervisor copied the low 256 MiB to the scratch area before
        the reboot; everything else is where it was.
        """
        if self.areas is None:
            return paddr
        return saved_at(paddr, self.layout.rmr_copy_addr, self.layout.rmr_copy_len)

    def _source_spans(self, offset: int, end: int) -> list[tuple[int, int, int]]:
        """(file offset, file end, source address) of the memory inside ``[offset, end)``."""
        spans = []
        for lo, hi, paddr in self._loads:
            a, b = max(lo, offset), min(hi, end)
            if a >= b:
                continue
            p = paddr + a - lo
            # Split where the phyp RMR copy ends: the two halves live far apart.
            rmr = self.layout.rmr_copy_len if self.areas is not None else 0
            if p < rmr < p + (b - a):
                cut = a + rmr - p
                spans.append((a, cut, self.source_of(p)))
                spans.append((cut, b, self.source_of(rmr)))
            else:
                spans.append((a, b, self.source_of(p)))
        return spans

    def open_vmcore(self) -> None:
        """Called on open(): after fadump released the dump, the file is gone."""
        if not self.vmcore_present:
            self.violate("open-after-release", "opened /proc/vmcore after release_mem removed it")
            raise WriteRejected("/proc/vmcore", errno.ENOENT, "removed by release_mem")

    def read_vmcore(self, offset: int, length: int) -> bytes:
        """What a read of /proc/vmcore returns now, recording what was read."""
        data = self.image.read(offset, length)
        end = offset + len(data)
        spans = self._source_spans(offset, end)
        with self.lock:
            for a, b, src in spans:
                self.read_sources.add(src, src + b - a)
            if not self.freed:
                return data
            buf = None
            for a, b, src in spans:
                for fs, fe in self.freed.overlap(src, src + b - a):
                    if buf is None:
                        buf = bytearray(data)
                    lo = a - offset + fs - src
                    buf[lo:lo + fe - fs] = bytes([REUSED_FILL]) * (fe - fs)
                    self.violate("read-released", "read memory already given back to the system",
                                 {"source": fs, "length": fe - fs, "file_offset": a + fs - src})
            return data if buf is None else bytes(buf)

    # -- writes ---------------------------------------------------------------------------

    def violate(self, kind: str, message: str, evidence: dict[str, object] | None = None) -> None:
        """Record a violation; repeats of a kind beyond MAX_PER_KIND are only counted."""
        with self.lock:
            seen = self._kinds.get(kind, 0)
            self._kinds[kind] = seen + 1
            if seen < MAX_PER_KIND:
                self.violations.append(Violation(kind, message, evidence or {}))

    def write_file(self, entry: AbiFile, data: bytes) -> int:
        """A write(2) of *data* to *entry*: returns the count or raises WriteRejected."""
        limit = self.platform.write_limit(self.page_size)
        if not data:
            return 0  # sysfs returns 0 without calling store()
        data = data[:limit]
        name = entry.link_to or entry.name
        with self.lock:
            if name in ("fadump/registered", "fadump/bootargs_append") and self.dump_active:
                raise WriteRejected(entry.name, errno.EPERM, "a dump is active")
            if name == "fadump/release_mem" and not self.dump_active:
                self.violate("release-twice", "wrote release_mem after the dump was released")
                raise WriteRejected(entry.name, errno.EPERM, "no dump is active")
            try:
                values = entry.write.parse(data, entry.name)
            except WriteRejected as exc:
                self.violate("malformed-write", f"{entry.path}: {exc.reason}", {"data": data.decode("latin-1")})
                raise
            handler = {
                "release_region": self._release_region,
                "fadump/release_mem": self._release_mem,
                "fadump/registered": self._registered,
                "fadump/bootargs_append": self._bootargs,
                "kexec_crash_size": self._crash_size,
            }[name]
            handler(values)
        return len(data)

    def _release_region(self, values: dict[str, int | str]) -> None:
        start, length = int(values["start"]), int(values["length"])
        areas = self.areas
        assert areas is not None
        self._judge_release(start, length)
        effect = release(areas, self.counters, start, length, self.quirks)
        self.counters = effect.counters
        ps = self.page_size
        first = max(effect.first_pfn * ps, areas.reserve_start)
        last = min((effect.last_pfn + 1) * ps, areas.reserve_end)
        if effect.walks_off_memory:
            self.violate("kernel-walks-off-memory", "this write makes the kernel free page frames past the end of RAM",
                         {"start": start, "length": length, "last_pfn": effect.last_pfn})
        self.freed.add(first, last)
        if effect.reregistered:
            self.phyp_dump_active = True
        self.releases.append({"start": start, "length": length, "freed_start": first, "freed_end": last,
                              "pages": effect.pages, "reregistered": effect.reregistered})

    def _judge_release(self, start: int, length: int) -> None:
        """Violations of what the collector asked for (not of the kernel's rounding)."""
        areas = self.areas
        end = start + length
        ev = {"start": start, "length": length}
        if start < areas.reserve_start or end > areas.reserve_end:
            self.violate("release-outside-reserved", "released a range outside the reserved area",
                         {**ev, "reserved_start": areas.reserve_start, "reserved_end": areas.reserve_end})
        bounds = {b for a, n in zip(self.layout.pairs()[::2], self.layout.pairs()[1::2]) for b in (a, a + n)}
        for point in (start, end):
            if point % self.page_size and point not in bounds:
                self.violate("release-unaligned", f"release boundary {point:#x} is not page aligned", ev)
                break
        if self.requested.overlap(start, end):
            self.violate("release-overlap", "released a range that overlaps an earlier release", ev)
        unread = self.read_sources.gaps(max(start, areas.reserve_start), min(end, areas.reserve_end))
        if unread:
            self.violate("release-unread", "released memory that was never read from /proc/vmcore",
                         {**ev, "first_unread": unread[0][0], "unread_bytes": sum(b - a for a, b in unread)})
        self.requested.add(start, end)

    def _release_mem(self, values: dict[str, int | str]) -> None:
        fad = self.fixture.fadump
        unread = self.read_sources.gaps(0, self.fixture.ram_end)
        if unread:
            self.violate("release-unread", "released the dump before reading all of /proc/vmcore",
                         {"first_unread": unread[0][0], "unread_bytes": sum(b - a for a, b in unread)})
        self.vmcore_present = False
        self.dump_active = False
        if fad:
            self.freed.add(fad.reserve_start, fad.reserve_start + fad.reserve_size)
        self.freed.add(0, self.fixture.ram_end)
        self.releases.append({"release_mem": 1})

    def _registered(self, values: dict[str, int | str]) -> None:
        self.registered = bool(values["registered"])

    def _bootargs(self, values: dict[str, int | str]) -> None:
        self.bootargs = str(values["params"])

    def _crash_size(self, values: dict[str, int | str]) -> None:
        if int(values["bytes"]) > 0:  # the capture kernel reserved nothing: it can only stay 0
            raise WriteRejected("kexec_crash_size", errno.EINVAL, "larger than the current size (0)")

    # -- the end ------------------------------------------------------------------------

    def finish(self) -> list[Violation]:
        """Violations that only show at the end (memory still held); all of them."""
        with self.lock:
            if self.fixture.platform == "phyp" and self.areas is not None:
                held = self.requested.gaps(self.areas.reserve_start, self.areas.reserve_end)
                if held:
                    self.violate("memory-held", "reserved memory was never released",
                                 {"first": held[0][0], "bytes": sum(b - a for a, b in held)})
            if self.fixture.platform == "fadump" and self.dump_active:
                self.violate("memory-held", "release_mem was never written: the dump memory is still reserved")
            return list(self.violations)

    def summary(self) -> dict[str, object]:
        """What happened, for reports."""
        with self.lock:
            return {
                "platform": self.fixture.platform,
                "fixture": self.fixture.name,
                "read_ranges": [{"start": a, "end": b} for a, b in self.read_sources],
                "bytes_read": self.read_sources.total(),
                "releases": list(self.releases),
                "vmcore_present": self.vmcore_present,
                "reregistered": self.phyp_dump_active,
                "violations": [v.as_dict() for v in self.violations],
                "violation_counts": dict(self._kinds),
            }

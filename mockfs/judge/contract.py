"""The judgement of a collector: every breach of the dump ABI's contract, with its evidence.

A :class:`Judge` watches what a collector does to a live machine (what it read
of /proc/vmcore, what it asked to release, what it wrote) and records a
:class:`Violation` for each breach: reading memory already given back,
releasing memory it never read, releasing outside the reserved area, unaligned
or overlapping releases, malformed writes, opening /proc/vmcore after fadump
released it, and, at the end, reserved memory still held. It holds no machine
state of its own beyond what it saw; the live machine tells it what happened.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from abi_specs.intervals import IntervalSet
from abi_specs.phyp import PhypAreas

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


def _counted(counts: dict[str, int], final: list[Violation]) -> dict[str, int]:
    total = dict(counts)
    for v in final:
        total[v.kind] = total.get(v.kind, 0) + 1
    return total


class Judge:
    """Watches one collector run on one machine and records the violations."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget everything: a new dump is judged afresh."""
        with self.lock:
            self.violations: list[Violation] = []
            self.counts: dict[str, int] = {}
            # What the end of a run finds (memory still held): judged again at every end,
            # so a machine that lives on is not blamed for what a later run put right.
            self.final: list[Violation] = []
            self.read_sources = IntervalSet()  # physical source bytes the collector read
            self.requested = IntervalSet()  # ranges it asked to release (as written)

    def to_dict(self) -> dict[str, object]:
        """What was seen so far, for a machine that lives across runs."""
        with self.lock:
            return {"read_sources": [list(r) for r in self.read_sources], "requested": [list(r) for r in self.requested],
                    "violations": [v.as_dict() for v in self.violations], "counts": dict(self.counts)}

    @classmethod
    def from_dict(cls, doc: dict[str, object]) -> Judge:
        judge = cls()
        judge.read_sources = IntervalSet((int(a), int(b)) for a, b in doc.get("read_sources", []))  # type: ignore[attr-defined]
        judge.requested = IntervalSet((int(a), int(b)) for a, b in doc.get("requested", []))  # type: ignore[attr-defined]
        judge.violations = [Violation(v["kind"], v["message"], v.get("evidence", {}))  # type: ignore[index]
                            for v in doc.get("violations", [])]  # type: ignore[attr-defined]
        judge.counts = dict(doc.get("counts", {}))  # type: ignore[call-overload]
        return judge

    def violate(self, kind: str, message: str, evidence: dict[str, object] | None = None) -> None:
        """Record a violation; repeats of a kind beyond MAX_PER_KIND are only counted."""
        with self.lock:
            seen = self.counts.get(kind, 0)
            self.counts[kind] = seen + 1
            if seen < MAX_PER_KIND:
                self.violations.append(Violation(kind, message, evidence or {}))

    # -- what the collector did ---------------------------------------------------------

    def saw_read(self, start: int, end: int) -> None:
        """The collector read source bytes ``[start, end)`` of the crashed machine."""
        with self.lock:
            self.read_sources.add(start, end)

    def read_released(self, source: int, length: int, file_offset: int) -> None:
        self.violate("read-released", "read memory already given back to the system",
                     {"source": source, "length": length, "file_offset": file_offset})

    def opened_after_release(self) -> None:
        self.violate("open-after-release", "opened /proc/vmcore after release_mem removed it")

    def malformed_write(self, path: str, reason: str, data: bytes) -> None:
        self.violate("malformed-write", f"{path}: {reason}", {"data": data.decode("latin-1")})

    def released_twice(self) -> None:
        self.violate("release-twice", "wrote release_mem after the dump was released")

    def walks_off_memory(self, start: int, length: int, last_pfn: int) -> None:
        self.violate("kernel-walks-off-memory", "this write makes the kernel free page frames past the end of RAM",
                     {"start": start, "length": length, "last_pfn": last_pfn})

    def release_region(self, start: int, length: int, areas: PhypAreas, bounds: set[int]) -> None:
        """Judge a write of ``start length`` to release_region (what was asked, not the kernel's rounding).

        *bounds* are the addresses release_region itself printed: a range the
        kernel reported unaligned may be released up to its own ends.
        """
        end = start + length
        ev = {"start": start, "length": length}
        with self.lock:
            if start < areas.reserve_start or end > areas.reserve_end:
                self.violate("release-outside-reserved", "released a range outside the reserved area",
                             {**ev, "reserved_start": areas.reserve_start, "reserved_end": areas.reserve_end})
            for point in (start, end):
                if point % areas.page_size and point not in bounds:
                    self.violate("release-unaligned", f"release boundary {point:#x} is not page aligned", ev)
                    break
            if self.requested.overlap(start, end):
                self.violate("release-overlap", "released a range that overlaps an earlier release", ev)
            unread = self.read_sources.gaps(max(start, areas.reserve_start), min(end, areas.reserve_end))
            if unread:
                self.violate("release-unread", "released memory that was never read from /proc/vmcore",
                             {**ev, "first_unread": unread[0][0], "unread_bytes": sum(b - a for a, b in unread)})
            self.requested.add(start, end)

    def release_mem(self, ram_end: int) -> None:
        """Judge fadump's release_mem: everything should have been read first."""
        with self.lock:
            unread = self.read_sources.gaps(0, ram_end)
        if unread:
            self.violate("release-unread", "released the dump before reading all of /proc/vmcore",
                         {"first_unread": unread[0][0], "unread_bytes": sum(b - a for a, b in unread)})

    # -- the end ------------------------------------------------------------------------

    def conclude(self, final: list[Violation]) -> None:
        """The end of a run: *final* replaces what earlier ends found."""
        with self.lock:
            self.final = list(final)

    @staticmethod
    def phyp_held(areas: PhypAreas, freed: IntervalSet) -> list[Violation]:
        """At the end of a phyp run: reserved page frames the kernel still holds (never freed)."""
        held = freed.gaps(areas.reserve_start, areas.reserve_end)
        if not held:
            return []
        frames = sum(-(-b // areas.page_size) - a // areas.page_size for a, b in held)
        return [Violation("memory-held", "reserved memory was never released",
                          {"first": held[0][0], "bytes": sum(b - a for a, b in held), "frames": frames})]

    @staticmethod
    def fadump_held() -> list[Violation]:
        return [Violation("memory-held", "release_mem was never written: the dump memory is still reserved")]

    @property
    def all_violations(self) -> list[Violation]:
        """Everything seen during the dump's life, and what the last end found."""
        with self.lock:
            return [*self.violations, *self.final]

    def summary(self) -> dict[str, object]:
        with self.lock:
            return {
                "read_ranges": [{"start": a, "end": b} for a, b in self.read_sources],
                "bytes_read": self.read_sources.total(),
                "violations": [v.as_dict() for v in [*self.violations, *self.final]],
                "violation_counts": _counted(self.counts, self.final),
            }

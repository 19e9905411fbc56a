"""What changes on a machine over its life: the state its ABI files show and its history.

:class:`MachineState` is plain data with a JSON form (:meth:`to_dict` /
:meth:`from_dict`), so a machine directory can keep it between runs: which
kernel runs and what is registered or loaded (a
:class:`~abi_specs.lifecycle.KernelState`), the crashkernel reservation, the
kexec'd kernels, the sysctls written, what was released of the current dump,
and every event of the machine's life.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from abi_specs.intervals import IntervalSet
from abi_specs.lifecycle import KernelState
from abi_specs.phyp import ReleaseCounters

#: Events kept with their details; later ones are only counted.
MAX_EVENTS = 500
#: Releases of one dump kept with their details; later ones are only counted (a fuzzer writes thousands).
MAX_RELEASES = 1000


@dataclass
class MachineState:
    """The mutable part of a machine (the fixture is the rest)."""

    kernel: KernelState  # which kernel runs, what holds
    crash_size: int = 0  # kexec_crash_size: the crashkernel= reservation of this kernel
    crash_kernel: dict[str, Any] | None = None  # the loaded crash kernel (kexec -p)
    kexec_kernel: dict[str, Any] | None = None  # the kernel loaded for a kexec reboot (kexec -l)
    bootargs: str = ""  # fadump/bootargs_append
    sysctls: dict[str, str] = field(default_factory=dict)  # /proc/sys writes, by path under /proc/sys
    counters: ReleaseCounters = field(default_factory=ReleaseCounters)  # phyp: freed so far
    freed: IntervalSet = field(default_factory=IntervalSet)  # source bytes of this dump given back
    releases: list[dict[str, object]] = field(default_factory=list)  # the first MAX_RELEASES of this dump, in order
    release_count: int = 0  # every release of this dump, kept or not
    dump: int = 0  # how many dumps this machine has held (1 for a machine that starts in capture)
    events: list[dict[str, Any]] = field(default_factory=list)
    event_count: int = 0

    @property
    def dump_active(self) -> bool:
        return self.kernel["dump_active"]

    def event(self, kind: str, **detail: Any) -> dict[str, Any]:
        """Record an event of the machine's life (a crash, a reboot, a load...)."""
        self.event_count += 1
        entry = {"event": kind, "time": round(time.time(), 3), "kernel": self.kernel.kernel, **detail}
        if len(self.events) < MAX_EVENTS:
            self.events.append(entry)
        return entry

    def record_release(self, record: dict[str, object]) -> None:
        """Count a release of this dump; keep its details while there is room."""
        self.release_count += 1
        if len(self.releases) < MAX_RELEASES:
            self.releases.append(record)

    def new_dump(self) -> None:
        """A crash left a new dump: nothing of it was released yet."""
        self.dump += 1
        self.counters = ReleaseCounters()
        self.freed = IntervalSet()
        self.releases = []
        self.release_count = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel.as_dict(),
            "crash_size": self.crash_size,
            "crash_kernel": self.crash_kernel,
            "kexec_kernel": self.kexec_kernel,
            "bootargs": self.bootargs,
            "sysctls": dict(self.sysctls),
            "counters": {"reserved": self.counters.reserved, "scratch": self.counters.scratch},
            "freed": [list(r) for r in self.freed],
            "releases": list(self.releases),
            "release_count": self.release_count,
            "dump": self.dump,
            "events": list(self.events),
            "event_count": self.event_count,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> MachineState:
        kernel = doc["kernel"]
        return cls(
            kernel=KernelState(kernel["kernel"], frozenset(kernel["true"])),
            crash_size=int(doc.get("crash_size", 0)),
            crash_kernel=doc.get("crash_kernel"),
            kexec_kernel=doc.get("kexec_kernel"),
            bootargs=str(doc.get("bootargs", "")),
            sysctls=dict(doc.get("sysctls", {})),
            counters=ReleaseCounters(**doc.get("counters", {})),
            freed=IntervalSet((int(a), int(b)) for a, b in doc.get("freed", [])),
            releases=list(doc.get("releases", [])),
            release_count=int(doc.get("release_count", len(doc.get("releases", [])))),
            dump=int(doc.get("dump", 0)),
            events=list(doc.get("events", [])),
            event_count=int(doc.get("event_count", 0)),
        )

"""What changes on a live machine: the state its ABI files show and its writes change."""

from __future__ import annotations

from dataclasses import dataclass, field

from abi_specs.phyp import ReleaseCounters


@dataclass
class MachineState:
    """The mutable part of a machine (the fixture is the rest)."""

    vmcore_present: bool = True  # fadump's release_mem removes /proc/vmcore
    dump_active: bool = True  # a dump is waiting in this (capture) kernel
    registered: bool = False  # fadump: a dump area is registered with firmware
    phyp_dump_active: bool = False  # phyp: the dump area was registered again
    bootargs: str = ""  # fadump/bootargs_append
    counters: ReleaseCounters = field(default_factory=ReleaseCounters)  # phyp: freed so far
    releases: list[dict[str, object]] = field(default_factory=list)  # every release, in order

"""A fixture described as plain data: what ``abi-harness fixture show`` prints."""

from __future__ import annotations

from typing import Any

from .image import VmcoreImage
from .model import PAGE_KINDS, Fixture


def fixture_summary(fx: Fixture) -> dict[str, Any]:
    """Everything a person wants to know of a synthesized fixture (numbers as integers)."""
    image = VmcoreImage(fx)
    doc: dict[str, Any] = {
        "kind": "synthesized",
        "name": fx.name,
        "platform": fx.platform,
        "arch": fx.arch,
        "page_size": fx.page_size,
        "memory_bytes": fx.ram_size,
        "ram": [{"start": s, "size": z} for s, z in fx.ram],
        "cpus": len(fx.cpus),
        "pids": [c.pid for c in fx.cpus],
        "osrelease": fx.osrelease,
        "hostname": fx.hostname,
        "seed": fx.seed,
        "crashtime": fx.crashtime,
        "log_format": fx.log_format,
        "messages": [{"text": r.text, "ts_nsec": r.ts_nsec} for r in fx.log],
        "pages": {k: list(fx.planted(k)) for k in PAGE_KINDS},
        "overlays": [{"paddr": o.paddr, "size": len(o.data)} for o in fx.overlays],
        "vmcore_size": image.size,
    }
    if fx.phyp is not None:
        lay = fx.phyp_layout()
        names = ("CPU", "HPTE", "DUMP", "DUMP")
        pairs = lay.pairs()
        doc["release_region"] = [{"name": n, "start": pairs[2 * i], "length": pairs[2 * i + 1]} for i, n in enumerate(names)]
        doc["phyp"] = {"reserved": list(lay.reserved_range), "scratch": list(lay.scratch_range)}
    if fx.fadump is not None:
        fa = fx.fadump_areas()
        doc["fadump"] = {"boot_memory_size": fa.boot_memory_size, "reserve_start": fa.reserve_start,
                         "reserve_size": fa.reserve_size, "boot_memory_destination": fa.boot_memory_destination}
    return doc

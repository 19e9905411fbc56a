"""A fixture described as plain data: what ``abi-harness fixture show`` prints."""

from __future__ import annotations

from typing import Any

from abi_specs import builtin_spec
from abi_specs.phyp import shown_pairs

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
        doc.update(_phyp_summary(fx))
    if fx.fadump is not None:
        fa = fx.fadump_areas()
        doc["fadump"] = {"boot_memory_size": fa.boot_memory_size, "reserve_start": fa.reserve_start,
                         "reserve_size": fa.reserve_size, "boot_memory_destination": fa.boot_memory_destination}
    return doc


def _phyp_summary(fx: Fixture) -> dict[str, Any]:
    """What the capture kernel's release_region prints, and the firmware's areas behind it.

    release_region shows the kernel's own dump header (offsets, zero lengths,
    then the one meaningful pair: the reserved remainder); where the firmware
    saved each section is ibm,kernel-dump's, a different thing.
    """
    assert fx.phyp is not None
    lay = fx.phyp_layout()
    spec = builtin_spec()
    entry = spec.get("release_region")
    assert entry.read is not None
    document_form = "document_form" in spec.enabled_quirks(fx.version, dict(fx.quirks))
    fields = [f.name for f in entry.read.printf.fields]
    shown = entry.read.format(dict(zip(fields, shown_pairs(lay, False, document_form)))).rstrip("\n")
    pairs = lay.pairs()
    return {
        # A failed dump (DUMP_ERROR_FLAG) has no release_region at all.
        "release_region": None if fx.phyp.dump_status == "error" else shown,
        "firmware_areas": [{"name": n, "start": pairs[2 * i], "length": pairs[2 * i + 1]}
                           for i, n in enumerate(("CPU", "HPTE", "DUMP"))],
        "phyp": {"reserved": list(lay.reserved_range), "scratch": list(lay.scratch_range),
                 "dump_status": fx.phyp.dump_status},
    }

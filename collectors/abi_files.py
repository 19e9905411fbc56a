"""The machine's dump ABI as vmcore-save sees it: which platform, where its memory is, why there is no dump.

Every path is the spec's canonical one under a *root* (``/`` on a real
machine, a mock's mount point in tests). Problems are :class:`Failure`\\ s
with one line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from abi_specs import AbiError, builtin_spec
from abi_specs.phyp import firmware_areas

from .errors import Failure

_SPEC = builtin_spec()
RELEASE_REGION = _SPEC.get("release_region").path
FADUMP_RELEASE = (_SPEC.get("fadump/release_mem").path, _SPEC.get("fadump_release_mem").path)
VMCORE = _SPEC.get("vmcore").path


def abi_path(root: Path, canonical: str) -> Path:
    """Where the canonical ABI path *canonical* is under *root*."""
    return root / canonical.lstrip("/")


def detect_platform(root: Path) -> tuple[str, Path | None]:
    """(platform, the file that gives memory back) from the ABI files present."""
    region = abi_path(root, RELEASE_REGION)
    if region.exists():
        return "phyp", region
    for name in FADUMP_RELEASE:
        path = abi_path(root, name)
        if path.exists():
            return "fadump", path
    return "kdump", None


def write_attribute(path: Path, text: str) -> None:
    """One write(2) of *text*, as the kernel's store method expects."""
    data = text.encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            count = os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        raise Failure(f"{path}: writing {text.strip()!r} failed: {exc.strerror}") from None
    if count != len(data):
        raise Failure(f"{path}: writing {text.strip()!r} took {count} of {len(data)} bytes")


def phyp_ranges(root: Path) -> tuple[list[tuple[int, int]], tuple[int, int] | None]:
    """release_region's (start, length) pairs, parsed by the spec, and the RMR copy.

    A real kernel prints its own dump header: offsets and zero lengths for the
    firmware's three areas, then the reserved remainder. Where the areas really
    are is in the firmware's header (ibm,kernel-dump), read then. The 2007
    document's form, with the areas in the line itself, is taken as it is.
    """
    spec = _SPEC.get("release_region")
    assert spec.read is not None
    path = abi_path(root, RELEASE_REGION)
    try:
        values = spec.read.parse(path.read_bytes())
    except OSError as exc:
        raise Failure(f"{path}: cannot read: {exc.strerror}") from None
    except AbiError as exc:
        raise Failure(f"{path}: unexpected content: {exc}") from None
    pairs = [(str(p["name"]), int(p["start"]), int(p["length"])) for p in spec.read.ranges_of(values)]
    if not all(length for _, _, length in pairs[:3]):
        found = phyp_firmware_areas(root)
        pairs = [(name, *found[name]) if name in found else (name, start, length)
                 for name, start, length in pairs[:3]] + pairs[3:]
    ranges = [(start, length) for _, start, length in pairs if length]
    # The first DUMP pair is the hypervisor's copy of the crashed kernel's low memory.
    rmr = next(((start, length) for name, start, length in pairs if name == "DUMP" and length), None)
    return ranges, rmr


def phyp_firmware_areas(root: Path) -> dict[str, tuple[int, int]]:
    """Where firmware saved the CPU state, the page table and the low memory (ibm,kernel-dump)."""
    entry = _SPEC.get("ibm,kernel-dump")
    assert entry.cells is not None
    path = abi_path(root, entry.path)
    try:
        header = entry.cells.unpack(path.read_bytes(), entry.name)
    except OSError as exc:
        raise Failure(f"{path}: cannot read the firmware's dump header: {exc.strerror}") from None
    except AbiError as exc:
        raise Failure(f"{path}: unexpected content: {exc}") from None
    found = firmware_areas(header)
    missing = [n for n in ("CPU", "HPTE", "DUMP") if n not in found]
    if missing:
        raise Failure(f"{path}: the firmware's dump header has no {', '.join(missing)} section")
    return found


def no_dump_cause(root: Path) -> str:
    """Why there is no /proc/vmcore, as precisely as the machine tells."""
    entry = _SPEC.get("ibm,kernel-dump")
    assert entry.cells is not None
    header = abi_path(root, entry.path)
    try:
        status = int(entry.cells.unpack(header.read_bytes(), entry.name)["head"]["status"])  # type: ignore[index]
    except (OSError, AbiError, KeyError, TypeError, ValueError):
        status = 0
    if status & entry.constants["status"]["DUMP_ERROR_FLAG"]:
        return (f"{header}: the firmware flagged the dump as failed (DUMP_ERROR_FLAG): there is no crash dump to "
                "save; the kernel registered a new dump area at boot")
    return f"{abi_path(root, VMCORE)}: no such file: no crash dump to save (not a capture kernel?)"

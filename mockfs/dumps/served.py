"""Imported and recorded cores served like any fixture: by ``mount``, ``run`` and ``--machine``.

A core file says its architecture, its memory (the PT_LOADs), its CPUs (the
NT_PRSTATUS notes) and usually its kernel release (VMCOREINFO); the
manifest's ``[machine]`` table says the rest (the platform, the crashkernel=
area: what ``fixture record`` saw). :func:`fixture_of` turns that into a
:class:`~mockfs.machine.Fixture` for the live machine, whose
``core_manifest`` names the manifest; :func:`open_image` then serves the
core's own bytes instead of synthesizing them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from abi_specs.intervals import IntervalSet
from mockfs.machine import Fixture, FixtureError, VmcoreImage, builtin_fixture_names, load_fixture, resolve_fixture
from mockfs.machine.model import Cpu, Fadump, PhypDump

from .kind import is_imported_manifest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .imported import ImportedCore


def load_imported(path: str | os.PathLike[str]) -> ImportedCore:
    """:func:`mockfs.dumps.imported.load_imported`, whose module is imported only for a core's machine."""
    from .imported import load_imported

    return load_imported(path)


@dataclass(frozen=True)
class ServedLoad:
    """One PT_LOAD of a served core: where its bytes are in the file and which memory they hold."""

    offset: int
    size: int
    paddr: int


@dataclass(frozen=True)
class ServedLayout:
    """The part of a core's layout the live machine needs."""

    loads: tuple[ServedLoad, ...]


class CoreFileImage:
    """A real core's bytes as the machine's /proc/vmcore (``size``, ``read``, ``layout``, ``fixture``)."""

    def __init__(self, core: ImportedCore, fixture: Fixture) -> None:
        self.core = core
        self.fixture = fixture
        self.size = core.size
        self.page_size = fixture.page_size
        self.layout = ServedLayout(tuple(ServedLoad(ld.offset, ld.filesz, ld.paddr) for ld in core.head.loads
                                         if ld.filesz))

    def read(self, offset: int, length: int) -> bytes:
        return self.core.read(offset, length)


def fixture_of(core: ImportedCore, manifest: str | os.PathLike[str]) -> Fixture:
    """The machine a core came from, as a fixture the live machine serves (its bytes stay the core's)."""
    machine = core.machine
    platform = str(machine.get("platform", "kdump"))
    head = core.head
    page = int(machine.get("page_size") or head.page_size() or 0) or 4096
    ram = IntervalSet()
    for ld in head.loads:
        if ld.memsz:
            # Whole pages for the machine model (a real range may end mid-page: e820 does that);
            # the kernel text load lies inside a RAM range and merges away.
            ram.add(ld.paddr // page * page, -(-(ld.paddr + ld.memsz) // page) * page)
    if not ram:
        raise FixtureError(str(manifest), "core", "the core has no PT_LOAD: no memory to serve")
    ck = machine.get("crashkernel")
    crashkernel = (int(ck["start"]), int(ck["size"])) if ck else None
    osrelease = str(machine.get("osrelease") or head.vmcoreinfo().get("OSRELEASE") or "")
    pids = core.pids() or [1]
    fixture = Fixture(
        name=core.name,
        platform=platform,
        arch=core.arch,
        ram=tuple((a, b - a) for a, b in ram),
        cpus=tuple(Cpu(pid) for pid in pids),
        osrelease=osrelease,
        kernel_version=str(machine.get("kernel_version", "")),
        page_size=page,
        hostname=str(machine.get("hostname", "recorded")),
        crashkernel=crashkernel,
        core_manifest=str(Path(manifest).resolve()),
        **_dump_areas(platform, core, manifest),
    )
    return fixture.validate(str(manifest))


def _recorded_property(core: ImportedCore, name: str) -> dict[str, Any] | None:
    """A device-tree property as the recording read it, unpacked by the spec."""
    from abi_specs import builtin_spec

    entry = builtin_spec().get(name)
    raw = core.recorded.get("capture", {}).get("files", {}).get(entry.path, {})
    if not raw.get("hex"):
        return None
    assert entry.cells is not None
    return entry.cells.unpack(bytes.fromhex(raw["hex"]), entry.name)


def _dump_areas(platform: str, core: ImportedCore, manifest: str | os.PathLike[str]) -> dict[str, Any]:
    """The dump areas of a phyp or fadump machine, from the firmware's properties the recording read."""
    from abi_specs import builtin_spec
    from abi_specs.phyp import firmware_areas

    if platform == "kdump":
        return {}
    header = _recorded_property(core, "ibm,kernel-dump")
    if header is None:
        raise FixtureError(str(manifest), "recorded", f"a {platform} core needs the recorded ibm,kernel-dump property "
                           "(record it with abi-harness fixture record)")
    areas = firmware_areas(header)
    if platform == "fadump":
        return {"fadump": Fadump(boot_memory_size=areas["DUMP"][1])}
    status = builtin_spec().get("ibm,kernel-dump").constants["status"]
    failed = int(header["head"]["status"]) & status["DUMP_ERROR_FLAG"]  # type: ignore[index]
    return {"phyp": PhypDump(cpu_state_size=areas["CPU"][1], hpte_size=areas["HPTE"][1],
                             dump_status="error" if failed else "ok")}


def resolve_served(name_or_path: str | os.PathLike[str]) -> Fixture:
    """Any fixture a machine can run: a built-in, a synthesized manifest, an imported or recorded core."""
    text = str(name_or_path)
    if text not in builtin_fixture_names() and is_imported_manifest(text):
        return fixture_of(load_imported(text), text)
    return resolve_fixture(text)


def open_image(fixture: Fixture) -> VmcoreImage | CoreFileImage:
    """What /proc/vmcore of *fixture* holds: the core's bytes, or the synthesized ones."""
    if fixture.core_manifest:
        return CoreFileImage(load_imported(fixture.core_manifest), fixture)
    return VmcoreImage(fixture)


def write_machine_fixture(fixture: Fixture, path: Path) -> None:
    """Keep *fixture* in a machine directory: a manifest, or for a core its manifest with the core's absolute path."""
    if not fixture.core_manifest:
        from mockfs.machine import write_fixture

        write_fixture(fixture, path)
        return
    core = load_imported(fixture.core_manifest)
    path.write_text(tomli_w.dumps(core.manifest()), encoding="utf-8")  # manifest() writes the absolute path


def load_machine_fixture(path: Path) -> Fixture:
    """The fixture kept by :func:`write_machine_fixture`."""
    if is_imported_manifest(path):
        return fixture_of(load_imported(path), path)
    return load_fixture(path)

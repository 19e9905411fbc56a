"""What the ABI files of a live machine read: attribute values and device-tree properties.

The formats are the spec's; this module only says which value each field
holds, from the fixture and the machine's state.
"""

from __future__ import annotations

import errno

from abi_specs import AbiFile, WriteRejected, builtin_spec
from abi_specs.phyp import PhypLayout, shown_pairs
from mockfs.machine import Fixture

from .state import MachineState

# Two choices of the mock's machine, not facts of the ABI: the token its firmware
# gives ibm,configure-kernel-dump (the kernel calls whatever token is there), and
# where its capture kernel keeps the VMCOREINFO note.
RTAS_DUMP_TOKEN = 0x2C
VMCOREINFO_ADDRESS = 0x1FE3000


def values_of(entry: AbiFile, fixture: Fixture, state: MachineState, phyp: PhypLayout | None,
              quirks: frozenset[str] = frozenset()) -> dict[str, int | str]:
    """The field values *entry* shows now (*quirks*: the kernel behaviours the machine has)."""
    name = entry.link_to or entry.name
    fields = [f.name for f in entry.read.printf.fields] if entry.read else []
    if name == "release_region":
        assert phyp is not None
        rebased = state.kernel.kernel == "capture" and state.kernel["registered"]
        return dict(zip(fields, shown_pairs(phyp, rebased, "document_form" in quirks)))
    if name == "vmcoreinfo":
        note = builtin_spec().get(name).constants["note"]
        return {"address": VMCOREINFO_ADDRESS, "size": fixture.page_size + 2 * note["head_bytes"] + note["name_bytes"]}
    kernel = state.kernel
    simple: dict[str, int | str] = {
        "phyp_dump_active": 1,  # exists only while registered, and says phyp_dump was on at boot
        "fadump/enabled": 1,
        "fadump/registered": int(kernel["registered"]),
        "fadump/mem_reserved": fixture.fadump_areas().reserve_size if fixture.fadump else 0,
        "fadump/hotplug_ready": 1,
        "fadump/bootargs_append": state.bootargs,
        "kexec/loaded": int(kernel["loaded"]),
        "kexec/crash_loaded": int(kernel["crash_loaded"]),
        "kexec/crash_size": state.crash_size,
        "kexec/crash_elfcorehdr_size": elfcorehdr_size(fixture),
        "cpu/crash_hotplug": int(updates_elfcorehdr(state)),
        "memory/crash_hotplug": int(updates_elfcorehdr(state)),
    }
    return {fields[0]: simple[name]}


def elfcorehdr_size(fixture: Fixture) -> int:
    """crash_elfcorehdr_size on x86: an ELF header and a program header per CPU, the VMCOREINFO
    and kernel text notes, and room for every hot-pluggable memory range (the spec's constant)."""
    from abi_specs.elf import EHDR_SIZE, PHDR_SIZE

    ranges = builtin_spec().get("kexec/crash_elfcorehdr_size").constants["x86"]["CRASH_MAX_MEMORY_RANGES"]
    return EHDR_SIZE + (len(fixture.cpus) + 2 + ranges) * PHDR_SIZE


def updates_elfcorehdr(state: MachineState) -> bool:
    """Whether the loaded crash kernel's ELF header is updated by the kernel on hot-plug
    (loaded with kexec_file_load, or kexec_load with KEXEC_UPDATE_ELFCOREHDR)."""
    from abi_specs.kexec import kexec_load_flags

    loaded = state.crash_kernel
    if not loaded or not state.kernel["crash_loaded"]:
        return False
    if loaded.get("syscall") == "kexec_file_load":
        return True
    return bool(int(loaded.get("flags", 0)) & kexec_load_flags()["KEXEC_UPDATE_ELFCOREHDR"])


def read_file(entry: AbiFile, fixture: Fixture, state: MachineState, phyp: PhypLayout | None,
              quirks: frozenset[str] = frozenset()) -> bytes:
    """The whole content of an attribute or property, rendered fresh."""
    if entry.kind == "property":
        assert entry.cells is not None
        head, records = property_records(entry, fixture, phyp)
        return entry.cells.pack(records, head)
    if entry.read is None:
        raise WriteRejected(entry.name, errno.EACCES, "write-only")
    return entry.read.format(values_of(entry, fixture, state, phyp, quirks)).encode("latin-1")


def property_records(entry: AbiFile, fixture: Fixture, phyp: PhypLayout | None) -> tuple[dict[str, int], list[dict[str, int]]]:
    """(head, records) of a device-tree property under /proc/device-tree/rtas."""
    dump = fixture.phyp
    cpu = dump.cpu_state_size if dump else 0x10000
    hpte = dump.hpte_size if dump else 0x1000
    if entry.name == "ibm,configure-kernel-dump":
        return {}, [{"token": RTAS_DUMP_TOKEN}]
    if entry.name == "ibm,configure-kernel-dump-sizes":
        ids = entry.constants["section_id"]
        return {}, [{"section_id": ids["CPU_STATE"], "size": cpu}, {"section_id": ids["HPTE"], "size": hpte}]
    # ibm,kernel-dump: the header registered before the crash, as firmware completed it.
    if phyp is not None:
        rmo = (phyp.rmr_copy_len, phyp.rmr_copy_addr)
        dest = (phyp.cpu_addr, phyp.hpte_addr)
    else:
        fad = fixture.fadump_areas()
        rmo = (fad.boot_memory_size, fad.boot_memory_destination)
        dest = (fad.reserve_start, fad.reserve_start + cpu)
    status, types = entry.constants["status"], entry.constants["source_type"]
    assert entry.cells is not None
    flags = status["DUMP_PERFORMED"] | status["DUMP_TRIGGERED"]
    if fixture.phyp is not None and fixture.phyp.dump_status == "error":
        flags |= status["DUMP_ERROR_FLAG"]
    head = {"version": 1, "num_sections": 3, "status": flags,
            "first_offset_section": entry.cells.head_size, "dump_disk_section": 0, "block_num_dd": 0,
            "num_of_blocks_dd": 0, "offset_dd": 0, "maxtime_to_auto": 0}
    sections = [(types["CPU_STATE"], 0, cpu, dest[0]), (types["HPTE"], 0, hpte, dest[1]),
                (types["REAL_MODE_REGION"], 0, rmo[0], rmo[1])]
    request = entry.constants["dump_flags"]["DUMP_REQUEST_FLAG"]
    records = [
        {"dump_flags": request, "source_type": t, "error_flags": 0, "source_address": src, "source_length": n,
         "length_copied": n, "destination_address": d}
        for t, src, n, d in sections
    ]
    return head, records

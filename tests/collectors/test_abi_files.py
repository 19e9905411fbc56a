"""vmcore-save's reading of the phyp ABI, on what a real capture kernel prints.

release_region shows the kernel's own header (offsets, zero lengths, then the
reserved remainder), so the collector must find the firmware's areas in
ibm,kernel-dump. The header here is the test's own statement of it, packed
by the spec's declared cells.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given

from abi_specs import builtin_spec
from abi_specs import strategies as abi_st
from abi_specs.phyp import PhypLayout
from collectors.abi_files import phyp_ranges
from collectors.errors import Failure

SPEC = builtin_spec()
RELEASE = SPEC.get("release_region")
HEADER = SPEC.get("ibm,kernel-dump")


def firmware_header(lay: PhypLayout) -> bytes:
    """ibm,kernel-dump as firmware completed it: the three sections and where it saved them."""
    types, status = HEADER.constants["source_type"], HEADER.constants["status"]
    sections = [(types["CPU_STATE"], 0, lay.cpu_len, lay.cpu_addr), (types["HPTE"], 0, lay.hpte_len, lay.hpte_addr),
                (types["REAL_MODE_REGION"], 0, lay.rmr_copy_len, lay.rmr_copy_addr)]
    records = [{"dump_flags": HEADER.constants["dump_flags"]["DUMP_REQUEST_FLAG"], "source_type": t, "error_flags": 0,
                "source_address": src, "source_length": n, "length_copied": n, "destination_address": dest}
               for t, src, n, dest in sections]
    head = {"version": 1, "num_sections": 3, "status": status["DUMP_PERFORMED"] | status["DUMP_TRIGGERED"],
            "first_offset_section": HEADER.cells.head_size, "dump_disk_section": 0, "block_num_dd": 0,
            "num_of_blocks_dd": 0, "offset_dd": 0, "maxtime_to_auto": 0}
    return HEADER.cells.pack(records, head)


def machine_root(root: Path, text: str, header: bytes | None) -> Path:
    (root / "sys/kernel").mkdir(parents=True)
    (root / "sys/kernel/release_region").write_text(text)
    if header is not None:
        (root / "proc/device-tree/rtas").mkdir(parents=True)
        (root / "proc/device-tree/rtas/ibm,kernel-dump").write_bytes(header)
    return root


@given(drawn=abi_st.release_region_texts(RELEASE))
def test_the_collector_finds_every_area_from_what_the_kernel_prints(drawn) -> None:
    text, lay = drawn
    with tempfile.TemporaryDirectory() as tmp:
        ranges, rmr = phyp_ranges(machine_root(Path(tmp), text, firmware_header(lay)))
    assert ranges == [(lay.cpu_addr, lay.cpu_len), (lay.hpte_addr, lay.hpte_len),
                      (lay.rmr_copy_addr, lay.rmr_copy_len), (lay.second_addr, lay.second_len)]
    assert rmr == (lay.rmr_copy_addr, lay.rmr_copy_len)


@given(drawn=abi_st.release_region_texts(RELEASE, rebased=False))
def test_without_the_firmware_header_the_collector_fails_in_one_line(drawn) -> None:
    text, _ = drawn
    with tempfile.TemporaryDirectory() as tmp, pytest.raises(Failure) as info:
        phyp_ranges(machine_root(Path(tmp), text, None))
    message = str(info.value)
    assert "\n" not in message and "ibm,kernel-dump: cannot read the firmware's dump header" in message

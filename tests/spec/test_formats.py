"""Every read format of the spec: round trips, canonical texts, near misses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abi_specs import ParseError, builtin_spec
from abi_specs import strategies as abi_st

SPEC = builtin_spec()
READABLE = [f for f in SPEC.files if f.read is not None]
PROPERTIES = [f for f in SPEC.files if f.kind == "property"]
IDS = [f.name for f in READABLE]


@pytest.mark.parametrize("entry", READABLE, ids=IDS)
@given(data=st.data())
def test_parse_of_format_is_identity(entry, data) -> None:
    values = data.draw(abi_st.values(entry))
    assert entry.read.parse(entry.read.format(values)) == values


@pytest.mark.parametrize("entry", READABLE, ids=IDS)
@given(data=st.data())
def test_canonical_text_round_trips(entry, data) -> None:
    text = data.draw(abi_st.texts(entry))
    assert entry.read.format(entry.read.parse(text)) == text


@pytest.mark.parametrize("entry", READABLE, ids=IDS)
@given(data=st.data())
def test_near_misses_are_rejected_with_position(entry, data) -> None:
    text, how = data.draw(abi_st.near_misses(entry))
    with pytest.raises(ParseError) as info:
        entry.read.parse(text)
    err = info.value
    assert 0 <= err.offset <= len(text), how
    assert err.expected and err.found
    assert f"at offset {err.offset}: expected {err.expected}" in str(err)


RELEASE = SPEC.get("release_region")
DOC_EXAMPLE = (
    "CPU:0x177fee000-0x10000: HPTE:0x177ffe020-0x1000: / "
    "DUMP:0x177fff020-0x10000000, 0x10000000-0x16F1D370A"
)


def test_release_region_is_address_length_pairs() -> None:
    text = "CPU:0x177fee000-0x10000: HPTE:0x177ffe020-0x1000: DUMP:0x177fff020-0x10000000, 0x10000000-0x16f1d370a:\n"
    values = RELEASE.read.parse(text)
    assert RELEASE.read.ranges_of(values) == [
        {"name": "CPU", "start": 0x177FEE000, "length": 0x10000},
        {"name": "HPTE", "start": 0x177FFE020, "length": 0x1000},
        {"name": "DUMP", "start": 0x177FFF020, "length": 0x10000000},
        {"name": "DUMP", "start": 0x10000000, "length": 0x16F1D370A},
    ]


@given(drawn=abi_st.release_region_texts(RELEASE))
def test_what_a_real_kernel_prints_parses_to_offsets_and_the_reserved_remainder(drawn) -> None:
    text, lay = drawn
    values = RELEASE.read.parse(text)
    assert RELEASE.read.format(values) == text
    cpu, hpte, dump, rest = RELEASE.read.ranges_of(values)
    base = cpu["start"]
    assert base in (0, lay.scratch_start)  # the scratch address is added once, at the re-registration
    assert [(r["start"] - base, r["length"]) for r in (cpu, hpte, dump)] == [
        (0, 0), (lay.cpu_len, 0), (lay.cpu_len + lay.hpte_len, 0)]
    assert (rest["start"], rest["length"]) == (lay.reserve_start, lay.reserve_size - lay.scratch_size)


@pytest.mark.parametrize(
    ("text", "offset", "expected"),
    [
        (DOC_EXAMPLE, 50, "'DUMP:0x'"),  # the document's '/' is a line continuation, never printed
        (DOC_EXAMPLE.replace(" / ", " "), 94, "':\\n'"),  # upper-case F ends the hex number
        ("CPU:0x0-0x0: HPTE:0x0-0x0: DUMP:0x0-0x0, 0x0-0x0:", 49, "'\\n'"),
        ("CPU:0x00-0x0: HPTE:0x0-0x0: DUMP:0x0-0x0, 0x0-0x0:\n", 7, "'-0x'"),
    ],
)
def test_release_region_errors_point_at_the_problem(text: str, offset: int, expected: str) -> None:
    with pytest.raises(ParseError) as info:
        RELEASE.read.parse(text)
    assert info.value.offset == offset
    assert info.value.expected == expected


def test_vmcoreinfo_sysfs_line() -> None:
    entry = SPEC.get("vmcoreinfo")
    assert entry.read.parse("0x0000000001fe3000 1024\n") == {"address": 0x1FE3000, "size": 0x1024}
    with pytest.raises(ParseError):
        entry.read.parse("1fe3000 1024\n")  # the pre-4.13 "%lx" spelling is not what this spec describes


@pytest.mark.parametrize("entry", PROPERTIES, ids=[f.name for f in PROPERTIES])
@given(data=st.data())
def test_device_tree_properties_round_trip(entry, data) -> None:
    head, records = data.draw(abi_st.property_records(entry))
    blob = entry.cells.pack(records, head)
    assert entry.cells.unpack(blob) == {"head": head, "records": records}
    with pytest.raises(ParseError):
        entry.cells.unpack(blob + b"\0")


def test_dump_sizes_cells_are_unaligned_u64() -> None:
    entry = SPEC.get("ibm,configure-kernel-dump-sizes")
    blob = bytes.fromhex("00000001" "0000000000010000" "00000002" "0000000000001000")
    assert entry.cells.unpack(blob)["records"] == [
        {"section_id": 1, "size": 0x10000},
        {"section_id": 2, "size": 0x1000},
    ]

"""fadump's eras and boot message come from the spec's data, and conformance draws them."""

from __future__ import annotations

import pytest
from hypothesis import find, settings

from abi_specs import SpecFileError, builtin_spec
from abi_specs.fadump import boot_destination, mem_reserved, reservation_log_line
from abi_specs.specfile import load_spec_text
from abi_specs.versions import KernelVersion
from mockfs.conform.campaign import examples

SPEC = builtin_spec()
FADUMP = SPEC.platforms["fadump"]
MiB = 1 << 20


def test_the_eras_are_the_specs_and_the_model_changes_there() -> None:
    assert {k: str(FADUMP.era(k)) for k in FADUMP.eras} == {
        "reserve_rework": "5.5", "aligned_destination": "5.19", "no_elf_header": "6.10"}
    page = 65536
    before, at = KernelVersion.parse("5.18"), FADUMP.era("aligned_destination")
    assert boot_destination(0x30000000, 0x10000, 0x1000, before, page) == 0x30011000
    assert boot_destination(0x30000000, 0x10000, 0x1000, at, page) == 0x30020000
    last_with, first_without = KernelVersion.parse("6.9"), FADUMP.era("no_elf_header")
    assert mem_reserved(last_with, 768 * MiB, 0x10000, 0x1000, 1, page) % page == 0
    assert mem_reserved(first_without, 768 * MiB, 0x10000, 0x1000, 1, page) == 0x20000 + 768 * MiB + 680


def test_the_boot_message_follows_the_era() -> None:
    old = reservation_log_line(KernelVersion.parse("5.4"), 1 << 30, 512 * MiB, 8 << 30)
    new = reservation_log_line(FADUMP.era("reserve_rework"), 1 << 30, 512 * MiB, 8 << 30)
    assert old == "fadump: Reserved 1024MB of memory at 512MB for firmware-assisted dump (System RAM: 8192MB)"
    assert new == "fadump: Reserved 1024MB of memory at 0x00000020000000 (System RAM: 8192MB)"


def test_conformance_draws_every_era() -> None:
    notable = SPEC.notable_versions("fadump")
    assert {FADUMP.era(k) for k in FADUMP.eras} <= set(notable)
    for name in FADUMP.eras:
        era = FADUMP.era(name)
        found = find(examples(platform="fadump", kinds=("none",)), lambda e, era=era: e.fixture.version == era,
                     settings=settings(database=None, max_examples=2000))
        assert found.fixture.osrelease.startswith(str(era))


@pytest.mark.parametrize(("table", "where"), [
    ('[platforms.fadump.eras]\nno_elf_header = "six"', "platforms.fadump.eras.no_elf_header"),
    ('[platforms.fadump.messages]\nreserved = [{ since = "5.5" }]', "platforms.fadump.messages.reserved[0].format"),
    ('[platforms.fadump.messages]\nreserved = [{ since = "5.5", format = "x", when = 1 }]',
     "platforms.fadump.messages.reserved[0].when"),
])
def test_broken_eras_and_messages_are_refused_by_key(table: str, where: str) -> None:
    head = ('[platforms.fadump]\ntitle = "t"\narches = ["ppc64le"]\nkernels = ["3.4", ""]\n'
            'description = "d"\nstates = { capture = "c" }\n')
    with pytest.raises(SpecFileError) as info:
        load_spec_text([("draft.toml", head + table)], base=SPEC)
    assert where in str(info.value) and "\n" not in str(info.value)

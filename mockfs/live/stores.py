"""The store methods of a live machine's writable ABI files.

Each store takes the values the spec's write format parsed and changes the
machine as the kernel does; a refusal is the spec's error for a named
condition (:meth:`abi_specs.AbiFile.refusal`), so the errno is never stated here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from abi_specs import AbiFile
from abi_specs.phyp import release

if TYPE_CHECKING:
    from .machine import LiveMachine

Values = dict[str, int | str]


def check_state(machine: LiveMachine, entry: AbiFile, name: str) -> None:
    """Refusals that come before the value is even parsed, as the kernel checks them."""
    state = machine.state
    if name in ("fadump/registered", "fadump/bootargs_append") and state.dump_active:
        raise entry.refusal("dump_active", "a dump is active")
    if name == "fadump/release_mem" and not state.dump_active:
        machine.judge.released_twice()
        raise entry.refusal("no_dump_active", "no dump is active")


def release_region(machine: LiveMachine, entry: AbiFile, values: Values) -> None:
    start, length = int(values["start"]), int(values["length"])
    areas = machine.areas
    assert areas is not None and machine.phyp is not None
    pairs = machine.phyp.pairs()
    machine.judge.release_region(start, length, areas, {b for a, n in zip(pairs[::2], pairs[1::2]) for b in (a, a + n)})
    state = machine.state
    effect = release(areas, state.counters, start, length, machine.quirks)
    state.counters = effect.counters
    ps = machine.page_size
    first = max(effect.first_pfn * ps, areas.reserve_start)
    last = min((effect.last_pfn + 1) * ps, areas.reserve_end)
    if effect.walks_off_memory:
        machine.judge.walks_off_memory(start, length, effect.last_pfn)
    machine.memory.freed.add(first, last)
    if effect.reregistered:
        state.phyp_dump_active = True
    state.releases.append({"start": start, "length": length, "freed_start": first, "freed_end": last,
                           "pages": effect.pages, "reregistered": effect.reregistered})


def release_mem(machine: LiveMachine, entry: AbiFile, values: Values) -> None:
    fixture, state = machine.fixture, machine.state
    machine.judge.release_mem(fixture.ram_end)
    state.vmcore_present = False
    state.dump_active = False
    if fixture.fadump:
        machine.memory.freed.add(fixture.fadump.reserve_start, fixture.fadump.reserve_start + fixture.fadump.reserve_size)
    machine.memory.freed.add(0, fixture.ram_end)
    state.releases.append({"release_mem": 1})


def registered(machine: LiveMachine, entry: AbiFile, values: Values) -> None:
    machine.state.registered = bool(values["registered"])


def bootargs_append(machine: LiveMachine, entry: AbiFile, values: Values) -> None:
    machine.state.bootargs = str(values["params"])


def kexec_crash_size(machine: LiveMachine, entry: AbiFile, values: Values) -> None:
    if int(values["bytes"]) > 0:  # the capture kernel reserved nothing: it can only stay 0
        raise entry.refusal("larger_than_current", "larger than the current size (0)")


#: The store method behind each writable file (by its own name, or the name its link points to).
STORES = {
    "release_region": release_region,
    "fadump/release_mem": release_mem,
    "fadump/registered": registered,
    "fadump/bootargs_append": bootargs_append,
    "kexec_crash_size": kexec_crash_size,
}

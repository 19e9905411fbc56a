"""The store methods of a live machine's writable ABI files.

Each store takes the values the spec's write format parsed and changes the
machine as the kernel does: through the spec's lifecycle where a write arms,
disarms or releases (registered, release_mem, release_region), directly
otherwise. A refusal is the spec's error for a named condition
(:meth:`abi_specs.AbiFile.refusal`), so no errno is stated here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from abi_specs import AbiFile
from abi_specs.phyp import release

from . import procfiles

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
    if name == "kexec/crash_size" and state.kernel["crash_loaded"]:
        raise entry.refusal("crash_kernel_loaded", "a crash kernel is loaded: unload it first")


def release_region(machine: LiveMachine, entry: AbiFile, values: Values, writer: int) -> None:
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
    # The kernel frees only frames still reserved: the loop may walk more than it frees.
    frames = sum(-(-b // ps) - a // ps for a, b in state.freed.gaps(first, last)) if last > first else 0
    state.freed.add(first, last)
    if effect.reregistered:
        machine.fire("release", start=start, length=length)
    record = {"start": start, "length": length, "freed_start": first, "freed_end": last, "pages": effect.pages,
               "frames_freed": frames, "counters": {"reserved": effect.counters.reserved,
                                                    "scratch": effect.counters.scratch},
               "reregistered": effect.reregistered}
    state.record_release(record)
    machine.write_detail = {k: record[k] for k in ("frames_freed", "pages", "counters", "reregistered")}


def release_mem(machine: LiveMachine, entry: AbiFile, values: Values, writer: int) -> None:
    fixture, state = machine.fixture, machine.state
    machine.judge.release_mem(fixture.ram_end)
    machine.fire("release")
    if fixture.fadump:
        areas = fixture.fadump_areas()
        state.freed.add(areas.reserve_start, areas.reserve_start + areas.reserve_size)
    state.freed.add(0, fixture.ram_end)
    state.record_release({"release_mem": 1})


def registered(machine: LiveMachine, entry: AbiFile, values: Values, writer: int) -> None:
    # Writing 1 while registered unregisters first and registers again: one "register" here.
    machine.fire("register" if values["registered"] else "unregister")


def bootargs_append(machine: LiveMachine, entry: AbiFile, values: Values, writer: int) -> None:
    """The capture kernel's command line is the boot one plus these: refuse what could not fit it."""
    assert entry.write is not None
    size = entry.write.max_bytes  # COMMAND_LINE_SIZE
    boot = len(procfiles.cmdline(machine.fixture, machine.state).rstrip("\n"))  # saved_command_line_len
    if boot + machine.write_count >= size:
        raise entry.refusal("cmdline_overflow", f"the boot command line ({boot} bytes) and {machine.write_count} "
                            f"more reach {size}")
    machine.state.bootargs = str(values["params"])


def kexec_crash_size(machine: LiveMachine, entry: AbiFile, values: Values, writer: int) -> None:
    """crash_shrink_memory(): only shrinks, in whole pages.

    Kernels with the ``round_up_first`` behaviour round the value up before
    comparing (an all-ones write wraps to 0 and frees everything); older ones
    compare the raw value and refuse anything larger.
    """
    state = machine.state
    align = machine.page_size
    asked = int(values["bytes"])
    rounded = -(-asked // align) * align & ((1 << 64) - 1)  # roundup wraps like unsigned long
    compared = rounded if machine.quirk_on(entry, "round_up_first") else asked
    if compared > state.crash_size:
        raise entry.refusal("larger_than_current", f"larger than the current size ({state.crash_size})")
    new = rounded if rounded <= state.crash_size else state.crash_size
    if new < state.crash_size:
        state.event("crash-shrink", before=state.crash_size, after=new)
        state.crash_size = new


def sysrq_trigger(machine: LiveMachine, entry: AbiFile, values: Values, writer: int) -> None:
    """The SysRq key (or keys, after a leading ``_``): c crashes the machine, b and o reboot it."""
    text = str(values["keys"])
    keys = text[1:] if text.startswith("_") else text[:1]
    for key in keys:
        action = entry.actions.get(key)  # the spec's: which transition the key fires
        machine.state.event("sysrq", key=key, pid=writer)
        if action:
            machine.fire(action, by=f"sysrq {key}")
            if machine.on_crash is not None:
                machine.on_crash(machine, writer)  # the machine is down: every process of the run dies
            return


#: The store method behind each writable file (by its own name, or the name its link points to).
STORES = {
    "release_region": release_region,
    "fadump/release_mem": release_mem,
    "fadump/registered": registered,
    "fadump/bootargs_append": bootargs_append,
    "kexec/crash_size": kexec_crash_size,
    "proc/sysrq-trigger": sysrq_trigger,
}

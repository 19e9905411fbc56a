"""Random lives of a machine, drawn from the spec's lifecycle, driven through the machine's real entry points.

Each step fires the way a program fires it: a write to the sysfs file that
takes it, a kexec_load request as the runner's seal sends it, a crash or a
reboot from outside. After each step the live machine must be in the state
the pure model says, serve exactly the spec's files of that state, and read
its arming variable back as the kernel prints it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abi_specs import builtin_spec, kexec, strategies
from abi_specs.versions import KernelVersion
from mockfs.live import LiveMachine, life
from mockfs.machine import VmcoreImage
from mockfs.machine.generate import MIN_MEMORY, new_fixture

SPEC = builtin_spec()
#: The transitions a program or an operator fires; boot follows a crash or a reboot, and a failed dump
#: comes from the firmware's header (a fixture option), not from anything done to the machine.
FIRED = {p: tuple(n for n in SPEC.lifecycle(p).transitions if n not in ("boot", "failed-dump")) for p in SPEC.lifecycles}
#: Where each platform's arming variable can be read, and how it prints.
ARMING_FILE = {"fadump": "fadump/registered", "kdump": "kexec_crash_loaded"}


def _fire(machine: LiveMachine, name: str) -> None:
    """Fire *name* the way the real world does."""
    platform = machine.fixture.platform
    if name == "crash":
        life.crash(machine, "test")
    elif name == "reboot":
        life.reboot(machine, "test")
    elif name in ("register", "unregister"):
        machine.write_file(SPEC.get("fadump/registered"), b"1\n" if name == "register" else b"0\n")
    elif name == "release" and platform == "fadump":
        machine.write_file(SPEC.get("fadump/release_mem"), b"1\n")
    elif name == "release" and platform == "phyp":
        pairs = machine.fixture.phyp_layout().pairs()
        for start, length in zip(pairs[::2], pairs[1::2]):
            if length:
                machine.write_file(SPEC.get("release_region"), f"{start:#x} {length:#x}\n".encode())
    elif name in ("load", "unload"):
        start, _ = machine.fixture.crashkernel
        flags = kexec.kexec_load_flags()["KEXEC_ON_CRASH"] | machine.fixture.arch_info.e_machine << 16
        segments = [] if name == "unload" else [[start, 0x100000]]
        answer = life.handle(machine, {"op": "kexec_load", "flags": flags, "entry": start, "segments": segments,
                                       "pid": 1, "comm": "kexec"})
        assert answer == {"result": 0}, answer
    else:
        raise AssertionError(f"no trigger for {platform} {name}")


def _fixture(platform: str):
    # The kdump x86_64 machine: kexec_load's image arch is x86_64's, and it has a crashkernel= area.
    return new_fixture(platform, "x86_64" if platform == "kdump" else None, MIN_MEMORY[platform], name=f"{platform}-walk")


FIXTURES = {p: _fixture(p) for p in SPEC.lifecycles}


@pytest.mark.parametrize("platform", sorted(SPEC.lifecycles))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_lives_follow_the_spec(platform: str, data: st.DataObject) -> None:
    fixture = FIXTURES[platform]
    version = fixture.version
    lifecycle = SPEC.lifecycle(platform)
    machine = LiveMachine(VmcoreImage(fixture), state=None)
    machine.state = machine.initial_state("armed")
    walk = data.draw(strategies.walks(lifecycle, version, machine.state.kernel, FIRED[platform]))
    for name, expected in walk:
        _fire(machine, name)
        assert machine.state.kernel == expected, (name, walk)
        served = {f.path for f in SPEC.files_for(platform, expected, version)}
        for f in SPEC.files:
            if platform in f.platforms:
                assert (machine.lookup(f.path) is not None) == (f.path in served), (f.path, name, expected)
        if platform in ARMING_FILE:
            text = machine.read_file(SPEC.get(ARMING_FILE[platform])).decode()
            assert text == f"{int(lifecycle.is_armed(expected))}\n", (name, expected)
        assert machine.summary()["armed"] == lifecycle.is_armed(expected)


def test_walks_validate_their_arguments() -> None:
    lifecycle = SPEC.lifecycle("fadump")
    with pytest.raises(ValueError, match="no transition"):
        strategies.walks(lifecycle, KernelVersion.parse("6.1"), names=("fly",))
    with pytest.raises(ValueError, match="max_size"):
        strategies.walks(lifecycle, KernelVersion.parse("6.1"), max_size=-1)

"""The life of a machine: kernels, variables and transitions (``specs/lifecycle.toml``), run.

A :class:`KernelState` is which kernel runs (``armed``: production;
``capture``: after a crash, holding a dump) and which of the platform's
variables hold. :meth:`Lifecycle.fire` applies a named transition the way the
spec describes it, following ``otherwise`` and ``then`` links, and returns the
new state with the names of the transitions that ran. It is pure: the mock
decides *when* a transition fires (a write, a syscall, a crash) and calls it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .errors import AbiError
from .versions import KernelVersion

STATES = ("capture", "armed")
#: How a machine is armed again once its dump is collected (``rearm`` in the spec):
#: ``itself``: the capture kernel registers again on its own (phyp, after the last release);
#: ``service``: the same kernel goes on and the dump service arms it again (fadump, after release_mem);
#: ``reboot``: the capture kernel reboots into production, where the service arms it (kdump).
REARM_WAYS = ("itself", "service", "reboot")


class TransitionRefused(AbiError):
    """A transition whose condition does not hold in the current state."""

    def __init__(self, platform: str, name: str, reason: str) -> None:
        self.platform, self.name, self.reason = platform, name, reason
        super().__init__(f"{platform}: cannot {name}: {reason}")


@dataclass(frozen=True)
class KernelState:
    """Which kernel runs and which variables hold."""

    kernel: str  # "armed" or "capture"
    true: frozenset[str] = frozenset()

    def holds(self, literals: Iterable[str]) -> bool:
        """Whether every literal holds: ``x`` needs x true, ``!x`` needs x false."""
        return all((lit[1:] not in self.true) if lit.startswith("!") else (lit in self.true) for lit in literals)

    def __getitem__(self, variable: str) -> bool:
        return variable in self.true

    def with_values(self, values: Mapping[str, bool], kernel: str | None = None) -> KernelState:
        """This state with *values* set (and the kernel changed, if given)."""
        true = {v for v in self.true if v not in values} | {v for v, on in values.items() if on}
        return KernelState(kernel or self.kernel, frozenset(true))

    def as_dict(self) -> dict[str, object]:
        return {"kernel": self.kernel, "true": sorted(self.true)}


@dataclass(frozen=True)
class SetValue:
    """A value a transition sets: a constant, or true from a kernel version on."""

    value: bool = False
    since: KernelVersion | None = None

    def on(self, version: KernelVersion) -> bool:
        return version >= self.since if self.since is not None else self.value


@dataclass(frozen=True)
class Transition:
    """One transition of a platform's life (see specs/lifecycle.toml for the vocabulary)."""

    name: str
    trigger: str
    sources: tuple[str, ...] = STATES  # "from"
    when: tuple[str, ...] = ()
    to: str = ""  # "" keeps the kernel
    sets: dict[str, SetValue] = field(default_factory=dict)
    otherwise: str = ""
    then: str = ""


@dataclass(frozen=True)
class Lifecycle:
    """The kernels, variables and transitions of one platform."""

    platform: str
    armed_by: str
    variables: dict[str, str]
    transitions: dict[str, Transition]
    rearm: str = "service"  # one of REARM_WAYS

    def boot(self, version: KernelVersion) -> KernelState:
        """The state right after power-on."""
        state, _ = self.fire(KernelState("armed"), "boot", version)
        return state

    def captured(self, version: KernelVersion) -> KernelState:
        """The capture kernel right after a crash of an armed machine: what a fresh fixture serves."""
        armed = self.boot(version).with_values({self.armed_by: True})
        state, _ = self.fire(armed, "crash", version)
        return state

    def is_armed(self, state: KernelState) -> bool:
        """Whether a crash now would leave a dump."""
        return state[self.armed_by]

    def fire(self, state: KernelState, name: str, version: KernelVersion) -> tuple[KernelState, list[str]]:
        """Apply transition *name*; returns the new state and the transitions that ran, in order.

        Raises :class:`TransitionRefused` when the transition does not apply in
        this kernel, or its condition fails and it has no ``otherwise``.
        """
        ran: list[str] = []
        for _ in range(len(self.transitions) + 1):  # links never loop; the bound makes sure
            t = self.transitions.get(name)
            if t is None:
                raise TransitionRefused(self.platform, name, f"no such transition (known: {', '.join(self.transitions)})")
            if t.then:
                ran.append(t.name)
                name = t.then
                continue
            if state.kernel not in t.sources:
                raise TransitionRefused(self.platform, name, f"not in the {state.kernel} kernel")
            if not state.holds(t.when):
                if t.otherwise:
                    ran.append(t.name)
                    name = t.otherwise
                    continue
                raise TransitionRefused(self.platform, name, f"needs {' and '.join(t.when)}")
            ran.append(t.name)
            values = {var: v.on(version) for var, v in t.sets.items()}
            return state.with_values(values, t.to or None), ran
        raise TransitionRefused(self.platform, name, "the transitions loop")

"""The rules of an ELF core as /proc/vmcore serves it: arches, note kinds, VMCOREINFO keys."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .arches import Arch

# The syntax of a VMCOREINFO value, by the name the spec gives it.
INFO_VALUE_PATTERNS = {
    "text": r"[^\n]*",
    "dec": r"0|[1-9][0-9]*",
    "sdec": r"0|-?[1-9][0-9]*",
    "hex": r"[0-9a-f]+",
    "y": r"y",
}


@dataclass(frozen=True)
class InfoKey:
    """One family of VMCOREINFO keys (a regular expression) and its value syntax."""

    key: str
    value: str  # a key of INFO_VALUE_PATTERNS

    def matches(self, key: str) -> bool:
        return re.fullmatch(self.key, key) is not None

    def value_ok(self, value: str) -> bool:
        return re.fullmatch(INFO_VALUE_PATTERNS[self.value], value) is not None


@dataclass(frozen=True)
class NoteKind:
    """A kind of ELF note /proc/vmcore carries: its name, type and what it holds."""

    name: str
    type: int
    type_name: str
    what: str


@dataclass(frozen=True)
class CoreFormat:
    """The rules of an ELF core as /proc/vmcore serves it."""

    arches: dict[str, Arch]
    notes: tuple[NoteKind, ...]
    vmcoreinfo: tuple[InfoKey, ...]

    def info_rule(self, key: str) -> InfoKey | None:
        """The first VMCOREINFO rule whose key pattern matches *key*."""
        return next((r for r in self.vmcoreinfo if r.matches(key)), None)

    def note(self, type_name: str) -> NoteKind:
        """The note kind called *type_name* (``NT_PRSTATUS``, ``VMCOREINFO``, ``NT_VMCOREDD``)."""
        for kind in self.notes:
            if type_name in (kind.type_name, kind.name):
                return kind
        raise KeyError(f"no note kind {type_name!r} (known: {', '.join(k.type_name for k in self.notes)})")

    def arch_of(self, e_machine: int, byteorder: str) -> str | None:
        """The arch whose cores carry *e_machine* in *byteorder*."""
        return next((a.name for a in self.arches.values() if a.e_machine == e_machine and a.byteorder == byteorder), None)

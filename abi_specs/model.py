"""The spec's vocabulary: sysfs/procfs files, their formats, and the spec as a whole.

The platforms and sysfs generations are in :mod:`abi_specs.platform`, the
rules of /proc/vmcore's ELF core in :mod:`abi_specs.core_rules`.

These are plain frozen dataclasses built by :mod:`abi_specs.specfile` from TOML.
Everything that reads or writes an ABI file (the mock, the checker, the
strategies, the documentation renderer) works from these objects.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field

from .arches import Arch
from .core_rules import CoreFormat
from .devicetree import CellLayout
from .errors import WriteRejected, show_text
from .kformat import ReadFormat
from .kscan import KSTRTOX, KstrtoxError, c_string, kernel_sscanf
from .lifecycle import KernelState, Lifecycle
from .lookup import find_by_path, find_named
from .platform import Platform, SysfsEra
from .versions import KernelVersion

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a quick command 3 ms; annotations alone use it
    from typing import Any

STABILITIES = ("stable", "testing", "obsolete", "removed")


@dataclass(frozen=True)
class WriteFormat:
    """How the store method parses a write, and which values it accepts.

    ``parser`` is ``sscanf`` (with ``format`` and ``fields``, needing ``need``
    conversions), one of the ``kstrto*`` helpers (with ``base`` and optionally
    the ``accept``-ed values), or ``text`` (at most ``max_bytes - 1`` bytes, one
    trailing newline removed). Failures map to ``parse_errno``.
    """

    parser: str
    format: str = ""
    fields: tuple[str, ...] = ()
    need: int = 0
    base: int = 0
    accept: tuple[int, ...] = ()
    max_bytes: int = 0
    parse_errno: int = _errno.EINVAL

    def parse(self, data: bytes, what: str = "write") -> dict[str, int | str]:
        """Values the store method gets from *data*, or :class:`WriteRejected`."""
        if self.parser == "sscanf":
            result = kernel_sscanf(data, self.format, self.fields)
            if len(result.values) < self.need:
                found = show_text(c_string(data)[result.stop:])
                reason = (
                    f"only {len(result.values)} of {self.need} numbers scanned: at offset "
                    f"{result.stop}: expected {result.expected}, found {found}"
                )
                raise WriteRejected(what, self.parse_errno, reason, "unparsable")
            return dict(zip(self.fields, result.values))
        if self.parser in KSTRTOX:
            try:
                value = KSTRTOX[self.parser](data, self.base, what)
            except KstrtoxError as exc:
                raise WriteRejected(what, self.parse_errno, str(exc).split(": ", 1)[1], "unparsable") from None
            if self.accept and value not in self.accept:
                allowed = " or ".join(str(v) for v in self.accept)
                raise WriteRejected(what, _errno.EINVAL, f"value {value} is not {allowed}", "not_accepted")
            return {self.fields[0] if self.fields else "value": value}
        if self.parser == "text":
            if self.max_bytes and len(data) >= self.max_bytes:
                raise WriteRejected(what, _errno.EINVAL, f"{len(data)} bytes, at most {self.max_bytes - 1} fit", "too_long")
            text = c_string(data).decode("latin-1")
            if text.endswith("\n"):
                text = text[:-1]
            return {self.fields[0] if self.fields else "value": text}
        raise ValueError(f"unknown write parser {self.parser!r}")


@dataclass(frozen=True)
class ErrorRule:
    """An errno a write can fail with, and when: prose for the documentation and a
    condition the live machine evaluates (the names are listed in ``CONDITIONS``)."""

    errno: str
    when: str
    conditions: tuple[str, ...] = ()

    @property
    def number(self) -> int:
        return getattr(_errno, self.errno)


#: The conditions an error rule may name, and what each means. The mock's live
#: machine implements exactly these: tests/mockfs/test_reliability.py names every
#: one in the spec's rules and makes each happen through a mounted mock.
CONDITIONS = {
    "unparsable": "the store method cannot parse the value",
    "not_accepted": "the value parses but is not one the store method accepts",
    "too_long": "the write is longer than the store method takes",
    "dump_active": "a dump is active: this is the capture kernel",
    "no_dump_active": "no dump is active any more",
    "cmdline_overflow": "the boot command line and the write together reach COMMAND_LINE_SIZE",
    "larger_than_current": "the value is larger than the current size",
    "crash_kernel_loaded": "a crash kernel is loaded",
}


@dataclass(frozen=True)
class Quirk:
    """A named kernel behaviour a model may switch off; ``default`` is what the kernel did."""

    name: str
    default: bool
    description: str
    kernels: tuple[tuple[str, str], ...] = ()  # [first, end) version ranges that behave so; () means every kernel

    def on_in(self, version: KernelVersion | None) -> bool:
        """Whether a kernel of *version* behaves so (its default outside the ranges is the opposite)."""
        if not self.kernels or version is None:
            return self.default
        inside = any(KernelVersion.parse(lo) <= version and (not hi or version < KernelVersion.parse(hi))
                     for lo, hi in self.kernels)
        return self.default if inside else not self.default


@dataclass(frozen=True)
class AbiFile:
    """One ABI file: a sysfs attribute, a procfs file or a device-tree property.

    ``kind`` is ``attribute`` (text, read/write formats), ``property`` (binary,
    ``cells`` layout), ``core`` (an ELF core file, validated as /proc/vmcore) or
    ``procfs`` (a file of the machine's /proc the mock renders: iomem, kcore...).
    ``present`` lists the platform states in which the file exists.
    """

    name: str
    path: str
    kind: str
    mode: int
    platforms: tuple[str, ...]
    present: tuple[str, ...]
    group: str
    stability: str
    date: str
    kernel_version: str
    contact: str
    users: tuple[str, ...]
    description: str
    source: str
    read: ReadFormat | None = None
    write: WriteFormat | None = None
    cells: CellLayout | None = None
    core: CoreFormat | None = None
    errors: tuple[ErrorRule, ...] = ()
    quirks: tuple[Quirk, ...] = ()
    link_to: str = ""
    documented: bool = True
    constants: dict[str, dict[str, int]] = field(default_factory=dict)  # named values of fields
    when: tuple[str, ...] = ()  # lifecycle variables that must hold for the file to exist ("!x": must not)
    directory: bool = False  # a procfs directory served whole (/proc/sys)
    removed: str = ""  # the first kernel version without the file ("": still there)
    link_since: str = ""  # a link_to file is a symlink from this version on, a plain file before
    since: dict[str, str] = field(default_factory=dict)  # per kernel (state): the first version it exists there
    actions: dict[str, str] = field(default_factory=dict)  # what a written value does: a lifecycle transition

    def in_kernel(self, version: KernelVersion) -> bool:
        """Whether a kernel of *version* has the file at all."""
        if version < KernelVersion.parse(self.kernel_version):
            return False
        return not self.removed or version < KernelVersion.parse(self.removed)

    def is_link_in(self, version: KernelVersion | None) -> bool:
        """Whether the file is a symlink (to ``link_to``) in a kernel of *version* (None: the newest)."""
        if not self.link_to:
            return False
        return not self.link_since or version is None or version >= KernelVersion.parse(self.link_since)

    @property
    def mode_text(self) -> str:
        """The mode as ``ls -l`` shows it, e.g. ``-rw-------`` (``d`` first for a directory)."""
        bits = "rwxrwxrwx"
        return ("d" if self.directory else "-") + "".join(b if self.mode & (1 << (8 - i)) else "-" for i, b in enumerate(bits))

    def refusal(self, condition: str, reason: str) -> WriteRejected:
        """The error a write fails with under *condition*, with the errno the spec gives it."""
        for rule in self.errors:
            if condition in rule.conditions:
                return WriteRejected(self.name, rule.number, reason, condition)
        raise ValueError(f"{self.name}: the spec lists no error for condition {condition!r}")

    def exists_on(self, platform: str, state: str | KernelState, version: KernelVersion | None = None) -> bool:
        """Whether the file exists on *platform* in *state*, in a kernel of *version* (None: any version).

        *state* is a kernel (``capture`` or ``armed``: the file can exist there)
        or a :class:`~abi_specs.lifecycle.KernelState` (it exists now, its
        ``when`` variables holding).
        """
        kernel = state if isinstance(state, str) else state.kernel
        if platform not in self.platforms or kernel not in self.present:
            return False
        if version is not None:
            if not self.in_kernel(version):
                return False
            if kernel in self.since and version < KernelVersion.parse(self.since[kernel]):
                return False
        return isinstance(state, str) or state.holds(self.when)


@dataclass(frozen=True)
class Spec:
    """Every platform, architecture and ABI file the spec knows, looked up by name or path."""

    platforms: dict[str, Platform]
    files: tuple[AbiFile, ...]
    arches: dict[str, Arch]
    lifecycles: dict[str, Lifecycle] = field(default_factory=dict)
    syscalls: dict[str, Any] = field(default_factory=dict)  # the arming calls' numbers, flags and checks
    eras: tuple[SysfsEra, ...] = ()  # sysfs generations, oldest first

    def __post_init__(self) -> None:
        names = [f.name for f in self.files]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate ABI file names: {sorted(dup)}")

    def get(self, name: str) -> AbiFile:
        """The file called *name* (its short name or its canonical path)."""
        found = find_named(self.files, name)
        if found is None:
            known = ", ".join(f.name for f in self.files)
            raise KeyError(f"no ABI file called {name!r} (known: {known})")
        return found

    def guess(self, path: str) -> AbiFile | None:
        """The file whose canonical path *path* ends with (a mount prefix is allowed)."""
        return find_by_path(self.files, path)

    def files_for(self, platform: str, state: str | KernelState, version: KernelVersion | None = None) -> list[AbiFile]:
        """The files that exist on *platform* in *state*, in a kernel of *version* (see :meth:`AbiFile.exists_on`)."""
        return [f for f in self.files if f.exists_on(platform, state, version)]

    def enabled_quirks(self, version: KernelVersion | None, overrides: dict[str, bool] | None = None) -> frozenset[str]:
        """The kernel behaviours (quirks of every file) a kernel of *version* has, with *overrides* applied."""
        known = {q.name: q for f in self.files for q in f.quirks}
        unknown = sorted(set(overrides or {}) - set(known))
        if unknown:
            raise ValueError(f"unknown quirk(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        chosen = {name: q.on_in(version) for name, q in known.items()} | dict(overrides or {})
        return frozenset(name for name, on in chosen.items() if on)

    def notable_versions(self, platform: str) -> list[KernelVersion]:
        """The kernel versions at which something of *platform* changes, by the spec's own data.

        Every version a file, a quirk, the lifecycle or the platform's layout
        eras and messages name, kept inside the kernels that have the platform:
        the versions worth testing a tool on.
        """
        plat = self.platforms[platform]
        texts = {plat.kernels[0], plat.default_kernel, *plat.eras.values()}
        texts |= {since for pairs in plat.messages.values() for since, _ in pairs}
        for f in self.files:
            if platform in f.platforms:
                texts |= {f.kernel_version, f.removed, f.link_since, *f.since.values()}
                texts |= {v for q in f.quirks for pair in q.kernels for v in pair}
        life = self.lifecycles.get(platform)
        if life is not None:
            texts |= {str(v.since) for t in life.transitions.values() for v in t.sets.values() if v.since}
        versions = {KernelVersion.parse(t) for t in texts if t}
        return sorted(v for v in versions if plat.in_kernel(v))

    def sysfs_era(self, version: KernelVersion) -> SysfsEra:
        """The sysfs generation of a kernel of *version*."""
        found = [e for e in self.eras if KernelVersion.parse(e.since) <= version]
        if not found:
            raise ValueError(f"no sysfs generation of the spec covers Linux {version}")
        return max(found, key=lambda e: KernelVersion.parse(e.since))

    def lifecycle(self, platform: str) -> Lifecycle:
        """The life of a *platform* machine."""
        return self.lifecycles[platform]

    @property
    def vmcore(self) -> CoreFormat:
        """The rules of /proc/vmcore."""
        core = self.get("vmcore").core
        assert core is not None
        return core

    def arch(self, name: str) -> Arch:
        """The architecture called *name*."""
        try:
            return self.arches[name]
        except KeyError:
            raise KeyError(f"unknown arch {name!r} (known: {', '.join(self.arches)})") from None

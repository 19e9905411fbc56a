"""Load the spec from TOML: the built-in files and users' own spec files.

The built-in spec lives in ``abi_specs/specs/*.toml``; a kernel developer
drafting a new attribute writes a small file in the same vocabulary and passes
it with ``--spec-file``. Both go through :func:`load_spec_text`, so a mistake in
either is reported the same way: one line naming the file, the key and the
problem. The machine-wide tables (``[sysfs.*]``, ``[platforms.*]``,
``[arches.*]``, ``[prstatus]``) are read here; the ABI files by
:mod:`abi_specs.spec_entries`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from .arches import Arch, prstatus_layout
from .errors import SpecFileError
from .lifecycle import REARM_WAYS, STATES, Lifecycle, SetValue, Transition
from .model import Platform, Spec, SysfsEra
from .spec_entries import KINDS, load_entry
from .tomlreader import TableReader, parse_toml
from .versions import KernelVersion

_TOP = {"platforms", "sysfs", "arches", "prstatus", "lifecycle", "syscalls", *KINDS}


def _reader(source: str, key: str, table: Any) -> TableReader:
    return TableReader(source, key, table, SpecFileError)


def _sysfs(r: TableReader, name: str) -> SysfsEra:
    r.check_keys({"title", "since", "store_slack", "attribute_size", "empty_write"})
    slack = r.get("store_slack", int, required=True)
    if slack not in (0, 1):
        raise r.fail("store_slack", f"expected 0 or 1, got {slack}")
    return SysfsEra(name, r.string("title", name), r.string("since", ""), slack,
                    r.get("attribute_size", int, required=True), r.get("empty_write", int, 0))


def _platform(r: TableReader, name: str, eras: dict[str, SysfsEra], arches: dict[str, Arch]) -> Platform:
    r.check_keys({"title", "arches", "default_arch", "sysfs", "description", "states", "layout"})
    states = r.get("states", dict, required=True)
    bad = sorted(set(states) - set(STATES))
    if bad:
        raise r.fail(f"states.{bad[0]}", f"unknown state (use {', '.join(STATES)})")
    era = r.string("sysfs", "kernfs")
    if era not in eras:
        raise r.fail("sysfs", f"unknown sysfs generation {era!r} (known: {', '.join(eras)})")
    names = r.strings("arches", required=True)
    for i, a in enumerate(names):
        if a not in arches:
            raise r.fail(f"arches[{i}]", f"unknown arch {a!r} (known: {', '.join(arches)})")
    default = r.string("default_arch", names[0])
    if default not in names:
        raise r.fail("default_arch", f"{default!r} is not one of the platform's arches ({', '.join(names)})")
    layout = r.sub("layout")
    return Platform(
        name=name,
        title=r.string("title", name),
        arches=names,
        default_arch=default,
        states=dict(states),
        sysfs=eras[era],
        description=r.string("description", "").strip(),
        layout={k: layout.size(k) for k in layout.table},
    )


def _arches(doc: TableReader) -> dict[str, Arch]:
    pr = doc.sub("prstatus", required=True)
    pr.check_keys({"head", "tail"})
    head = [tuple(f) for f in pr.get("head", list, required=True)]
    tail = [tuple(f) for f in pr.get("tail", list, [])]
    out = {}
    for name in doc.get("arches", dict, {}):
        a = doc.sub("arches").sub(name)
        a.check_keys({"e_machine", "byteorder", "page_size", "direct_map", "kernel_map", "kernel_start", "registers",
                      "greg_slots", "pc", "sp"})
        order = a.string("byteorder", required=True)
        if order not in ("little", "big"):
            raise a.fail("byteorder", f"expected 'little' or 'big', got {order!r}")
        registers = a.strings("registers", required=True)
        slots = a.get("greg_slots", int, required=True)
        if len(registers) > slots:
            raise a.fail("registers", f"{len(registers)} registers do not fit {slots} slots")
        for key in ("pc", "sp"):
            if a.string(key, required=True) not in registers:
                raise a.fail(key, f"{a.table[key]!r} is not one of the registers")
        try:
            layout = prstatus_layout(head, tail, slots, order)
        except ValueError as exc:
            raise pr.fail("head", str(exc)) from None
        out[name] = Arch(name, a.get("e_machine", int, required=True), order, a.size("page_size", required=True),
                         a.get("direct_map", int, required=True), a.get("kernel_map", int, required=True),
                         a.get("kernel_start", int, required=True), registers, slots, a.table["pc"], a.table["sp"], layout)
    return out


def _lifecycle(r: TableReader, platform: str) -> Lifecycle:
    r.check_keys({"armed_by", "rearm", "variables", "transitions"})
    variables = {k: r.sub("variables").string(k) for k in r.sub("variables", required=True).table}
    armed_by = r.string("armed_by", required=True)
    if armed_by not in variables:
        raise r.fail("armed_by", f"{armed_by!r} is not one of the variables ({', '.join(variables)})")
    transitions: dict[str, Transition] = {}
    for t in r.items("transitions"):
        t.check_keys({"name", "trigger", "from", "when", "to", "set", "otherwise", "then"})
        for i, lit in enumerate(t.strings("when")):
            if lit.removeprefix("!") not in variables:
                raise t.fail(f"when[{i}]", f"{lit!r} names no variable ({', '.join(variables)})")
        sets = {}
        for var, value in t.sub("set").table.items():
            if var not in variables:
                raise t.fail(f"set.{var}", f"no such variable ({', '.join(variables)})")
            if isinstance(value, bool):
                sets[var] = SetValue(value)
            else:
                since = t.sub("set").sub(var)
                since.check_keys({"since"})
                try:
                    sets[var] = SetValue(since=KernelVersion.parse(since.string("since", required=True)))
                except ValueError as exc:
                    raise since.fail("since", str(exc)) from None
        sources = t.strings("from") or STATES
        for i, s in enumerate(sources):
            if s not in STATES:
                raise t.fail(f"from[{i}]", f"unknown state {s!r} (use {', '.join(STATES)})")
        to = t.string("to", "")
        if to and to not in STATES:
            raise t.fail("to", f"unknown state {to!r} (use {', '.join(STATES)})")
        name = t.string("name", required=True)
        transitions[name] = Transition(name, t.string("trigger", required=True), sources, t.strings("when"), to, sets,
                                       t.string("otherwise", ""), t.string("then", ""))
    for t in transitions.values():
        for link in (t.otherwise, t.then):
            if link and link not in transitions:
                raise r.fail("transitions", f"{t.name} leads to {link!r}, which is not a transition")
    if "boot" not in transitions:
        raise r.fail("transitions", "a platform's life needs a 'boot' transition")
    rearm = r.string("rearm", "service")
    if rearm not in REARM_WAYS:
        raise r.fail("rearm", f"unknown way {rearm!r} (use {', '.join(REARM_WAYS)})")
    return Lifecycle(platform, armed_by, variables, transitions, rearm)


def load_spec_text(texts: list[tuple[str, str]], base: Spec | None = None) -> Spec:
    """Build a :class:`Spec` from ``(source name, TOML text)`` pairs.

    With *base*, its platforms, arches and files come first and the new files
    are added (a user's spec file can use the built-in platforms).
    """
    docs = [_reader(source, "", parse_toml(text, source, SpecFileError)) for source, text in texts]
    eras: dict[str, SysfsEra] = {p.sysfs.name: p.sysfs for p in base.platforms.values()} if base else {}
    arches: dict[str, Arch] = dict(base.arches) if base else {}
    platforms: dict[str, Platform] = dict(base.platforms) if base else {}
    for doc in docs:
        doc.check_keys(_TOP)
        eras.update({name: _sysfs(doc.sub("sysfs").sub(name), name) for name in doc.get("sysfs", dict, {})})
        if "arches" in doc.table:
            arches.update(_arches(doc))
    lifecycles: dict[str, Lifecycle] = dict(base.lifecycles) if base else {}
    for doc in docs:
        for name in doc.get("platforms", dict, {}):
            platforms[name] = _platform(doc.sub("platforms").sub(name), name, eras, arches)
    for doc in docs:
        for name in doc.get("lifecycle", dict, {}):
            if name not in platforms:
                raise doc.fail(f"lifecycle.{name}", f"unknown platform (known: {', '.join(platforms)})")
            lifecycles[name] = _lifecycle(doc.sub("lifecycle").sub(name), name)
    syscalls: dict[str, Any] = dict(base.syscalls) if base else {}
    for doc in docs:
        syscalls.update(doc.get("syscalls", dict, {}))
    files = list(base.files) if base else []
    for doc in docs:
        for kind in KINDS:
            if kind in doc.table and not isinstance(doc.table[kind], list):
                raise doc.fail(kind, f"expected an array of tables ([[{kind}]]), got {type(doc.table[kind]).__name__}")
            for item in doc.items(kind):
                new = load_entry(item, kind, platforms, arches, lifecycles)
                if any(f.name == new.name for f in files):
                    raise item.fail("name", f"{new.name!r} is already defined")
                files.append(new)
    return Spec(platforms, tuple(files), arches, lifecycles, syscalls)


def builtin_texts() -> list[tuple[str, str]]:
    """The built-in spec files as ``(name, text)``."""
    folder = resources.files("abi_specs") / "specs"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".toml"))
    return [(f"abi_specs/specs/{n}", (folder / n).read_text(encoding="utf-8")) for n in names]


_BUILTIN: Spec | None = None


def builtin_spec() -> Spec:
    """The spec shipped with the package (loaded once)."""
    global _BUILTIN
    if _BUILTIN is None:
        _BUILTIN = load_spec_text(builtin_texts())
    return _BUILTIN


def load_spec_file(path: str | Path) -> Spec:
    """The built-in spec extended with the files described in *path*.

    Raises :class:`SpecFileError` (naming the file) when it is missing or broken.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecFileError(str(path), "", exc.strerror or str(exc)) from None
    except UnicodeDecodeError as exc:
        raise SpecFileError(str(path), "", f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    return load_spec_text([(str(path), text)], base=builtin_spec())

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

import dataclasses
import re

from .arches import Arch, prstatus_layout
from .errors import SpecFileError
from .lifecycle import REARM_WAYS, STATES, Lifecycle, SetValue, Transition
from .model import AbiFile, Spec
from .platform import Platform, SysfsEra
from .versions import KernelVersion

# The builder's own modules (the entry loader, the TOML reader) and pathlib are imported where
# the spec is built: a quick command that finds it in the cache (spec_cache) needs none of them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from .tomlreader import TableReader

_TOP = {"platforms", "sysfs", "arches", "prstatus", "lifecycle", "syscalls"}


def _reader(source: str, key: str, table: Any) -> TableReader:
    from .tomlreader import TableReader

    return TableReader(source, key, table, SpecFileError)


def _sysfs(r: TableReader, name: str) -> SysfsEra:
    r.check_keys({"title", "since", "store_slack", "empty_write"})
    slack = r.get("store_slack", int, required=True)
    if slack not in (0, 1):
        raise r.fail("store_slack", f"expected 0 or 1, got {slack}")
    since = r.string("since", required=True)
    try:
        KernelVersion.parse(since)
    except ValueError as exc:
        raise r.fail("since", str(exc)) from None
    return SysfsEra(name, r.string("title", name), since, slack, r.get("empty_write", int, 0))


def _platform(r: TableReader, name: str, arches: dict[str, Arch]) -> Platform:
    r.check_keys({"title", "arches", "default_arch", "description", "states", "layout", "kernels", "default_kernel",
                  "eras", "messages"})
    states = r.get("states", dict, required=True)
    bad = sorted(set(states) - set(STATES))
    if bad:
        raise r.fail(f"states.{bad[0]}", f"unknown state (use {', '.join(STATES)})")
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
        description=r.string("description", "").strip(),
        layout={k: layout.size(k) for k in layout.table},
        **_kernels(r),
        **_eras(r),
    )


def _version_text(r: TableReader, key: str, text: str) -> str:
    try:
        KernelVersion.parse(text)
    except ValueError as exc:
        raise r.fail(key, str(exc)) from None
    return text


def _eras(r: TableReader) -> dict[str, Any]:
    """``[eras]`` (name = first kernel) and ``[messages]`` (name = [{since, format}, ...], oldest first)."""
    eras_table = r.sub("eras")
    eras = {k: _version_text(eras_table, k, eras_table.string(k, required=True)) for k in eras_table.table}
    messages: dict[str, tuple[tuple[str, str], ...]] = {}
    texts = r.sub("messages")
    for name in texts.table:
        pairs = []
        for item in texts.items(name):
            item.check_keys({"since", "format"})
            pairs.append((_version_text(item, "since", item.string("since", required=True)),
                          item.string("format", required=True)))
        pairs.sort(key=lambda p: KernelVersion.parse(p[0]))
        messages[name] = tuple(pairs)
    return {"eras": eras, "messages": messages}


def _kernels(r: TableReader) -> dict[str, Any]:
    """A platform's kernels: ``kernels = [FIRST, END]`` (END "" for still there) and its default."""
    pair = r.get("kernels", list, ["2.6.0", ""])
    if len(pair) != 2 or not all(isinstance(v, str) for v in pair):
        raise r.fail("kernels", "expected [FIRST, END]: the first version with the platform and the first without it")
    default = r.string("default_kernel", "5.15.0")
    try:
        first, end, chosen = (KernelVersion.parse(v) if v else None for v in (*pair, default))
    except ValueError as exc:
        raise r.fail("kernels", str(exc)) from None
    if chosen is None or first is None or chosen < first or (end is not None and chosen >= end):
        raise r.fail("default_kernel", f"{default} is not one of the platform's kernels ({pair[0]} to {pair[1] or 'now'})")
    return {"kernels": (pair[0], pair[1]), "default_kernel": default}


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
    from .spec_entries import KINDS, load_entry
    from .tomlreader import parse_toml

    for source, text in texts:
        _check_modes_are_octal(source, text)
    docs = [_reader(source, "", parse_toml(text, source, SpecFileError)) for source, text in texts]
    eras: dict[str, SysfsEra] = {e.name: e for e in base.eras} if base else {}
    arches: dict[str, Arch] = dict(base.arches) if base else {}
    platforms: dict[str, Platform] = dict(base.platforms) if base else {}
    for doc in docs:
        doc.check_keys(_TOP | set(KINDS))
        eras.update({name: _sysfs(doc.sub("sysfs").sub(name), name) for name in doc.get("sysfs", dict, {})})
        if "arches" in doc.table:
            arches.update(_arches(doc))
    lifecycles: dict[str, Lifecycle] = dict(base.lifecycles) if base else {}
    for doc in docs:
        for name in doc.get("platforms", dict, {}):
            platforms[name] = _platform(doc.sub("platforms").sub(name), name, arches)
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
                same = next((f for f in files if f.path == new.path), None)
                if same is not None:
                    raise item.fail("path", f"{new.path} is already the built-in entry {same.name!r}: a draft names "
                                    "a new file (extend the built-in spec instead of repeating it)")
                files.append(new)
    ordered = tuple(sorted(eras.values(), key=lambda e: KernelVersion.parse(e.since)))
    return Spec(platforms, tuple(_inherit_from_targets(files)), arches, lifecycles, syscalls, ordered)


_DECIMAL_MODE = r"^\s*mode\s*=\s*([1-9][0-9]*)\s*(#.*)?$"  # compiled (and kept by re) on first use


def _check_modes_are_octal(source: str, text: str) -> None:
    """``mode = 444`` is decimal in TOML (0o674): refuse it, and say what to write."""
    for m in re.finditer(_DECIMAL_MODE, text, re.M):
        value = int(m.group(1))
        line = text.count("\n", 0, m.start()) + 1
        hint = f"; write 0o{m.group(1)}" if set(m.group(1)) <= set("01234567") else ""
        raise SpecFileError(source, f"line {line}: mode",
                            f"{value} is a decimal number ({value:#o} in octal){hint}: modes are written 0o644")


def _inherit_from_targets(files: list[AbiFile]) -> list[AbiFile]:
    """A file with link_to reads, writes and fails as its target: it takes the target's formats and errors."""
    by_name = {f.name: f for f in files}
    out = []
    for f in files:
        if f.link_to and f.read is None and f.write is None:
            target = by_name.get(f.link_to)
            if target is None:
                raise SpecFileError(f.source, f"{f.name}.link_to", f"{f.link_to!r} names no ABI file")
            f = dataclasses.replace(f, read=target.read, write=target.write, errors=f.errors or target.errors,
                                    quirks=f.quirks or target.quirks)
        out.append(f)
    return out


def builtin_texts() -> list[tuple[str, str]]:
    """The built-in spec files as ``(name, text)`` (beside this module, in the package as in the checkout)."""
    from pathlib import Path

    folder = Path(__file__).with_name("specs")  # not importlib.resources: it costs a quick command 5 ms
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".toml"))
    return [(f"abi_specs/specs/{n}", (folder / n).read_text(encoding="utf-8")) for n in names]


_BUILTIN: Spec | None = None


def builtin_spec() -> Spec:
    """The spec shipped with the package (loaded once; from the per-user cache when it is current)."""
    global _BUILTIN
    if _BUILTIN is None:
        from . import spec_cache
        from .listing import listing, package_stamp

        stamp = package_stamp()
        spec = spec_cache.load(stamp, Spec, index=2)
        if spec is None:
            from .check import quick_entries

            spec = load_spec_text(builtin_texts())
            # The cheap objects first (a load unpickles those before the one it wants):
            # `specs` reads only the rows, `check` only the quick entries.
            spec_cache.save(stamp, listing(spec), quick_entries(spec), spec)
        _BUILTIN = spec
    return _BUILTIN


def load_spec_file(path: str | Path) -> Spec:
    """The built-in spec extended with the files described in *path*.

    Raises :class:`SpecFileError` (naming the file) when it is missing or broken.
    """
    from pathlib import Path

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecFileError(str(path), "", exc.strerror or str(exc)) from None
    except UnicodeDecodeError as exc:
        raise SpecFileError(str(path), "", f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    return load_spec_text([(str(path), text)], base=builtin_spec())

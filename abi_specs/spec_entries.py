"""Load one ABI file of a spec file: an ``[[attribute]]``, ``[[property]]`` or ``[[core]]`` table.

Part of the loader (:mod:`abi_specs.specfile`): every key is checked, and a
mistake comes back as one line naming the file, the key and the problem.
"""

from __future__ import annotations

import errno as _errno
from typing import Any

from .arches import Arch
from .core_rules import INFO_VALUE_PATTERNS, CoreFormat, InfoKey, NoteKind
from .devicetree import CellLayout
from .kformat import ByteRange, PrintfFormat, ReadFormat
from .kscan import KSTRTOX, parse_scanf_format
from .lifecycle import STATES, Lifecycle
from .model import (
    CONDITIONS,
    STABILITIES,
    AbiFile,
    ErrorRule,
    Quirk,
    WriteFormat,
)
from .platform import Platform
from .tomlreader import TableReader
from .versions import KernelVersion

KINDS = ("attribute", "property", "core", "procfs")
_REQUIRED = ("name", "path", "mode", "platforms", "present", "date", "kernel_version", "contact", "description")
_ALLOWED = {*_REQUIRED, "group", "stability", "users", "read", "write", "errors", "quirks", "cells", "link_to",
            "notes", "vmcoreinfo", "constants", "when", "directory", "removed", "link_since", "since", "actions"}


def _read_format(r: TableReader, what: str) -> ReadFormat:
    r.check_keys({"format", "fields", "ranges"})
    fields = r.strings("fields", required=True)
    try:
        printf = PrintfFormat(r.string("format", required=True), fields, what)
    except ValueError as exc:
        raise r.fail("format", str(exc)) from None
    ranges = []
    for rr in r.items("ranges"):
        rr.check_keys({"name", "start", "length"})
        rng = ByteRange(rr.string("name", required=True), rr.string("start", required=True),
                        rr.string("length", required=True))
        for key in ("start", "length"):
            if getattr(rng, key) not in fields:
                raise rr.fail(key, f"{getattr(rng, key)!r} is not one of the fields")
        ranges.append(rng)
    return ReadFormat(printf, tuple(ranges))


def _write_format(r: TableReader) -> WriteFormat:
    r.check_keys({"parser", "format", "fields", "need", "base", "accept", "max_bytes", "errno"})
    parser = r.string("parser", required=True)
    if parser not in ("sscanf", "text", *KSTRTOX):
        raise r.fail("parser", f"unknown parser {parser!r} (use sscanf, text, {', '.join(KSTRTOX)})")
    fields = r.strings("fields")
    fmt = r.string("format", "")
    if parser == "sscanf":
        if not fmt:
            raise r.fail("format", "missing (sscanf needs a format)")
        try:
            parse_scanf_format(fmt, fields)
        except ValueError as exc:
            raise r.fail("format", str(exc)) from None
    base = r.get("base", int, 0)
    if base not in (0, 8, 10, 16):
        raise r.fail("base", f"expected 0, 8, 10 or 16, got {base}")
    err = r.string("errno", "EINVAL")
    if not hasattr(_errno, err):
        raise r.fail("errno", f"unknown errno name {err!r}")
    return WriteFormat(
        parser=parser,
        format=fmt,
        fields=fields,
        need=r.get("need", int, len(fields) if parser == "sscanf" else 0),
        base=base,
        accept=tuple(r.get("accept", list, [])),
        max_bytes=r.get("max_bytes", int, 0),
        parse_errno=getattr(_errno, err),
    )


def _core_format(r: TableReader, arches: dict[str, Arch]) -> CoreFormat:
    notes = []
    for n in r.items("notes"):
        n.check_keys({"name", "type", "type_name", "what"})
        notes.append(NoteKind(n.string("name", required=True), n.get("type", int, required=True),
                              n.string("type_name", required=True), n.string("what", "")))
    rules = []
    for k in r.items("vmcoreinfo"):
        k.check_keys({"key", "value"})
        value = k.string("value", required=True)
        if value not in INFO_VALUE_PATTERNS:
            raise k.fail("value", f"unknown value syntax {value!r} (use {', '.join(INFO_VALUE_PATTERNS)})")
        rules.append(InfoKey(k.string("key", required=True), value))
    return CoreFormat(dict(arches), tuple(notes), tuple(rules))


def _cells(r: TableReader) -> CellLayout:
    c = r.sub("cells", required=True)
    c.check_keys({"fields", "repeat", "head"})
    try:
        return CellLayout(
            tuple(tuple(f) for f in c.get("fields", list, required=True)),
            c.get("repeat", bool, False),
            tuple(tuple(f) for f in c.get("head", list, [])),
        )
    except (ValueError, TypeError) as exc:
        raise c.fail("fields", str(exc)) from None


def _errors(r: TableReader) -> tuple[ErrorRule, ...]:
    out = []
    for e in r.items("errors"):
        e.check_keys({"errno", "when", "conditions"})
        name = e.string("errno", required=True)
        if not hasattr(_errno, name):
            raise e.fail("errno", f"unknown errno name {name!r}")
        conditions = e.strings("conditions")
        for i, c in enumerate(conditions):
            if c not in CONDITIONS:
                raise e.fail(f"conditions[{i}]", f"unknown condition {c!r} (known: {', '.join(CONDITIONS)})")
        out.append(ErrorRule(name, e.string("when", required=True), conditions))
    return tuple(out)


def _quirks(r: TableReader) -> tuple[Quirk, ...]:
    out = []
    for q in r.items("quirks"):
        q.check_keys({"name", "default", "description", "kernels"})
        kernels = []
        for i, pair in enumerate(q.get("kernels", list, [])):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)):
                raise q.fail(f"kernels[{i}]", "expected [FIRST, END]: the first version with the behaviour and the "
                             "first without it (\"\" for none)")
            try:
                for v in filter(None, pair):
                    KernelVersion.parse(v)
            except ValueError as exc:
                raise q.fail(f"kernels[{i}]", str(exc)) from None
            kernels.append((pair[0], pair[1]))
        out.append(Quirk(q.string("name", required=True), q.get("default", bool, True),
                         q.string("description", required=True), tuple(kernels)))
    return tuple(out)


def _constants(r: TableReader) -> dict[str, dict[str, int]]:
    """Named values of fields: ``{field: {NAME: value}}``."""
    c = r.sub("constants")
    out = {}
    for name in c.table:
        values = c.sub(name)
        out[name] = {k: values.get(k, int, required=True) for k in values.table}
    return out


def _where(r: TableReader, platforms: dict[str, Platform]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    plats = r.strings("platforms", required=True)
    for i, p in enumerate(plats):
        if p not in platforms:
            raise r.fail(f"platforms[{i}]", f"unknown platform {p!r} (known: {', '.join(platforms)})")
    present = r.strings("present", required=True)
    for i, s in enumerate(present):
        if s not in STATES:
            raise r.fail(f"present[{i}]", f"unknown state {s!r} (use {', '.join(STATES)})")
    return plats, present


def _when(r: TableReader, platforms: tuple[str, ...], lifecycles: dict[str, Lifecycle]) -> tuple[str, ...]:
    literals = r.strings("when")
    for i, lit in enumerate(literals):
        var = lit.removeprefix("!")
        for p in platforms:
            if p in lifecycles and var not in lifecycles[p].variables:
                raise r.fail(f"when[{i}]", f"{var!r} is not a variable of platform {p} "
                             f"(known: {', '.join(lifecycles[p].variables)})")
    return literals


def _actions(r: TableReader, plats: tuple[str, ...], lifecycles: dict[str, Lifecycle]) -> dict[str, str]:
    """``actions = { VALUE = "transition" }``: written values that move the machine through its life."""
    table = r.sub("actions")
    out = {}
    for value in table.table:
        name = table.string(value, required=True)
        for p in plats:
            if p in lifecycles and name not in lifecycles[p].transitions:
                raise table.fail(value, f"{name!r} is not a transition of platform {p} "
                                 f"(known: {', '.join(lifecycles[p].transitions)})")
        out[value] = name
    return out


def load_entry(r: TableReader, kind: str, platforms: dict[str, Platform], arches: dict[str, Arch],
               lifecycles: dict[str, Lifecycle]) -> AbiFile:
    """The :class:`AbiFile` an ``[[attribute]]``, ``[[property]]`` or ``[[core]]`` table describes."""
    r.check_keys(_ALLOWED)
    r.require(*_REQUIRED)
    name = r.string("name", required=True)
    path = r.string("path", required=True)
    if not path.startswith("/"):
        raise r.fail("path", f"expected an absolute path, got {path!r}")
    mode = r.get("mode", int, required=True)
    if not 0 <= mode <= 0o777:
        raise r.fail("mode", f"expected permission bits such as 0o644, got {mode:#o}")
    plats, present = _where(r, platforms)
    stability = r.string("stability", "testing")
    if stability not in STABILITIES:
        raise r.fail("stability", f"expected one of {', '.join(STABILITIES)}, got {stability!r}")
    read = _read_format(r.sub("read"), name) if "read" in r.table else None
    write = _write_format(r.sub("write")) if "write" in r.table else None
    if kind == "attribute" and read is None and write is None and "link_to" not in r.table \
            and not r.get("directory", bool, False):
        raise r.fail("read", "an attribute needs a read or a write format (or both)")
    if write is not None and not mode & 0o222:
        raise r.fail("mode", f"{mode:#o} has no write bit but a write format is given")
    if read is not None and not mode & 0o444:
        raise r.fail("mode", f"{mode:#o} has no read bit but a read format is given")
    return AbiFile(
        name=name,
        path=path,
        kind=kind,
        mode=mode,
        platforms=plats,
        present=present,
        group=r.string("group", "sysfs-" + path.strip("/").replace("/", "-")),
        stability=stability,
        date=r.string("date", required=True),
        kernel_version=r.string("kernel_version", required=True),
        contact=_contact(r),
        users=r.strings("users"),
        description=r.string("description", required=True).strip(),
        source=r.source,
        read=read,
        write=write,
        cells=_cells(r) if kind == "property" else None,
        core=_core_format(r, arches) if kind == "core" else None,
        errors=_errors(r),
        quirks=_quirks(r),
        link_to=r.string("link_to", ""),
        constants=_constants(r),
        when=_when(r, plats, lifecycles),
        actions=_actions(r, plats, lifecycles),
        documented=kind in ("attribute", "core"),  # a directory attribute documents its files as a whole
        directory=r.get("directory", bool, False),
        **_versions(r, present),
    )


def _contact(r: TableReader) -> str:
    contact = r.string("contact", required=True).strip()
    if not contact:
        raise r.fail("contact", "empty: name the list that discusses the file, e.g. linux-kernel@vger.kernel.org "
                     "(scripts/get_maintainer.pl on its source file says which)")
    return contact


def _version(r: TableReader, key: str) -> str:
    """A version key, checked to parse (``6.10``, ``2.6.25``); "" when absent."""
    text = r.string(key, "")
    if text:
        try:
            KernelVersion.parse(text)
        except ValueError as exc:
            raise r.fail(key, str(exc)) from None
    return text


def _versions(r: TableReader, present: tuple[str, ...]) -> dict[str, Any]:
    """removed, link_since and since: which kernel versions have the file, and in what form."""
    _version(r, "kernel_version")
    removed = _version(r, "removed")
    if removed and KernelVersion.parse(removed) <= KernelVersion.parse(r.string("kernel_version")):
        raise r.fail("removed", f"{removed} is not after kernel_version {r.string('kernel_version')}")
    link_since = _version(r, "link_since")
    if link_since and "link_to" not in r.table:
        raise r.fail("link_since", "only a file with link_to can become a symlink")
    since = {}
    if "since" in r.table:
        table = r.sub("since")
        for state in table.table:
            if state not in present:
                raise table.fail(state, f"the file is not present in the {state} kernel at all")
            since[state] = _version(table, state)
    return {"removed": removed, "link_since": link_since, "since": since}

"""Load the spec from TOML: the built-in files and users' own spec files.

The built-in spec lives in ``abi_specs/specs/*.toml``; a kernel developer
drafting a new attribute writes a small file in the same vocabulary and passes
it with ``--spec-file``. Both go through :func:`load_spec_text`, so a mistake in
either is reported the same way: one line naming the file, the key and the
problem.
"""

from __future__ import annotations

import errno as _errno
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from .binfmt import CellLayout
from .errors import SpecFileError
from .kformat import PrintfFormat
from .kscan import KSTRTOX, parse_scanf_format
from .model import (
    INFO_VALUE_PATTERNS,
    STABILITIES,
    STATES,
    AbiFile,
    ByteRange,
    CoreFormat,
    ErrorRule,
    InfoKey,
    Machine,
    Platform,
    Quirk,
    ReadFormat,
    Spec,
    WriteFormat,
)

_KINDS = {"attribute": "attribute", "property": "property", "core": "core"}
_REQUIRED = ("name", "path", "mode", "platforms", "present", "date", "kernel_version", "contact", "description")
_ALLOWED = set(_REQUIRED) | {
    "group", "stability", "users", "read", "write", "errors", "quirks", "cells", "link_to",
    "machines", "vmcoreinfo",
}


class _Reader:
    """Typed access to one TOML table, with errors that name the key."""

    def __init__(self, source: str, key: str, table: dict[str, Any]) -> None:
        self.source, self.key, self.table = source, key, table

    def fail(self, key: str, problem: str) -> SpecFileError:
        return SpecFileError(self.source, f"{self.key}.{key}" if self.key else key, problem)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        if key not in self.table:
            if required:
                raise self.fail(key, "missing")
            return default
        value = self.table[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(key, f"expected {want}, got {type(value).__name__} {value!r}")
        return value

    def strings(self, key: str, required: bool = False) -> tuple[str, ...]:
        value = self.get(key, (list, str), [], required)
        if isinstance(value, str):
            return (value,)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{key}[{i}]", f"expected a string, got {item!r}")
        return tuple(value)

    def sub(self, key: str, table: dict[str, Any]) -> _Reader:
        return _Reader(self.source, f"{self.key}.{key}" if self.key else key, table)

    def check_keys(self, allowed: Iterable[str]) -> None:
        unknown = sorted(set(self.table) - set(allowed))
        if unknown:
            raise self.fail(unknown[0], f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _platform(r: _Reader, name: str) -> Platform:
    r.check_keys({"title", "arches", "sysfs", "description", "states"})
    states = r.get("states", dict, required=True)
    bad = sorted(set(states) - set(STATES))
    if bad:
        raise r.fail(f"states.{bad[0]}", f"unknown state (use {', '.join(STATES)})")
    sysfs = r.get("sysfs", str, "kernfs")
    if sysfs not in ("sysfs-2.6", "kernfs"):
        raise r.fail("sysfs", f"expected 'sysfs-2.6' or 'kernfs', got {sysfs!r}")
    return Platform(
        name=name,
        title=r.get("title", str, name),
        arches=r.strings("arches", required=True),
        states=dict(states),
        sysfs=sysfs,
        description=r.get("description", str, "").strip(),
    )


def _read_format(r: _Reader, what: str) -> ReadFormat:
    r.check_keys({"format", "fields", "ranges"})
    fields = r.strings("fields", required=True)
    try:
        printf = PrintfFormat(r.get("format", str, required=True), fields, what)
    except ValueError as exc:
        raise r.fail("format", str(exc)) from None
    ranges = []
    for i, item in enumerate(r.get("ranges", list, [])):
        rr = r.sub(f"ranges[{i}]", item)
        rr.check_keys({"name", "start", "length"})
        rng = ByteRange(rr.get("name", str, required=True), rr.get("start", str, required=True),
                        rr.get("length", str, required=True))
        for key in ("start", "length"):
            if getattr(rng, key) not in fields:
                raise rr.fail(key, f"{getattr(rng, key)!r} is not one of the fields")
        ranges.append(rng)
    return ReadFormat(printf, tuple(ranges))


def _write_format(r: _Reader) -> WriteFormat:
    r.check_keys({"parser", "format", "fields", "need", "base", "accept", "max_bytes", "errno"})
    parser = r.get("parser", str, required=True)
    if parser not in ("sscanf", "text", *KSTRTOX):
        raise r.fail("parser", f"unknown parser {parser!r} (use sscanf, text, {', '.join(KSTRTOX)})")
    fields = r.strings("fields")
    fmt = r.get("format", str, "")
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
    err = r.get("errno", str, "EINVAL")
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


def _core_format(r: _Reader) -> CoreFormat:
    machines = {}
    for arch, table in r.get("machines", dict, required=True).items():
        m = r.sub(f"machines.{arch}", table)
        m.check_keys({"e_machine", "endian", "prstatus_size"})
        endian = m.get("endian", str, required=True)
        if endian not in ("little", "big"):
            raise m.fail("endian", f"expected 'little' or 'big', got {endian!r}")
        machines[arch] = Machine(m.get("e_machine", int, required=True), endian,
                                 m.get("prstatus_size", int, required=True))
    rules = []
    for i, item in enumerate(r.get("vmcoreinfo", list, [])):
        k = r.sub(f"vmcoreinfo[{i}]", item)
        k.check_keys({"key", "value"})
        value = k.get("value", str, required=True)
        if value not in INFO_VALUE_PATTERNS:
            raise k.fail("value", f"unknown value syntax {value!r} (use {', '.join(INFO_VALUE_PATTERNS)})")
        rules.append(InfoKey(k.get("key", str, required=True), value))
    return CoreFormat(machines, tuple(rules))


def _abi_file(r: _Reader, kind: str, platforms: dict[str, Platform]) -> AbiFile:
    r.check_keys(_ALLOWED)
    name = r.get("name", str, required=True)
    path = r.get("path", str, required=True)
    if not path.startswith("/"):
        raise r.fail("path", f"expected an absolute path, got {path!r}")
    mode = r.get("mode", int, required=True)
    if not 0 <= mode <= 0o777:
        raise r.fail("mode", f"expected permission bits such as 0o644, got {mode:#o}")
    for i, p in enumerate(plats := r.strings("platforms", required=True)):
        if p not in platforms:
            raise r.fail(f"platforms[{i}]", f"unknown platform {p!r} (known: {', '.join(platforms)})")
    for i, s in enumerate(present := r.strings("present", required=True)):
        if s not in STATES:
            raise r.fail(f"present[{i}]", f"unknown state {s!r} (use {', '.join(STATES)})")
    stability = r.get("stability", str, "testing")
    if stability not in STABILITIES:
        raise r.fail("stability", f"expected one of {', '.join(STABILITIES)}, got {stability!r}")
    read = write = cells = core = None
    if "read" in r.table:
        read = _read_format(r.sub("read", r.get("read", dict)), name)
    if "write" in r.table:
        write = _write_format(r.sub("write", r.get("write", dict)))
    if kind == "property":
        c = r.sub("cells", r.get("cells", dict, required=True))
        c.check_keys({"fields", "repeat", "head"})
        try:
            cells = CellLayout(
                tuple(tuple(f) for f in c.get("fields", list, required=True)),
                c.get("repeat", bool, False),
                tuple(tuple(f) for f in c.get("head", list, [])),
            )
        except (ValueError, TypeError) as exc:
            raise c.fail("fields", str(exc)) from None
    if kind == "core":
        core = _core_format(r)
    if kind == "attribute" and read is None and write is None:
        raise r.fail("read", "an attribute needs a read or a write format (or both)")
    if write is not None and not mode & 0o222:
        raise r.fail("mode", f"{mode:#o} has no write bit but a write format is given")
    if read is not None and not mode & 0o444:
        raise r.fail("mode", f"{mode:#o} has no read bit but a read format is given")
    errors = []
    for i, item in enumerate(r.get("errors", list, [])):
        e = r.sub(f"errors[{i}]", item)
        e.check_keys({"errno", "when"})
        name_ = e.get("errno", str, required=True)
        if not hasattr(_errno, name_):
            raise e.fail("errno", f"unknown errno name {name_!r}")
        errors.append(ErrorRule(name_, e.get("when", str, required=True)))
    quirks = []
    for i, item in enumerate(r.get("quirks", list, [])):
        q = r.sub(f"quirks[{i}]", item)
        q.check_keys({"name", "default", "description"})
        quirks.append(Quirk(q.get("name", str, required=True), q.get("default", bool, True),
                            q.get("description", str, required=True)))
    return AbiFile(
        name=name,
        path=path,
        kind=kind,
        mode=mode,
        platforms=plats,
        present=present,
        group=r.get("group", str, "sysfs-" + path.strip("/").replace("/", "-")),
        stability=stability,
        date=r.get("date", str, required=True),
        kernel_version=r.get("kernel_version", str, required=True),
        contact=r.get("contact", str, required=True),
        users=r.strings("users"),
        description=r.get("description", str, required=True).strip(),
        source=r.source,
        read=read,
        write=write,
        cells=cells,
        core=core,
        errors=tuple(errors),
        quirks=tuple(quirks),
        link_to=r.get("link_to", str, ""),
        documented=kind != "property",
    )


def load_spec_text(texts: list[tuple[str, str]], base: Spec | None = None) -> Spec:
    """Build a :class:`Spec` from ``(source name, TOML text)`` pairs.

    With *base*, its platforms and files come first and the new files are
    added (a user's spec file can use the built-in platforms).
    """
    platforms: dict[str, Platform] = dict(base.platforms) if base else {}
    tables: list[tuple[str, dict[str, Any]]] = []
    for source, text in texts:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecFileError(source, "", f"not valid TOML: {exc}") from None
        top = _Reader(source, "", data)
        top.check_keys({"platforms", *_KINDS})
        for pname, table in top.get("platforms", dict, {}).items():
            if not isinstance(table, dict):
                raise top.fail(f"platforms.{pname}", f"expected a table, got {table!r}")
            platforms[pname] = _platform(top.sub(f"platforms.{pname}", table), pname)
        tables.append((source, data))
    files: list[AbiFile] = list(base.files) if base else []
    for source, data in tables:
        for kind in _KINDS:
            items = data.get(kind, [])
            if not isinstance(items, list):
                raise SpecFileError(source, kind, f"expected an array of tables ([[{kind}]]), got {type(items).__name__}")
            for i, table in enumerate(items):
                reader = _Reader(source, f"{kind}[{i}]", table)
                new = _abi_file(reader, kind, platforms)
                if any(f.name == new.name for f in files):
                    raise reader.fail("name", f"{new.name!r} is already defined")
                files.append(new)
    return Spec(platforms, tuple(files))


def builtin_texts() -> list[tuple[str, str]]:
    """The built-in spec files as ``(name, text)``, platforms first."""
    folder = resources.files("abi_specs") / "specs"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".toml"))
    names.sort(key=lambda n: n != "platforms.toml")
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

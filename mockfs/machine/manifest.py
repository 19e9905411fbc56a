"""TOML fixture manifests (``format = 1``): load, write, and find the built-in ones.

The format is described in fixtures/FORMAT.md. Every problem in a manifest is
reported as one FixtureError naming the file, the key and the problem.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import tomli_w

from abi_specs.tomlreader import TableReader, read_toml

from .model import (
    LOG_FORMATS,
    PAGE_KINDS,
    Cpu,
    Fadump,
    Fixture,
    FixtureError,
    LogRecord,
    Overlay,
    PhypDump,
)

FORMAT_VERSION = 1
def _fixtures_dir() -> Path:
    """The built-in fixtures: fixtures/ of the checkout, or the package abi_harness_fixtures of a wheel."""
    checkout = Path(__file__).resolve().parents[2] / "fixtures"
    if (checkout / "FORMAT.md").is_file():  # not some other site-packages/fixtures
        return checkout
    import importlib.util

    spec = importlib.util.find_spec("abi_harness_fixtures")  # a data package: no __init__, one folder
    if spec is None or not spec.submodule_search_locations:
        return checkout  # neither: the built-ins are missing, and saying so names the checkout's folder
    return Path(next(iter(spec.submodule_search_locations)))


FIXTURES_DIR = _fixtures_dir()

_TOP_KEYS = {
    "format", "name", "description", "platform", "arch", "page_size", "osrelease", "kernel_version", "seed",
    "hostname", "crashtime", "ram", "cpus", "log", "pages", "overlays", "phyp", "fadump", "kdump", "quirks",
}  # fmt: skip
_DMESG_RE = re.compile(r"^\[\s*(\d+)\.(\d{6})\] ?(.*)$")


def _blob(r: TableReader, key: str, base: Path | None) -> Path:
    rel = r.string(key, required=True)
    if base is None:
        raise r.fail(key, "a blob file needs a manifest on disk")
    path = (base / rel).resolve()
    if not path.is_file():
        raise r.fail(key, f"blob file {rel!r} not found next to the manifest")
    return path


def _ram(doc: TableReader) -> tuple[tuple[int, int], ...]:
    out = []
    for t in doc.items("ram"):
        t.check_keys({"start", "size"})
        out.append((t.size("start", required=True), t.size("size", required=True)))
    return tuple(out)


def _cpus(doc: TableReader) -> tuple[Cpu, ...]:
    out = []
    for t in doc.items("cpus"):
        t.check_keys({"pid", "registers"})
        regs = t.sub("registers")
        out.append(Cpu(pid=t.size("pid", required=True), registers={k: regs.size(k) for k in regs.table}))
    return tuple(out)


def _log(doc: TableReader, base: Path | None) -> tuple[str, list[LogRecord]]:
    if "log" not in doc.table:
        return "ringbuffer", []
    lt = doc.sub("log")
    lt.check_keys({"format", "records", "file"})
    log_format = lt.string("format", "ringbuffer")
    if log_format not in LOG_FORMATS:
        raise lt.fail("format", f"unknown log format {log_format!r} (expected one of {', '.join(LOG_FORMATS)})")
    records = _read_dmesg_file(_blob(lt, "file", base)) if "file" in lt.table else []
    for t in lt.items("records"):
        t.check_keys({"text", "ts_nsec"})
        records.append(LogRecord(t.string("text", required=True), t.size("ts_nsec", 0)))
    return log_format, records


def _pages(doc: TableReader) -> dict[str, tuple[int, ...]]:
    if "pages" not in doc.table:
        return {}
    pt = doc.sub("pages")
    pt.check_keys(PAGE_KINDS)
    return {f"{kind}_pages": tuple(pt.size_value(v, f"pages.{kind}[{j}]") for j, v in enumerate(pt.array(kind)))
            for kind in pt.table}


def _overlays(doc: TableReader, base: Path | None) -> tuple[Overlay, ...]:
    out = []
    for t in doc.items("overlays"):
        t.check_keys({"paddr", "hex", "text", "file"})
        t.require("paddr")
        given = [k for k in ("hex", "text", "file") if k in t.table]
        if len(given) != 1:
            raise t.fail("", "give exactly one of hex, text or file")
        if "hex" in t.table:
            try:
                data = bytes.fromhex(t.string("hex"))
            except ValueError:
                raise t.fail("hex", "not a hex string") from None
        elif "text" in t.table:
            data = t.string("text").encode()
        else:
            data = _blob(t, "file", base).read_bytes()
        out.append(Overlay(t.size("paddr"), data))
    return tuple(out)


def _dump_sections(doc: TableReader) -> tuple[PhypDump | None, Fadump | None]:
    phyp = fadump = None
    if "phyp" in doc.table:
        pt = doc.sub("phyp")
        pt.check_keys({"cpu_state_size", "hpte_size", "reserve_bootvar", "dump_status"})
        status = pt.string("dump_status", "ok")
        if status not in DUMP_STATUSES:
            raise pt.fail("dump_status", f"expected one of {', '.join(DUMP_STATUSES)}, got {status!r}")
        phyp = PhypDump(**{k: pt.size(k) for k in pt.table if k != "dump_status"}, dump_status=status)
    if "fadump" in doc.table:
        ft = doc.sub("fadump")
        keys = ("boot_memory_size", "reserve_start", "reserve_size")
        ft.check_keys(keys)
        ft.require("boot_memory_size")
        fadump = Fadump(**{k: ft.size(k) for k in keys if k in ft.table})
    return phyp, fadump


#: What the firmware's dump header says of the dump: "error" is DUMP_ERROR_FLAG.
DUMP_STATUSES = ("ok", "error")


def _quirks(doc: TableReader) -> tuple[tuple[str, bool], ...]:
    """``[quirks]``: kernel behaviours switched on or off against the spec's for this kernel version."""
    if "quirks" not in doc.table:
        return ()
    qt = doc.sub("quirks")
    return tuple((name, qt.get(name, bool, required=True)) for name in qt.table)


def _crashkernel(doc: TableReader) -> tuple[int, int] | None:
    if "kdump" not in doc.table:
        return None
    kt = doc.sub("kdump")
    kt.check_keys({"crashkernel"})
    ck = kt.sub("crashkernel", required=True)
    ck.check_keys({"start", "size"})
    return (ck.size("start", required=True), ck.size("size", required=True))


def parse_fixture(raw: dict[str, Any], source: str = "<fixture>", base: Path | None = None) -> Fixture:
    """Build and validate a Fixture from a parsed manifest *raw*."""
    doc = TableReader(source, "", raw, FixtureError)
    doc.check_keys(_TOP_KEYS)
    if "format" not in raw:
        raise doc.fail("format", f"missing (this reader knows format = {FORMAT_VERSION})")
    if raw["format"] != FORMAT_VERSION:
        raise doc.fail("format", f"unsupported format {raw['format']!r} (this reader knows {FORMAT_VERSION})")
    doc.require("name", "platform", "arch", "ram", "cpus")
    log_format, records = _log(doc, base)
    phyp, fadump = _dump_sections(doc)
    fixture = Fixture(
        name=doc.string("name"),
        platform=doc.string("platform"),
        arch=doc.string("arch"),
        ram=_ram(doc),
        cpus=_cpus(doc),
        osrelease=doc.string("osrelease", ""),
        kernel_version=doc.string("kernel_version", ""),
        log=tuple(records),
        log_format=log_format,
        page_size=doc.size("page_size", 0),
        overlays=_overlays(doc, base),
        seed=doc.size("seed", 0),
        hostname=doc.string("hostname", "mock"),
        crashtime=doc.size("crashtime", 1700000000),
        phyp=phyp,
        fadump=fadump,
        crashkernel=_crashkernel(doc),
        quirks=_quirks(doc),
        **_pages(doc),  # type: ignore[arg-type]
    )
    return fixture.validate(source)


def _read_dmesg_file(path: Path) -> list[LogRecord]:
    """Log records from a text file of ``[seconds.micro] text`` lines (dmesg style)."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        m = _DMESG_RE.match(line)
        if not m:
            raise FixtureError(str(path), f"line {n}", "expected '[seconds.micro] text'")
        out.append(LogRecord(m.group(3), int(m.group(1)) * 1_000_000_000 + int(m.group(2)) * 1000))
    return out


def load_fixture(path: str | Path) -> Fixture:
    """Load and validate a manifest file; raises FixtureError naming file, key and problem."""
    path = Path(path)
    return parse_fixture(read_toml(path, FixtureError), str(path), path.parent)


def fixture_to_doc(fx: Fixture) -> dict[str, Any]:
    """The manifest document (a dict for tomli_w) describing *fx*, all data inline."""
    doc: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "name": fx.name,
        "platform": fx.platform,
        "arch": fx.arch,
        "page_size": fx.page_size,
        "osrelease": fx.osrelease,
        **({"kernel_version": fx.kernel_version} if fx.kernel_version else {}),
        "seed": fx.seed,
        "hostname": fx.hostname,
        "crashtime": fx.crashtime,
        "ram": [{"start": s, "size": z} for s, z in fx.ram],
        "cpus": [{"pid": c.pid, "registers": dict(c.registers)} for c in fx.cpus],
        "log": {"format": fx.log_format, "records": [{"ts_nsec": rec.ts_nsec, "text": rec.text} for rec in fx.log]},
    }
    pages = {k: list(fx.planted(k)) for k in PAGE_KINDS if fx.planted(k)}
    if pages:
        doc["pages"] = pages
    if fx.overlays:
        doc["overlays"] = [{"paddr": ov.paddr, "hex": ov.data.hex()} for ov in fx.overlays]
    if fx.phyp:
        doc["phyp"] = {
            "cpu_state_size": fx.phyp.cpu_state_size,
            "hpte_size": fx.phyp.hpte_size,
            "reserve_bootvar": fx.phyp.reserve_bootvar,
        }
        if fx.phyp.dump_status != "ok":
            doc["phyp"]["dump_status"] = fx.phyp.dump_status
    if fx.quirks:
        doc["quirks"] = dict(fx.quirks)
    if fx.crashkernel:
        doc["kdump"] = {"crashkernel": {"start": fx.crashkernel[0], "size": fx.crashkernel[1]}}
    if fx.fadump:
        doc["fadump"] = {"boot_memory_size": fx.fadump.boot_memory_size}  # the reservation follows from it
    return doc


def dumps_fixture(fx: Fixture) -> str:
    """*fx* as manifest text."""
    return tomli_w.dumps(fixture_to_doc(fx))


def write_fixture(fx: Fixture, path: str | Path) -> None:
    """Write *fx* as a self-contained manifest at *path*."""
    Path(path).write_text(dumps_fixture(fx), encoding="utf-8")


def builtin_fixture_names() -> list[str]:
    """Names of the manifests shipped in fixtures/ (without .toml)."""
    return sorted(p.stem for p in FIXTURES_DIR.glob("*.toml"))


def builtin_description(name: str) -> str:
    """The ``description`` of the built-in fixture *name* (the model itself keeps none)."""
    try:
        doc = read_toml(FIXTURES_DIR / f"{name}.toml", FixtureError)
    except FixtureError:
        return ""
    return str(doc.get("description", ""))


def resolve_fixture(name_or_path: str | Path) -> Fixture:
    """Load a built-in fixture by name, or a manifest by path."""
    text = str(name_or_path)
    if text in builtin_fixture_names():
        return load_fixture(FIXTURES_DIR / f"{text}.toml")
    path = Path(text)
    if path.is_file():
        return load_fixture(path)
    raise FixtureError(text, "", f"no such fixture file or built-in name (built-ins: {', '.join(builtin_fixture_names())})")

"""TOML fixture manifests (``format = 1``): load, write, and find the built-in ones.

The format is described in fixtures/FORMAT.md. Every problem in a manifest is
reported as one FixtureError naming the file, the key and the problem.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

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
FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures"

_TOP_KEYS = {
    "format", "name", "description", "platform", "arch", "page_size", "osrelease", "seed",
    "hostname", "crashtime", "ram", "cpus", "log", "pages", "overlays", "phyp", "fadump",
}  # fmt: skip
_UNITS = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30,
          "t": 1 << 40, "tib": 1 << 40}  # fmt: skip
_SIZE_RE = re.compile(r"^\s*(0[xX][0-9a-fA-F_]+|[0-9_]+)\s*([A-Za-z]*)\s*$")
_DMESG_RE = re.compile(r"^\[\s*(\d+)\.(\d{6})\] ?(.*)$")


class _Reader:
    """Walks a parsed manifest, converting values and naming keys in errors."""

    def __init__(self, source: str, base: Path | None) -> None:
        self.source = source
        self.base = base

    def fail(self, key: str, problem: str) -> FixtureError:
        return FixtureError(self.source, key, problem)

    def table(self, value: Any, key: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {type(value).__name__}")
        for k in value:
            if k not in allowed:
                expected = ", ".join(sorted(allowed))
                raise self.fail(f"{key}.{k}" if key else k, f"unknown key (expected one of {expected})")
        return value

    def array(self, value: Any, key: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(key, f"expected an array, got {type(value).__name__}")
        return value

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {type(value).__name__}")
        return value

    def integer(self, value: Any, key: str) -> int:
        """An int, or a size string such as "4 GiB", "0x1000", "256M"."""
        if isinstance(value, bool):
            raise self.fail(key, "expected an integer, got a boolean")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str):
            m = _SIZE_RE.match(value)
            unit = m.group(2).lower() if m else ""
            if not m or unit not in _UNITS:
                raise self.fail(key, f'cannot read {value!r} as a number or size (e.g. 4096, 0x1000, "4 GiB")')
            number = int(m.group(1).replace("_", ""), 0) * _UNITS[unit]
        else:
            raise self.fail(key, f"expected an integer, got {type(value).__name__}")
        if number < 0:
            raise self.fail(key, f"negative value {number}")
        return number

    def blob(self, value: Any, key: str) -> Path:
        rel = self.string(value, key)
        if self.base is None:
            raise self.fail(key, "a blob file needs a manifest on disk")
        path = (self.base / rel).resolve()
        if not path.is_file():
            raise self.fail(key, f"blob file {rel!r} not found next to the manifest")
        return path


def parse_fixture(doc: dict[str, Any], source: str = "<fixture>", base: Path | None = None) -> Fixture:
    """Build and validate a Fixture from a parsed manifest *doc*."""
    r = _Reader(source, base)
    r.table(doc, "", _TOP_KEYS)
    if "format" not in doc:
        raise r.fail("format", f"missing (this reader knows format = {FORMAT_VERSION})")
    if doc["format"] != FORMAT_VERSION:
        raise r.fail("format", f"unsupported format {doc['format']!r} (this reader knows {FORMAT_VERSION})")
    for key in ("name", "platform", "arch", "ram", "cpus"):
        if key not in doc:
            raise r.fail(key, "missing required key")

    def opt(key: str, conv: Callable[[Any, str], Any], default: Any) -> Any:
        return conv(doc[key], key) if key in doc else default

    ram = []
    for i, item in enumerate(r.array(doc["ram"], "ram")):
        t = r.table(item, f"ram[{i}]", {"start", "size"})
        for k in ("start", "size"):
            if k not in t:
                raise r.fail(f"ram[{i}].{k}", "missing required key")
        ram.append((r.integer(t["start"], f"ram[{i}].start"), r.integer(t["size"], f"ram[{i}].size")))

    cpus = []
    for i, item in enumerate(r.array(doc["cpus"], "cpus")):
        t = r.table(item, f"cpus[{i}]", {"pid", "registers"})
        if "pid" not in t:
            raise r.fail(f"cpus[{i}].pid", "missing required key")
        regs_t = r.table(t.get("registers", {}), f"cpus[{i}].registers", set(t.get("registers", {})))
        regs = {k: r.integer(v, f"cpus[{i}].registers.{k}") for k, v in regs_t.items()}
        cpus.append(Cpu(pid=r.integer(t["pid"], f"cpus[{i}].pid"), registers=regs))

    log_format, records = "ringbuffer", []
    if "log" in doc:
        lt = r.table(doc["log"], "log", {"format", "records", "file"})
        log_format = r.string(lt.get("format", "ringbuffer"), "log.format")
        if log_format not in LOG_FORMATS:
            raise r.fail("log.format", f"unknown log format {log_format!r} (expected one of {', '.join(LOG_FORMATS)})")
        if "file" in lt:
            records += _read_dmesg_file(r, r.blob(lt["file"], "log.file"))
        for i, item in enumerate(r.array(lt.get("records", []), "log.records")):
            key = f"log.records[{i}]"
            t = r.table(item, key, {"text", "ts_nsec"})
            if "text" not in t:
                raise r.fail(f"{key}.text", "missing required key")
            records.append(LogRecord(r.string(t["text"], f"{key}.text"), r.integer(t.get("ts_nsec", 0), f"{key}.ts_nsec")))

    pages: dict[str, tuple[int, ...]] = {}
    if "pages" in doc:
        pt = r.table(doc["pages"], "pages", set(PAGE_KINDS))
        for kind, arr in pt.items():
            pages[kind] = tuple(r.integer(v, f"pages.{kind}[{j}]") for j, v in enumerate(r.array(arr, f"pages.{kind}")))

    overlays = []
    for i, item in enumerate(r.array(doc.get("overlays", []), "overlays")):
        key = f"overlays[{i}]"
        t = r.table(item, key, {"paddr", "hex", "text", "file"})
        if "paddr" not in t:
            raise r.fail(f"{key}.paddr", "missing required key")
        given = [k for k in ("hex", "text", "file") if k in t]
        if len(given) != 1:
            raise r.fail(key, "give exactly one of hex, text or file")
        if "hex" in t:
            try:
                data = bytes.fromhex(r.string(t["hex"], f"{key}.hex"))
            except ValueError:
                raise r.fail(f"{key}.hex", "not a hex string") from None
        elif "text" in t:
            data = r.string(t["text"], f"{key}.text").encode()
        else:
            data = r.blob(t["file"], f"{key}.file").read_bytes()
        overlays.append(Overlay(r.integer(t["paddr"], f"{key}.paddr"), data))

    phyp = None
    if "phyp" in doc:
        pt = r.table(doc["phyp"], "phyp", {"cpu_state_size", "hpte_size", "reserve_bootvar"})
        phyp = PhypDump(**{k: r.integer(v, f"phyp.{k}") for k, v in pt.items()})
    fadump = None
    if "fadump" in doc:
        ft = r.table(doc["fadump"], "fadump", {"boot_memory_size", "reserve_start", "reserve_size"})
        for k in ("boot_memory_size", "reserve_start", "reserve_size"):
            if k not in ft:
                raise r.fail(f"fadump.{k}", "missing required key")
        fadump = Fadump(**{k: r.integer(v, f"fadump.{k}") for k, v in ft.items()})

    fixture = Fixture(
        name=r.string(doc["name"], "name"),
        platform=r.string(doc["platform"], "platform"),
        arch=r.string(doc["arch"], "arch"),
        ram=tuple(ram),
        cpus=tuple(cpus),
        osrelease=opt("osrelease", r.string, "5.15.0-mock"),
        log=tuple(records),
        log_format=log_format,
        page_size=opt("page_size", r.integer, 0),
        overlays=tuple(overlays),
        seed=opt("seed", r.integer, 0),
        hostname=opt("hostname", r.string, "mock"),
        crashtime=opt("crashtime", r.integer, 1700000000),
        phyp=phyp,
        fadump=fadump,
        **{f"{k}_pages": v for k, v in pages.items()},
    )
    return fixture.validate(source)


def _read_dmesg_file(r: _Reader, path: Path) -> list[LogRecord]:
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
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise FixtureError(source, "", f"cannot read: {e.strerror}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise FixtureError(source, "", f"not valid TOML: {e}") from None
    return parse_fixture(doc, source, path.parent)


def fixture_to_doc(fx: Fixture) -> dict[str, Any]:
    """The manifest document (a dict for tomli_w) describing *fx*, all data inline."""
    doc: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "name": fx.name,
        "platform": fx.platform,
        "arch": fx.arch,
        "page_size": fx.page_size,
        "osrelease": fx.osrelease,
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
    if fx.fadump:
        doc["fadump"] = {
            "boot_memory_size": fx.fadump.boot_memory_size,
            "reserve_start": fx.fadump.reserve_start,
            "reserve_size": fx.fadump.reserve_size,
        }
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


def resolve_fixture(name_or_path: str | Path) -> Fixture:
    """Load a built-in fixture by name, or a manifest by path."""
    text = str(name_or_path)
    if text in builtin_fixture_names():
        return load_fixture(FIXTURES_DIR / f"{text}.toml")
    path = Path(text)
    if path.is_file():
        return load_fixture(path)
    raise FixtureError(text, "", f"no such fixture file or built-in name (built-ins: {', '.join(builtin_fixture_names())})")

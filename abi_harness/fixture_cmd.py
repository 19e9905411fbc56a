"""`abi-harness fixture ...`: list, create, show, export, import and verify fixtures.

A thin shell: each subcommand calls one library function of ``mockfs.machine``
(``new_fixture``, ``open_image``/``export_file``, ``import_core``,
``verify_dump``) and prints the result. Fixtures are accepted as a built-in name,
a synthesized manifest or an imported-core manifest wherever bytes are needed.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mockfs.machine import Fixture, VmcoreImage, builtin_fixture_names, resolve_fixture
from mockfs.machine.generate import DEFAULT_ARCH, DEFAULT_CPUS, format_size, manifest_text, new_fixture, parse_size
from mockfs.machine.importcore import (
    CoreImportError,
    ImportedCore,
    export_file,
    import_core,
    load_any,
    open_image,
    write_imported,
)
from mockfs.machine.manifest import FIXTURES_DIR
from mockfs.machine.model import ARCHES, PAGE_KINDS, PLATFORMS
from mockfs.machine.verify import DumpFormatError, verify_dump

from .errors import OneLineParser, UsageError

Handler = Callable[[argparse.Namespace], int]


def _one_line_errors(func: Handler) -> Handler:
    """Turn the library's file and format errors into one-line usage errors (exit 2)."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (CoreImportError, DumpFormatError) as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            if exc.filename is None:
                raise UsageError(exc.strerror or str(exc)) from None
            raise UsageError(f"{exc.filename}: {exc.strerror or exc}") from None

    return run


@contextmanager
def _progress(what: str) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """(set_total, advance) callbacks drawing a progress bar on a terminal, doing nothing otherwise."""
    if not sys.stderr.isatty():
        yield (lambda _n: None), (lambda _n: None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
               TransferSpeedColumn(), TimeRemainingColumn())  # fmt: skip
    # On standard error, so standard output stays clean for --json and pipes.
    with Progress(*columns, transient=True, console=Console(stderr=True), redirect_stdout=False, redirect_stderr=False) as bar:
        task = bar.add_task(what, total=None)
        yield (lambda n: bar.update(task, total=n)), (lambda n: bar.advance(task, n))


def _refuse_overwrite(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise UsageError(f"{path}: already exists (use --force to overwrite)")


# -- list ---------------------------------------------------------------------------------


def _description(name: str) -> str:
    try:
        doc = tomllib.loads((FIXTURES_DIR / f"{name}.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return ""
    return str(doc.get("description", ""))


def cmd_list(args: argparse.Namespace) -> int:
    """List the built-in fixtures."""
    rows = []
    for name in builtin_fixture_names():
        fx = resolve_fixture(name)
        rows.append({"name": name, "platform": fx.platform, "arch": fx.arch, "memory_bytes": fx.ram_size,
                     "cpus": len(fx.cpus), "description": _description(name)})  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max([len("NAME"), *(len(r["name"]) for r in rows)])
    print(f"{'NAME':<{width}}  {'PLATFORM':<8} {'ARCH':<8} {'MEMORY':>9} {'CPUS':>4}  DESCRIPTION")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['platform']:<8} {r['arch']:<8} {format_size(r['memory_bytes']):>9} "
              f"{r['cpus']:>4}  {r['description']}")
    return 0


# -- new ----------------------------------------------------------------------------------


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_arg(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def cmd_new(args: argparse.Namespace) -> int:
    """Write a new fixture manifest."""
    out = Path(args.output)
    _refuse_overwrite(out, args.force)
    fx = new_fixture(args.platform, arch=args.arch, memory=args.memory, cpus=args.cpus,
                     messages=args.message or (), seed=args.seed, name=args.name)  # fmt: skip
    text = manifest_text(fx, args.description or f"generated by abi-harness fixture new (seed {fx.seed})")
    with open(out, "w" if args.force else "x", encoding="utf-8") as f:
        f.write(text)
    print(f"{out}: {fx.platform} {fx.arch}, {format_size(fx.ram_size)}, {len(fx.cpus)} CPUs, {len(fx.log)} messages")
    return 0


# -- show ---------------------------------------------------------------------------------


def fixture_summary(fx: Fixture) -> dict[str, Any]:
    """What ``show --json`` prints for a synthesized fixture."""
    image = VmcoreImage(fx)
    doc: dict[str, Any] = {
        "kind": "synthesized",
        "name": fx.name,
        "platform": fx.platform,
        "arch": fx.arch,
        "page_size": fx.page_size,
        "memory_bytes": fx.ram_size,
        "ram": [{"start": s, "size": z} for s, z in fx.ram],
        "cpus": len(fx.cpus),
        "pids": [c.pid for c in fx.cpus],
        "osrelease": fx.osrelease,
        "hostname": fx.hostname,
        "seed": fx.seed,
        "crashtime": fx.crashtime,
        "log_format": fx.log_format,
        "messages": [{"text": r.text, "ts_nsec": r.ts_nsec} for r in fx.log],
        "pages": {k: list(fx.planted(k)) for k in PAGE_KINDS},
        "overlays": [{"paddr": o.paddr, "size": len(o.data)} for o in fx.overlays],
        "vmcore_size": image.size,
    }
    if fx.phyp is not None:
        lay = fx.phyp_layout()
        names = ("CPU", "HPTE", "DUMP", "DUMP")
        pairs = lay.pairs()
        doc["release_region"] = [{"name": n, "start": pairs[2 * i], "length": pairs[2 * i + 1]} for i, n in enumerate(names)]
        doc["phyp"] = {"reserved": list(lay.reserved_range), "scratch": list(lay.scratch_range)}
    if fx.fadump is not None:
        fa = fx.fadump
        doc["fadump"] = {"boot_memory_size": fa.boot_memory_size, "reserve_start": fa.reserve_start,
                         "reserve_size": fa.reserve_size}  # fmt: skip
    return doc


def imported_summary(core: ImportedCore) -> dict[str, Any]:
    """What ``show --json`` prints for an imported core (what its headers say)."""
    info = core.info
    page = info.vmcoreinfo.get("PAGESIZE", "")
    return {
        "kind": "imported-core",
        "name": core.name,
        "core": str(core.core_path),
        "platform": None,  # a core file does not say which dump mechanism wrote it
        "arch": info.arch,
        "page_size": int(page) if page.isdigit() else None,
        "memory_bytes": sum(ld["memsz"] for ld in info.loads),
        "loads": info.loads,
        "cpus": len(info.pids),
        "pids": info.pids,
        "osrelease": info.vmcoreinfo.get("OSRELEASE"),
        "messages": [],  # decoding the log of a foreign kernel needs its debug info; not done
        "vmcore_size": core.size,
        "embedded_bytes": sum(p.size for p in core.pieces if p.data is not None),
        "referenced_bytes": sum(p.size for p in core.pieces if p.data is None),
    }


def _print_summary(doc: dict[str, Any]) -> None:
    print(f"{doc['name']} ({doc['kind']})")
    if doc["kind"] == "imported-core":
        print(f"  core       {doc['core']}")
        print(f"  arch       {doc['arch']}, {doc['cpus']} CPU notes (pids {', '.join(map(str, doc['pids'])) or 'none'})")
        print(f"  loads      {len(doc['loads'])} PT_LOADs, {format_size(doc['memory_bytes'])}")
        print(f"  size       {doc['vmcore_size']} bytes ({doc['embedded_bytes']} embedded, {doc['referenced_bytes']} referenced)")
        return
    print(f"  platform   {doc['platform']} on {doc['arch']}, page size {doc['page_size']}, kernel {doc['osrelease']}")
    print(f"  memory     {format_size(doc['memory_bytes'])} in {len(doc['ram'])} ranges: "
          + ", ".join(f"{r['start']:#x}+{r['size']:#x}" for r in doc["ram"]))
    print(f"  cpus       {doc['cpus']} (pids {', '.join(map(str, doc['pids']))})")
    planted = ", ".join(f"{k} {len(v)}" for k, v in doc["pages"].items() if v) or "none"
    print(f"  planted    {planted}; overlays {len(doc['overlays'])}")
    print(f"  vmcore     {doc['vmcore_size']} bytes")
    for r in doc.get("release_region", []):
        print(f"  release_region {r['name']:<4} start {r['start']:#x} length {r['length']:#x}")
    if "fadump" in doc:
        fa = doc["fadump"]
        print(f"  fadump     boot memory {format_size(fa['boot_memory_size'])}, reserved "
              f"{fa['reserve_start']:#x}+{fa['reserve_size']:#x}")
    print(f"  log        {len(doc['messages'])} messages ({doc['log_format']})")
    for m in doc["messages"]:
        print(f"    [{m['ts_nsec'] // 1_000_000_000:5d}.{m['ts_nsec'] // 1000 % 1_000_000:06d}] {m['text']}")


def cmd_show(args: argparse.Namespace) -> int:
    """Describe a fixture."""
    obj = load_any(args.fixture)
    doc = imported_summary(obj) if isinstance(obj, ImportedCore) else fixture_summary(obj)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        _print_summary(doc)
    return 0


# -- export / import ----------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    """Write a fixture's /proc/vmcore to a file."""
    out = Path(args.output)
    _refuse_overwrite(out, args.force)
    image = open_image(args.fixture)
    with _progress(f"export {out.name}") as (set_total, advance):
        set_total(image.size)
        try:
            size = export_file(image, out, progress=advance)
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror or exc} (nothing written: {out}.partial removed)") from None
    print(f"{out}: {size} bytes")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Turn an ELF core file into an imported-core manifest."""
    out = Path(args.output)
    _refuse_overwrite(out, args.force)
    core = import_core(args.core, name=args.name)
    write_imported(core, out)
    embedded = sum(p.size for p in core.pieces if p.data is not None)
    print(f"{out}: {core.size} bytes of {core.core_path} ({embedded} embedded, the rest referenced)")
    return 0


# -- verify -------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    """Compare a saved dump with a fixture."""
    image = open_image(args.fixture)
    if not isinstance(image, VmcoreImage):
        raise UsageError(f"{args.fixture}: verify needs a synthesized fixture (an imported core has no physical memory model)")
    with _progress("verify") as (set_total, advance):
        report = verify_dump(image, args.dump, progress=advance, on_total=set_total)
    ok = report.ok(complete=args.complete)
    if args.json:
        print(json.dumps({**report.as_dict(), "complete_required": args.complete, "ok": ok}, indent=2))
    else:
        print(f"{report.dump} ({report.format}, page size {report.page_size}) against {args.fixture}:")
        for c in ("identical", "different", "misplaced", "missing", "excluded", "extra"):
            print(f"  {c:<10} {getattr(report, c):>12} pages")
        for p in report.problems:
            print(f"  {p.kind:<10} {p.paddr:#018x}  {p.detail}")
        why = "" if ok else " (" + ", ".join(
            c for c in ("different", "misplaced", "extra") + (("missing",) if args.complete else ())
            if getattr(report, c)) + ")"  # fmt: skip
        print(f"result: {'OK' if ok else 'FAILED'}{why}")
    return 0 if ok else 1


# -- parser -------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``fixture`` subcommand to the top-level parser."""
    top = sub.add_parser(
        "fixture", help="list, create, show, export, import and verify fixtures",
        description="Fixtures are crashed machines. FIXTURE is a built-in name (see 'fixture list'), "
        "a manifest written by 'fixture new' or by hand (fixtures/FORMAT.md), or one written by 'fixture import'.",
    )
    fsub = top.add_subparsers(dest="fixture_command", metavar="COMMAND", required=True, parser_class=OneLineParser)

    def add(name: str, func: Handler, help_: str, description: str) -> argparse.ArgumentParser:
        p = fsub.add_parser(name, help=help_, description=description)
        p.set_defaults(func=_one_line_errors(func))
        return p

    p = add("list", cmd_list, "list the built-in fixtures",
            "List the built-in fixtures, usable by name wherever FIXTURE is accepted.")
    p.add_argument("--json", action="store_true", help="print JSON (memory in bytes)")

    p = add("new", cmd_new, "write a new fixture manifest",
            "Write a valid fixture manifest of a machine with the given platform, memory, CPUs and log.")
    p.add_argument("--platform", required=True, choices=PLATFORMS, help="dump platform")
    p.add_argument("--arch", choices=ARCHES,
                   help="architecture (default per platform: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_ARCH.items()) + ")")
    p.add_argument("--memory", metavar="SIZE", type=_size_arg, default="1G",
                   help="RAM size, e.g. 512M, 4G, 1TiB (binary units; default: %(default)s)")
    p.add_argument("--cpus", metavar="N", type=_int_arg, default=DEFAULT_CPUS, help="number of CPUs (default: %(default)s)")
    p.add_argument("--message", metavar="TEXT", action="append",
                   help="a kernel log message; repeat for more, oldest first (default: a short boot-and-panic log)")
    p.add_argument("--seed", metavar="N", type=_int_arg, default=0,
                   help="varies the memory pattern, pids, registers and timestamps (default: %(default)s)")
    p.add_argument("--name", help="fixture name (default: derived from platform, arch and memory)")
    p.add_argument("--description", metavar="TEXT", help="free-text description stored in the manifest")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="manifest file to write")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    p = add("show", cmd_show, "describe a fixture",
            "Describe a fixture: platform, memory, CPUs, log, dump areas and the size of its /proc/vmcore.")
    p.add_argument("fixture", metavar="FIXTURE", help="built-in name or manifest file")
    p.add_argument("--json", action="store_true", help="print JSON (numbers as integers)")

    p = add("export", cmd_export, "write a fixture's /proc/vmcore to a file",
            "Write the /proc/vmcore of FIXTURE to FILE, byte for byte what the mock serves, mode 0600. "
            "Written to FILE.partial and renamed when complete; a progress bar is drawn on a terminal.")
    p.add_argument("fixture", metavar="FIXTURE", help="built-in name or manifest file (synthesized or imported)")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="file to write")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    p = add("import", cmd_import, "turn an ELF core file into a fixture",
            "Write a manifest that serves exactly the bytes of CORE (a gcore, a saved /proc/vmcore, an export). "
            "Headers and notes are embedded; memory is referenced in CORE by file range, so keep CORE in place.")
    p.add_argument("core", metavar="CORE", help="ELF core file")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="manifest file to write")
    p.add_argument("--name", help="fixture name (default: CORE's file name without extension)")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    p = add("verify", cmd_verify, "compare a saved dump with a fixture",
            "Compare DUMP (ELF core, makedumpfile kdump-compressed or flattened) with FIXTURE page by page. "
            "Exit 0 when no page differs, is misplaced or lies outside the fixture's RAM; 1 otherwise.")
    p.add_argument("fixture", metavar="FIXTURE", help="built-in name or synthesized manifest file")
    p.add_argument("dump", metavar="DUMP", help="the dump file a collector saved")
    p.add_argument("--complete", action="store_true", help="also fail when a RAM page is missing from DUMP")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

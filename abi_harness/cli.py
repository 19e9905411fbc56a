"""The ``abi-harness`` command: a thin shell over the library.

Each subcommand parses its arguments, calls one library function and prints
the result. Errors users can cause (a malformed file, a missing path, a broken
spec file) end in one line on standard error and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence

from abi_specs.errors import AbiError

from .errors import STOPPED_BY, OneLineParser, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from abi_specs.model import Spec

PROG = "abi-harness"

#: Exit status for a file or tree that fails its check.
EXIT_INVALID = 1
#: Exit status for a command that could not run (bad arguments, unreadable input).
EXIT_USAGE = 2


def _spec(args: argparse.Namespace) -> Spec:
    # The spec (its model and the TOML reader) is loaded by the commands that use it, not at start.
    from abi_specs.specfile import builtin_spec, load_spec_file

    return load_spec_file(args.spec_file) if getattr(args, "spec_file", None) else builtin_spec()


def _show(value: object) -> str:
    """A value for people: numbers in decimal, and in hex when that reads differently."""
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= 9:
        return f"{value} ({value:#x})"
    return repr(value) if isinstance(value, str) else str(value)


def _json(value: object, indent: int | None = None) -> str:
    import json  # json and pathlib are imported where used: each costs a quick command milliseconds

    return json.dumps(value, indent=indent)


def cmd_specs(args: argparse.Namespace) -> int:
    """List every ABI file the spec knows."""
    from abi_specs.listing import builtin_listing, listing

    # The built-in spec's rows come from the cache without loading the spec (or its model) at all.
    rows = listing(_spec(args)) if args.spec_file else builtin_listing()
    if args.json:
        print(_json(rows, indent=2))
        return 0
    width = max(len(r["path"]) for r in rows)
    print(f"{'PATH':<{width}}  MODE  {'PLATFORMS':<20} {'PRESENT':<15} STABILITY")
    for r in rows:
        print(f"{r['path']:<{width}}  {r['mode_octal']}  {','.join(r['platforms']):<20} "
              f"{','.join(r['present']):<15} {r['stability']}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a live or captured file against the spec."""
    from abi_specs.check import CheckUsageError, check_path, choose_spec, quick_entry

    # A text file of the built-in spec is checked from the cache's quick entries, without the spec's model.
    entry = None if args.spec_file else quick_entry(args.spec, args.file)
    if entry is None:
        entry = choose_spec(_spec(args), args.spec, args.file)
    where = "standard input" if args.file == "-" else args.file
    try:
        values = check_path(entry, args.file)
    except CheckUsageError:
        raise  # the check could not run: a usage error, not an invalid file
    except AbiError as exc:
        print(f"{PROG}: invalid {entry.path} ({where}): {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print(_json({"spec": entry.name, "path": entry.path, "valid": True, "values": values}, indent=2))
        return 0
    print(f"valid: {where} is a well-formed {entry.path} ({entry.name})")
    for key, value in values.items():
        if key == "ranges":
            for r in value:  # type: ignore[union-attr]
                print(f"  range {r['name']}: start {r['start']:#x} length {r['length']:#x}")
        elif isinstance(value, (list, dict)):
            print(f"  {key}: {_json(value)}")
        else:
            print(f"  {key} = {_show(value)}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Render Documentation/ABI entries from the spec."""
    from pathlib import Path

    from abi_specs.docs import first_difference, render_entry, render_tree, write_tree
    from abi_specs.specfile import builtin_spec

    if args.lint:
        return _lint(Path(args.lint))
    if args.spec_file:
        spec = _spec(args)
        base = {f.name for f in builtin_spec().files}
        drafts = [f for f in spec.files if f.name not in base]
        if not drafts:
            raise UsageError(f"{args.spec_file}: defines no ABI file")
        print("\n".join(render_entry(f, spec) for f in drafts if f.documented), end="")
        return 0
    spec = builtin_spec()
    tree = render_tree(spec)
    out = Path(args.out)
    readme, fresh = _readme(args.readme, spec)
    if args.check:
        diff = first_difference(tree, out)
        if diff is None and readme is not None and readme.read_text() != fresh:
            diff = f"{readme}: its lifecycle tables differ from the spec"
        if diff:
            print(f"{PROG}: Documentation/ABI drafts are stale: {diff} (run '{PROG} docs' to regenerate)", file=sys.stderr)
            return EXIT_INVALID
        print(f"{out}: {len(tree)} files match the spec")  # always several
        return 0
    written = write_tree(tree, out)
    if readme is not None and readme.read_text() != fresh:
        readme.write_text(fresh)
        written.append(readme)
    for path in written:
        print(path)
    return 0


def _lint(root: Path) -> int:
    """``docs --lint DIR``: the warnings the kernel's get_abi.py validate would print, and ours."""
    from abi_specs.abi_lint import lint_tree

    if not root.is_dir():
        raise UsageError(f"{root}: not a directory")
    warnings = lint_tree(root)
    for w in warnings:
        print(w, file=sys.stderr)
    print(f"{root}: {len(warnings)} warning{'s' if len(warnings) != 1 else ''}")
    return EXIT_INVALID if warnings else 0


def _readme(name: str | None, spec: Spec) -> tuple[Path | None, str]:
    """The README whose lifecycle tables ``docs`` keeps, and its text rendered afresh."""
    if name is None:
        return None, ""
    from pathlib import Path

    from abi_specs.lifecycle_docs import with_lifecycles

    path = Path(name)
    try:
        return path, with_lifecycles(path.read_text(), spec)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from None


class _VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked (importlib.metadata is slow to import)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_args: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("abi-harness")
        except PackageNotFoundError:
            found = "(not installed)"
        print(f"{PROG} {found}")
        parser.exit()


#: The commands this module defines; the others live in command modules imported only when needed.
OWN_COMMANDS = ("specs", "check", "docs")
#: The module that registers each other command. Only the module of the command given is imported
#: (the modules, and the spec their option choices come from, cost a quick command most of its start).
COMMAND_MODULES = {
    "fixture": "fixture_cmd",
    "mount": "mock_cmd", "umount": "mock_cmd", "run": "mock_cmd", "cleanup": "mock_cmd",
    "machine": "machine_cmd", "crash": "machine_cmd", "reboot": "machine_cmd",
    "conform": "conform_cmd", "demo": "conform_cmd",
}
ALL_MODULES = ("fixture_cmd", "mock_cmd", "machine_cmd", "conform_cmd")


def _modules_for(argv: Sequence[str]) -> tuple[str, ...]:
    """The command modules *argv* needs: none for an own command or ``--version``, one for another
    command, all of them for the top-level help or a command nobody knows (whose error lists them all)."""
    for arg in argv:
        if not arg.startswith("-"):
            if arg in OWN_COMMANDS:
                return ()
            return (COMMAND_MODULES[arg],) if arg in COMMAND_MODULES else ALL_MODULES
        if arg == "-h" or (len(arg) > 2 and "--help".startswith(arg)):
            return ALL_MODULES  # the top-level help lists every command
    return ()


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, its width found without shutil (whose import costs a quick start 4 ms:
    argparse makes a formatter for every argument added)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


def _columns() -> int:
    """The width ``shutil.get_terminal_size()`` gives: $COLUMNS, else standard output's terminal, else 80."""
    import os

    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def build_parser(modules: Sequence[str] = ALL_MODULES) -> argparse.ArgumentParser:
    """The argument parser of :data:`OWN_COMMANDS` and of the commands of *modules* (default: every command)."""
    parser = OneLineParser(
        prog=PROG,
        formatter_class=_Formatter,
        description="Test harness for the Linux crash-dump sysfs/procfs ABI "
        "(phyp dump, fadump, kdump): the ABI spec, its checks and its documentation.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=OneLineParser)

    p = sub.add_parser("specs", help="list every ABI file the spec knows", formatter_class=_Formatter,
                       description="List every ABI file the spec knows: path, mode, platforms, stability.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--spec-file", metavar="FILE", help="add the files described in a spec file (TOML)")
    p.set_defaults(func=cmd_specs)

    p = sub.add_parser(
        "check", help="validate a live or captured ABI file", formatter_class=_Formatter,
        description="Validate a live or captured file against the spec. Exit 0 and print the parsed "
        "values when valid; exit 1 with one line saying what is wrong and where when not.",
    )
    p.add_argument("file", metavar="FILE", help="the file to check ('-' for standard input)")
    p.add_argument("--spec", metavar="NAME",
                   help="the spec entry (name or canonical path); guessed from FILE's path when omitted")
    p.add_argument("--spec-file", metavar="FILE", help="check against a spec file (TOML) of your own")
    p.add_argument("--json", action="store_true", help="print the parsed values as JSON")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "docs", help="render Documentation/ABI entries from the spec", formatter_class=_Formatter,
        description="Render Documentation/ABI entries from the spec into DIR, or check that DIR is up to date.",
    )
    p.add_argument("--out", metavar="DIR", default="Documentation-ABI", help="output directory (default: %(default)s)")
    p.add_argument("--check", action="store_true", help="exit 1, naming the first stale file, unless DIR matches the spec")
    p.add_argument("--spec-file", metavar="FILE", help="print the entries of a spec file of your own instead")
    p.add_argument("--lint", metavar="DIR",
                   help="check a Documentation/ABI tree as the kernel's scripts/get_abi.py validate does, and exit 1 "
                   "on any warning")
    p.add_argument("--readme", metavar="FILE",
                   help="also render the lifecycle tables between the markers of FILE (the project's README.md)")
    p.set_defaults(func=cmd_docs)

    import importlib

    for name in ALL_MODULES:  # in this order, so that the help lists the commands the same way every time
        if name in modules:
            importlib.import_module(f".{name}", __package__).register(sub)
    return parser


def _terminate_like_interrupt() -> None:
    """SIGTERM and SIGHUP end a command as Ctrl-C does: its clean-up runs (partial files, scratch, mounts)."""
    import signal

    from mockfs.sandbox.stops import STOP_SIGNALS

    def stop(signum: int, _frame: object) -> None:
        STOPPED_BY.append(signum)
        raise KeyboardInterrupt

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_modules_for(argv))
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    _terminate_like_interrupt()
    try:
        return func(args)
    except AbiError as exc:  # every error a user can cause (UsageError and CheckUsageError included)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader went away (`abi-harness specs | head -1`): nothing left to say
        _quiet_stdout()
        return 0
    except OSError as exc:  # a file the command needed: name it, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 128 + (STOPPED_BY[0] if STOPPED_BY else signal.SIGINT)


def _quiet_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit does not fail a second time."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())

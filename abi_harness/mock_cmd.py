"""`abi-harness mount`, `umount`, `run` and `cleanup`: the mock as a daemon or around a program."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import UsageError

#: Exit status of ``run --verify`` when the program succeeded but its dump is incomplete or different.
EXIT_INCOMPLETE = 4

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mockfs.live import LiveMachine


def open_machine(fixture: str) -> LiveMachine:
    """The live machine of a built-in fixture name or a manifest path."""
    from mockfs.dumps.served import open_image, resolve_served
    from mockfs.live import LiveMachine

    return LiveMachine(open_image(resolve_served(fixture)))


def cmd_mount(args: argparse.Namespace) -> int:
    from mockfs.fuse.daemon import check_mountpoint, mount, serve
    from mockfs.fuse.faults import parse_faults

    machine = open_machine(args.fixture)
    faults = parse_faults(args.fault)
    mountpoint = Path(args.mountpoint)
    trace = Path(args.trace).resolve() if args.trace else None
    report = Path(args.report).resolve() if args.report else None
    if args.foreground:
        check_mountpoint(mountpoint)
        serve(machine, mountpoint, trace, faults, report)
        if not report:
            print(json.dumps(machine.summary(), indent=2))
        return 0
    handle = mount(machine, mountpoint, trace, faults, report)
    print(f"{mountpoint}: serving {machine.fixture.name} ({machine.fixture.platform}, daemon pid {handle.pid}); "
          f"'abi-harness umount {mountpoint}' ends it")
    return 0


def cmd_umount(args: argparse.Namespace) -> int:
    from mockfs.fuse.daemon import umount

    umount(Path(args.mountpoint))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from mockfs.session.report import render_report
    from mockfs.session.runner import run

    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("no command given: abi-harness run [OPTIONS] -- CMD [ARGS...]")
    if args.verify and not args.output:
        raise UsageError("--verify checks the dump the program saves: give --output DIR")
    # With --json, standard output is the report alone: the program writes to standard error.
    result = run(argv, fixture=args.fixture, output=args.output, trace=args.trace, faults=args.fault,
                 machine=args.machine, state=args.state, program_stdout=2 if args.json else None)
    status = result.exit_status
    verdict = None
    if args.verify:
        from mockfs.dumps.verify import reuse_window_buffers

        reuse_window_buffers()
        verdict = result.verify()
    doc = result.as_dict()
    if verdict is not None:
        doc["verify"] = {"complete": verdict.complete, "dump": str(verdict.path) if verdict.path else None,
                         "pages": verdict.report.as_dict() if verdict.report else None,
                         "problem": None if verdict.complete else verdict.describe_incomplete()}
        if not verdict.complete and status == 0:
            status = EXIT_INCOMPLETE
    if args.report:
        Path(args.report).write_text(json.dumps(doc, indent=2) + "\n")
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(render_report(result), file=sys.stderr)
        if verdict is not None:
            line = "the dump is the fixture's memory, complete" if verdict.complete else verdict.describe_incomplete()
            print(f"  verify: {line}", file=sys.stderr)
            if not verdict.complete:
                print(f"  exit status: {status} (the dump is incomplete or different)", file=sys.stderr)
    return status


def cmd_cleanup(args: argparse.Namespace) -> int:
    import os

    from mockfs.sandbox.cleanup import cleanup
    from mockfs.sandbox.runtime import runtime_dir

    try:
        report = cleanup(include_live=args.all)
    except PermissionError as exc:
        # Another user's runtime directory (ABI_HARNESS_RUNTIME_DIR): its records are not ours to read.
        raise UsageError(f"{exc.filename or runtime_dir()}: {exc.strerror}: what another user's runs left there is "
                         "theirs to clean up (as root: sudo abi-harness cleanup)") from None
    done = report.lines()
    for line in done:
        print(line)
    if report.left:
        owners = sorted({_owner(path) for path in report.left})
        print(f"left {len(report.left)} scratch director{'y' if len(report.left) == 1 else 'ies'} of killed runs "
              f"owned by {', '.join(owners)}; as root: sudo abi-harness cleanup", file=sys.stderr)
    elif not done:
        print("nothing to clean up" + ("" if os.geteuid() == 0 else " (of yours: runs as root are cleaned up "
                                      "by 'sudo abi-harness cleanup')"), file=sys.stderr)
    return 0


def _owner(path: str) -> str:
    """The name of the user owning *path* (or its uid)."""
    import os
    import pwd

    try:
        uid = os.lstat(path).st_uid
    except OSError:
        return "another user"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def add_fault_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fault", metavar="SPEC", action="append", default=[],
                   help="inject a fault (repeatable): eio:START-END (reads of those vmcore bytes fail with EIO), "
                   "short:N (each read returns at most N bytes), delay:MS (each read waits MS milliseconds), "
                   "kill-after:N (the reader's command is killed, once, when N bytes were read), enospc:SIZE (the "
                   "output directory has SIZE bytes free; what is in it stays); sizes take K, M, G")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``mount``, ``umount``, ``run`` and ``cleanup`` to the top-level parser."""
    p = sub.add_parser(
        "mount", help="serve a fixture's dump ABI over FUSE",
        description="Serve, under MOUNTPOINT, the tree of canonical paths (sys/kernel/..., proc/vmcore, "
        "proc/device-tree/rtas/...) of a fixture's capture kernel. Returns once the mount answers and "
        "leaves a daemon serving it; 'abi-harness umount MOUNTPOINT' ends it. As root the files are root's and "
        "every user may reach them; an ordinary user needs a /dev/fuse they may open (the mount goes through "
        "fusermount3), and the files are then theirs and reachable by them alone.",
    )
    p.add_argument("fixture", metavar="FIXTURE", help="a built-in fixture name or a fixture manifest")
    p.add_argument("mountpoint", metavar="MOUNTPOINT", help="an existing directory")
    p.add_argument("--trace", metavar="FILE", help="append a JSON Lines trace of every operation to FILE")
    p.add_argument("--report", metavar="FILE", help="write a JSON report (reads, releases, violations) at unmount")
    p.add_argument("--foreground", action="store_true", help="stay in the foreground until unmounted")
    add_fault_option(p)
    p.set_defaults(func=cmd_mount)

    p = sub.add_parser("umount", help="unmount a mock and end its daemon",
                       description="Unmount the mock at MOUNTPOINT and wait for its daemon to finish.")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.set_defaults(func=cmd_umount)

    p = sub.add_parser(
        "run", help="run an unmodified program against a mocked machine, sealed from the host",
        description="Run CMD in private namespaces where /proc/vmcore, the machine's /sys/kernel dump files, "
        "/proc/device-tree/rtas/*, /proc/sys, /proc/sysrq-trigger and the arming files (/proc/iomem, "
        "/proc/cmdline) are the mock's, at their canonical paths. Sealed: the root file system is an overlay "
        "whose writes land in the machine, /sys is read-only, kexec_load, kexec_file_load, reboot and the "
        "module, clock and swap calls are answered by the machine, the hostname is private, and CMD runs in a "
        "PID namespace of its own, where it sees only its run's processes; echo c > "
        "/proc/sysrq-trigger crashes the machine (every process of the run dies). Prints a report on "
        "standard error and exits with CMD's status, or 3 when CMD succeeded but violations were recorded, or "
        "4 (with --verify) when it succeeded but its dump is incomplete or different. A kill-after fault kills "
        "CMD once; run does not rerun it (run again with --machine DIR to continue the same machine, as "
        "conform does). Needs root, or unprivileged user namespaces and a usable /dev/fuse (FUSE mounts and "
        "mount namespaces).",
    )
    p.add_argument("--fixture", metavar="F",
                   help="a built-in fixture name or a manifest (default: phyp-power6); with --machine, needed only "
                   "when DIR holds no machine yet")
    p.add_argument("--machine", metavar="DIR",
                   help="keep the machine's whole life in DIR (created on first use, mode 0700): what was registered, "
                   "loaded, released and written, crashes and reboots; a rerun continues the same machine. On a "
                   "rerun --fixture and --state may be left out; given, they must match the machine (its fixture, "
                   "the kernel it is in now), or run refuses with one line (exit 2)")
    p.add_argument("--state", choices=("capture", "armed"),
                   help="the kernel a new machine starts in: capture (after a crash, holding the dump; the default) "
                   "or armed (the production kernel, for the dump service's arming half)")
    p.add_argument("--output", metavar="DIR",
                   help="the directory CMD saves the dump to: bound into the sealed run as the host's own, created "
                   "mode 0700 (readable by its owner only); --fault enospc limits it")
    p.add_argument("--trace", metavar="FILE", help="write the JSON Lines trace of every operation to FILE")
    p.add_argument("--report", metavar="FILE", help="also write the report as JSON to FILE")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON on standard output; CMD's own output then goes to standard error")
    p.add_argument("--verify", action="store_true",
                   help="compare what CMD left in --output with the machine's memory, page by page, and exit 4 "
                   "when the dump is incomplete or different")
    add_fault_option(p)
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the program to run")
    p.set_defaults(func=cmd_run)

    from mockfs.sandbox.runtime import runtime_dir  # os alone: cheap enough for the help

    p = sub.add_parser("cleanup", help="remove mounts and daemons a crashed run left behind",
                       description="Unmount and end the mock daemons and runs a crash left behind, and remove the "
                       "scratch directories of killed runs. The records are in the runtime directory: "
                       "$ABI_HARNESS_RUNTIME_DIR if set; else /run/abi-harness for root, "
                       "$XDG_RUNTIME_DIR/abi-harness (or /tmp/abi-harness-UID) for an ordinary user, who cleans up "
                       f"only after their own runs (yours: {runtime_dir()}). Live mocks and runs are left alone "
                       "unless --all is given.")
    p.add_argument("--all", action="store_true", help="also end live mocks and runs")
    p.set_defaults(func=cmd_cleanup)

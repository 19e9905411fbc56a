"""`abi-harness mount`, `umount` and `cleanup`: the mock as a daemon."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mockfs.daemon import cleanup, mount, serve, umount
from mockfs.faults import parse_faults
from mockfs.live import LiveMachine
from mockfs.machine import VmcoreImage, resolve_fixture

from .errors import UsageError


def open_machine(fixture: str) -> LiveMachine:
    """The live machine of a built-in fixture name or a manifest path."""
    return LiveMachine(VmcoreImage(resolve_fixture(fixture)))


def cmd_mount(args: argparse.Namespace) -> int:
    machine = open_machine(args.fixture)
    faults = parse_faults(args.fault)
    mountpoint = Path(args.mountpoint)
    if not mountpoint.is_dir():
        raise UsageError(f"{mountpoint}: mount point is not a directory")
    trace = Path(args.trace).resolve() if args.trace else None
    report = Path(args.report).resolve() if args.report else None
    if args.foreground:
        serve(machine, mountpoint, trace, faults, report)
        if not report:
            print(json.dumps(machine.summary(), indent=2))
        return 0
    handle = mount(machine, mountpoint, trace, faults, report)
    print(f"{mountpoint}: serving {machine.fixture.name} ({machine.fixture.platform}, daemon pid {handle.pid}); "
          f"'abi-harness umount {mountpoint}' ends it")
    return 0


def cmd_umount(args: argparse.Namespace) -> int:
    umount(Path(args.mountpoint))
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    done = cleanup()
    for line in done:
        print(line)
    if not done:
        print("nothing to clean up", file=sys.stderr)
    return 0


def add_fault_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fault", metavar="SPEC", action="append", default=[],
                   help="inject a fault: eio:START-END, short:N, delay:MS, kill-after:N, enospc:SIZE (repeatable)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``mount``, ``umount`` and ``cleanup`` to the top-level parser."""
    p = sub.add_parser(
        "mount", help="serve a fixture's dump ABI over FUSE",
        description="Serve, under MOUNTPOINT, the tree of canonical paths (sys/kernel/..., proc/vmcore, "
        "proc/device-tree/rtas/...) of a fixture's capture kernel. Returns once the mount answers and "
        "leaves a daemon serving it; 'abi-harness umount MOUNTPOINT' ends it.",
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

    p = sub.add_parser("cleanup", help="remove mounts and daemons a crashed run left behind",
                       description="Unmount and end every mock daemon recorded under /run/abi-harness.")
    p.set_defaults(func=cmd_cleanup)

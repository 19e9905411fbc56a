"""`abi-harness machine show`, `crash` and `reboot`: a machine that lives across commands."""

from __future__ import annotations

import argparse
import json

from abi_specs.units import format_size, plural


def cmd_show(args: argparse.Namespace) -> int:
    from mockfs.session.machines import MachineDir

    doc = MachineDir.open(args.dir).describe()
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    held = [k for k, v in doc["variables"].items() if v]
    print(f"{doc['machine']}: {doc['fixture']} ({doc['platform']}, {doc['arch']})")
    print(f"  kernel     {doc['kernel']}{' (armed for the next crash)' if doc['armed'] else ''}")
    print(f"  holds      {', '.join(held) or 'nothing'}")
    if doc["crash_kernel"]:
        ck = doc["crash_kernel"]
        print(f"  crash kernel  {ck.get('syscall')} by {ck.get('comm')}: {ck.get('cmdline', '')!r}")
    if doc["crash_size"]:
        print(f"  crashkernel   {format_size(doc['crash_size'])} reserved")
    for key, value in doc["sysctls"].items():
        print(f"  sysctl     {key.replace('/', '.')} = {value.strip()}")
    print(f"  dumps      {doc['dumps']} taken, {doc['released']} releases of the current one; {doc['runs']} runs")
    for event in doc["events"][-20:]:
        extra = {k: v for k, v in event.items() if k not in ("event", "time", "kernel")}
        print(f"    {event['event']:<14} {json.dumps(extra) if extra else ''}")
    return 0


def cmd_life(args: argparse.Namespace) -> int:
    from abi_specs import builtin_spec
    from abi_specs.lifecycle_docs import render_lifecycle, render_lifecycles

    spec = builtin_spec()
    print(render_lifecycle(spec, args.platform) if args.platform else render_lifecycles(spec), end="")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from mockfs.session.machines import MachineDir
    from mockfs.tools import debs

    machine = MachineDir.open(args.dir)
    for package in args.packages:
        name = debs.resolve(package)
        trees = debs.unpacked(name)
        tree = trees[-1] if trees else debs.unpack(name)
        # A kernel package's modules (hundreds of MiB) are no use to a machine that never boots it.
        only = ("boot",) if name.startswith("linux-image-") else ()
        count = machine.install(tree, only)
        part = ", /boot only" if only else ""
        print(f"{args.dir}: installed {name} ({plural(count, 'file')}{part}; no maintainer scripts ran)")
    return 0


def _transition(args: argparse.Namespace, name: str) -> int:
    from mockfs.session.machines import MachineDir, transition

    ran = transition(args.dir, name, f"abi-harness {name}")
    after = MachineDir.open(args.dir).describe()
    steps = " then ".join(ran)
    print(f"{args.dir}: {steps}; now in the {after['kernel']} kernel" + (" holding a dump" if after["variables"].get(
        "dump_active") else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``machine``, ``crash`` and ``reboot`` to the top-level parser."""
    p = sub.add_parser("machine", help="show a machine kept by run --machine",
                       description="Show the state of the machine in DIR: its kernel, what is registered or loaded, "
                       "the sysctls written, its dumps and the events of its life.")
    msub = p.add_subparsers(dest="machine_command", metavar="COMMAND", required=True)
    show = msub.add_parser("show", help="print the machine's state")
    show.add_argument("dir", metavar="DIR")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=cmd_show)

    life = msub.add_parser("life", help="print each platform's life: what arms it, its states and transitions",
                           description="Print, from the spec, what arms each platform's machine, the variables "
                           "it remembers, and every transition with what fires it (Markdown).")
    life.add_argument("--platform", choices=("phyp", "fadump", "kdump"), help="only this platform")
    life.set_defaults(func=cmd_life)

    install = msub.add_parser(
        "install", help="put Debian packages into the machine's root file system",
        description="Download each PACKAGE with apt-get download (nothing is installed on the host), unpack it "
        "privately and put its files into the machine's root file system, where only runs on this machine see "
        "them. No maintainer script runs: configure what a script would have with a run, e.g. "
        "'abi-harness run --machine DIR -- cp /usr/share/kdump-tools/kdump-tools.conf /etc/default/kdump-tools'. "
        "A kernel metapackage (linux-image-amd64) means the kernel it depends on; of a kernel only /boot is put in.")
    install.add_argument("dir", metavar="DIR")
    install.add_argument("packages", nargs="+", metavar="PACKAGE", help="e.g. kdump-tools kexec-tools linux-image-amd64")
    install.set_defaults(func=cmd_install)

    for name, what in (("crash", "crash the machine: armed, it boots its capture kernel holding a new dump; not "
                        "armed, it just reboots and no dump is taken"),
                       ("reboot", "reboot the machine into its production kernel (any dump is gone)")):
        p = sub.add_parser(name, help=what.split(":")[0], description=f"{what[0].upper()}{what[1:]}. A run using the "
                           "machine goes down with it: every process of the run dies.")
        p.add_argument("dir", metavar="DIR", help="a machine directory (run --machine DIR)")
        p.set_defaults(func=lambda a, n=name: _transition(a, n))

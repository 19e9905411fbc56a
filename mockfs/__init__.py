"""Mocks of the crash-dump ABI: a crashed machine's dump files, live, for unmodified programs.

Each subpackage has one job:

* machine: the machine model (pure): fixtures and the bytes of their /proc/vmcore;
* dumps: dumps read back: imported cores, saved dumps in every format, verification;
* live: the live machine's state: what its ABI files show and what writes do;
* judge: the judgement of the collector: violations of the ABI's contract;
* fuse: the FUSE view of a live machine, its daemon, faults and trace;
* sandbox: the private mount namespace that shows the mock at canonical paths;
* session: a run (used by ``abi-harness run`` and the pytest plugin) and its report;
* conform: conformance of any collector under generated machines and faults;
* tools: the real tools the harness drives, and privately unpacked packages;
* oracle: a real kernel as the referee: kdump recorded in a throw-away QEMU guest;
* record: real crashes as fixtures (a live capture kernel, or the oracle's guest).

The facts all of these work from live in :mod:`abi_specs`.
"""

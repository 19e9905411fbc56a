"""The sandbox: a private mount namespace where unmodified programs see the mock at canonical paths.

* namespace: ``run_in_namespace`` (the caller's side);
* inside: the runner that lives in the namespace (a fork of the caller, or a fresh ``python -I -S``);
* run_init: process 1 of each run's PID namespace, which runs the program;
* quiet: ``suppress`` without contextlib, for the runner's quick start;
* rootfs, binds: the sealed root file system the runner pivots into, and the
  bind targets that would undo its seal;
* seal, sealed_calls: the seccomp seal that hands kexec, reboot and the other
  machine-changing calls to the mocked machine, and the answer to each;
* probe: proves from inside a run that the seals hold, then runs a command;
* syscalls: the few Linux system calls needed, through ctypes;
* processes, mountinfo, records, runtime: processes by identity, the one
  mountinfo reader, the run and mount records and where they live;
* scratch: scratch directories named after their owner;
* stops: the signals that stop a command, and holding them while a scratch is handed over;
* cleanup: the one cleanup of what killed runs and mocks left behind.

The runner imports only builtin modules, so this package's ``__init__`` imports nothing.
"""

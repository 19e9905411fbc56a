"""The sandbox: a private mount namespace where unmodified programs see the mock at canonical paths.

* namespace: ``run_in_namespace`` (the caller's side);
* inside: the runner that lives in the namespace (a fresh ``python -I -S``);
* syscalls: the few Linux system calls needed, through ctypes;
* processes, mountinfo, records, runtime: processes by identity, the one
  mountinfo reader, the run and mount records and where they live;
* cleanup: the one cleanup of what killed runs and mocks left behind.

The runner imports only builtin modules, so this package's ``__init__`` imports nothing.
"""

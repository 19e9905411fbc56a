"""The FUSE view: the live machine's dump ABI as files, and the /proc overlay of the runner.

* fs: :class:`MockFS`, the operations over a :class:`~mockfs.live.LiveMachine`;
* daemon: ``mount``/``serve``/``umount`` of a mock daemon;
* procfs: the small /proc a runner mounts in its namespace;
* faults: injected faults (``--fault``); trace: the JSON Lines trace;
* lib: the one loader of mfusepy on libfuse3.

Submodules are imported on use: the binding is loaded only by daemons.
"""

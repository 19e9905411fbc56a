"""FUSE mocks of the crash-dump ABI and the machine model behind them.

``mockfs.machine`` models a crashed machine from a fixture image and produces
the bytes of its /proc/vmcore on demand.
"""

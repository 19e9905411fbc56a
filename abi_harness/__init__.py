"""The ``abi-harness`` command line (see :mod:`abi_harness.cli`)."""

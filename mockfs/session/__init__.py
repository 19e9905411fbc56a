"""The run session: a mock and a program, used by ``abi-harness run``, the pytest plugin and conformance.

* runner: ``run`` (a supervisor in its own namespace, the mock, the program, the report);
* machines: a machine that lives across runs (``--machine DIR``): its state and lock;
* testbed: :class:`MockMount`, a mock under a private directory;
* output_limit: the ``enospc`` fault's size-limited output directory;
* report: the report for people; pytest_plugin: ``abi_mock`` and ``abi_run``;
* demo: ``make demo``, the reference collector on a built-in fixture, verified.
"""

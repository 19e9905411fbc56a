"""The run session: a mock and a program, used by ``abi-harness run``, the pytest plugin and conformance.

* runner: ``run`` (a supervisor in its own namespace, the mock, the program, the report);
* testbed: :class:`MockMount`, a mock under a private directory;
* report: the report for people; pytest_plugin: ``abi_mock`` and ``abi_run``.
"""

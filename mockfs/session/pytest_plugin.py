"""pytest plugin: a crashed machine in a test.

Installed with the package (entry point ``pytest11``), it gives two fixtures:

``abi_mock``
    A :class:`~mockfs.session.testbed.MockMount`: the fixture image's dump ABI served
    over FUSE under a private temporary directory (``abi_mock.path("/proc/vmcore")``).
    After the test it is unmounted; ``abi_mock.stop()`` unmounts early and
    returns the report (reads, releases, violations).

``abi_run``
    ``abi_run(argv, output=..., faults=[...])`` runs an unmodified program in a
    private mount namespace where the mock sits at the canonical paths, and
    returns a :class:`~mockfs.session.runner.RunResult` (exit status, report,
    violations, trace).

``abi_machine``
    A :class:`~mockfs.session.testbed.Machine` living in the test's temporary
    directory: ``abi_machine.run(argv)``, ``abi_machine.crash()``,
    ``abi_machine.reboot()``, ``abi_machine.state``. It starts in the state the
    marker names (``@pytest.mark.abi_fixture("fadump-power9", state="armed")``;
    default ``capture``).

Choose the fixture image with ``@pytest.mark.abi_fixture("kdump-x86_64")`` or
parametrize indirectly: ``@pytest.mark.parametrize("abi_mock", [...], indirect=True)``
(``abi_run`` follows ``abi_mock``'s parameter too). The default is ``phyp-power6``.
Every mount lives in the test's own temporary directory, so ``pytest -n auto``
is safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

DEFAULT_FIXTURE = "phyp-power6"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "abi_fixture(name, faults=None, state='capture'): the fixture image (and faults, and the "
        "machine's first state) for abi_mock, abi_run and abi_machine"
    )


def _state(request: pytest.FixtureRequest) -> str:
    marker = request.node.get_closest_marker("abi_fixture")
    return str(marker.kwargs.get("state", "capture")) if marker is not None else "capture"


def _choice(request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    marker = request.node.get_closest_marker("abi_fixture")
    callspec = getattr(request.node, "callspec", None)
    name = getattr(request, "param", None) or (callspec.params.get("abi_mock") if callspec else None)
    faults: list[str] = []
    if marker is not None:
        name = name or (marker.args[0] if marker.args else marker.kwargs.get("name"))
        faults = list(marker.kwargs.get("faults") or [])
    return str(name or DEFAULT_FIXTURE), faults


def _require_fuse() -> None:
    """Fail the test with one line (no traceback) when this user cannot make FUSE mounts at all."""
    from mockfs.fuse.daemon import fuse_device_problem

    if problem := fuse_device_problem():
        pytest.fail(f"abi-harness: {problem}", pytrace=False)


@pytest.fixture
def abi_mock(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A mounted mock of the chosen fixture image (see the module docstring)."""
    from mockfs.session.testbed import MockMount

    _require_fuse()
    name, faults = _choice(request)
    mock = MockMount(name, faults=faults, workdir=tmp_path / "abi-mock")
    mock.start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def abi_run(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., object]:
    """Run a program against the mock at canonical paths (see the module docstring)."""
    from mockfs.session.runner import run

    _require_fuse()
    name, marked_faults = _choice(request)
    counter = iter(range(1_000_000))

    def runner(argv: list[str], *, fixture: str | None = None, output: Path | None = None,
               faults: list[str] | None = None, **kwargs: object) -> object:
        work = tmp_path / f"abi-run-{next(counter)}"
        return run(argv, fixture=fixture or name, output=output,
                   faults=marked_faults if faults is None else faults, workdir=work, **kwargs)

    return runner


@pytest.fixture
def abi_machine(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """A machine across runs, crashes and reboots (see the module docstring)."""
    from mockfs.session.testbed import Machine

    _require_fuse()
    name, _ = _choice(request)
    return Machine(tmp_path / "abi-machine", name, state=_state(request))

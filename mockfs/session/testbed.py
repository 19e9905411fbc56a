"""A small testbed API: mount a mock, look at it, end it, read what happened.

>>> with MockMount("phyp-power6") as mock:                        # doctest: +SKIP
...     text = mock.path("/sys/kernel/release_region").read_text()
>>> mock.report["violations"]                                      # doctest: +SKIP
[]

A machine through its whole life, across runs:

>>> machine = Machine(tmp / "m", "kdump-x86_64", state="armed")   # doctest: +SKIP
>>> machine.run(["kexec", "-p", vmlinuz, "--initrd", initrd])     # doctest: +SKIP
>>> machine.crash()                                                # doctest: +SKIP
['crash']
>>> machine.kernel, machine.variables["dump_active"]               # doctest: +SKIP
('capture', True)

Used by the pytest plugin (:mod:`mockfs.session.pytest_plugin`) and by our own tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType

from mockfs.dumps.served import open_image, resolve_served
from mockfs.fuse.daemon import Mounted, mount, umount
from mockfs.fuse.faults import FaultPlan, parse_faults
from mockfs.live import LiveMachine
from mockfs.machine import Fixture
from mockfs.sandbox.scratch import Scratch

from .machines import MachineDir, transition

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from .runner import RunResult


class MockMount:
    """A fixture's dump ABI served over FUSE under a private directory."""

    def __init__(self, fixture: str | Path | Fixture = "phyp-power6", faults: list[str] | FaultPlan | None = None,
                 workdir: Path | None = None, machine: MachineDir | None = None) -> None:
        self.machine_dir = machine
        if machine is not None:
            self.fixture, self.image = machine.fixture, machine.image
        else:
            self.fixture = fixture if isinstance(fixture, Fixture) else resolve_served(fixture)
            self.image = open_image(self.fixture)
        self.faults = faults if isinstance(faults, FaultPlan) else parse_faults(faults or [])
        self._tmp = None if workdir else Scratch("abi-mock-")
        self.workdir = Path(workdir or self._tmp.name)
        self.root = self.workdir / "root"
        self.trace_path = self.workdir / "trace.jsonl"
        self.report_path = self.workdir / "report.json"
        self._handle: Mounted | None = None
        self.report: dict[str, object] = {}

    def path(self, canonical: str) -> Path:
        """Where the canonical path *canonical* (e.g. ``/proc/vmcore``) is served."""
        return self.root / canonical.lstrip("/")

    def start(self) -> MockMount:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.machine_dir is not None:
            live, keep = self.machine_dir.live(), self.machine_dir.save
        else:
            live, keep = LiveMachine(self.image), None
        self._handle = mount(live, self.root, self.trace_path, self.faults, self.report_path,
                             log=self.workdir / "daemon.log", die_with_parent=True, keep=keep)
        return self

    def stop(self) -> dict[str, object]:
        """Unmount; return the report (reads, releases, violations)."""
        if self._handle is not None:
            umount(self.root, pid=self._handle.pid)
            self._handle = None
            self.report = json.loads(self.report_path.read_text())
        return self.report

    def trace(self) -> list[dict[str, object]]:
        """The trace so far, one dict per operation."""
        if not self.trace_path.exists():
            return []
        return [json.loads(line) for line in self.trace_path.read_text().splitlines() if line]

    @property
    def violations(self) -> list[dict[str, object]]:
        return list(self.report.get("violations", []))  # type: ignore[arg-type]

    def __enter__(self) -> MockMount:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


class Machine:
    """A machine that lives across runs, kept in a directory (``abi-harness run --machine DIR``).

    *fixture* and *state* (``capture`` or ``armed``) are needed only when
    *path* holds no machine yet. :meth:`run` runs a program on it, sealed;
    :meth:`crash` and :meth:`reboot` are the transitions from outside;
    :attr:`state` is what ``abi-harness machine show --json`` prints.
    """

    def __init__(self, path: str | Path, fixture: str | Path | Fixture | None = None, state: str = "capture") -> None:
        self.path = Path(path)
        if (self.path / "machine.json").exists():
            MachineDir.open(self.path)
        else:
            if fixture is None:
                raise ValueError(f"{self.path}: no machine here yet: give a fixture to create it")
            MachineDir.create(self.path, fixture if isinstance(fixture, Fixture) else str(fixture), state)
        self._runs = 0

    def run(self, argv: Sequence[str], **options: Any) -> RunResult:
        """Run *argv* on the machine (options as :func:`mockfs.session.runner.run`)."""
        from .runner import run

        self._runs += 1
        options.setdefault("workdir", self.path.parent / f".{self.path.name}-run-{self._runs}")
        return run(argv, machine=self.path, **options)

    def crash(self) -> list[str]:
        """Crash the machine; returns the transitions that ran (``['crash']``; ``['crash', 'boot']`` when not armed)."""
        return transition(self.path, "crash", "testbed")

    def reboot(self) -> list[str]:
        """Reboot the machine into its production kernel."""
        return transition(self.path, "reboot", "testbed")

    @property
    def state(self) -> dict[str, Any]:
        """The machine now: kernel, variables, what is loaded, sysctls, dumps, events."""
        return MachineDir.open(self.path).describe()

    @property
    def kernel(self) -> str:
        """``armed`` (the production kernel) or ``capture``."""
        return str(self.state["kernel"])

    @property
    def armed(self) -> bool:
        """Whether a crash now would leave a dump."""
        return bool(self.state["armed"])

    @property
    def variables(self) -> dict[str, bool]:
        """The platform's state variables (``registered``, ``crash_loaded``, ``dump_active``...)."""
        return dict(self.state["variables"])

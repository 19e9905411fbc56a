"""A small testbed API: mount a mock, look at it, end it, read what happened.

>>> with MockMount("phyp-power6") as mock:                        # doctest: +SKIP
...     text = mock.path("/sys/kernel/release_region").read_text()
>>> mock.report["violations"]                                      # doctest: +SKIP
[]

Used by the pytest plugin (:mod:`mockfs.session.pytest_plugin`) and by our own tests.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import TracebackType

from mockfs.fuse.daemon import Mounted, mount, umount
from mockfs.fuse.faults import FaultPlan, parse_faults
from mockfs.live import LiveMachine
from mockfs.machine import Fixture, VmcoreImage, resolve_fixture

from .machines import MachineDir


class MockMount:
    """A fixture's dump ABI served over FUSE under a private directory."""

    def __init__(self, fixture: str | Path | Fixture = "phyp-power6", faults: list[str] | FaultPlan | None = None,
                 workdir: Path | None = None, machine: MachineDir | None = None) -> None:
        self.machine_dir = machine
        if machine is not None:
            self.fixture = machine.fixture
        else:
            self.fixture = fixture if isinstance(fixture, Fixture) else resolve_fixture(fixture)
        self.image = VmcoreImage(self.fixture)
        self.faults = faults if isinstance(faults, FaultPlan) else parse_faults(faults or [])
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="abi-mock-")
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

"""A machine that lives across commands: its directory, its state, its lock.

``abi-harness run --machine DIR`` keeps a machine in DIR between runs:

* ``fixture.toml``: the machine's fixture, copied in when DIR is created;
* ``machine.json``: its state (which kernel runs, what is registered or
  loaded, the kexec'd kernels, the sysctls written, what was released of the
  current dump, every event of its life) and what the judge saw of the
  current dump, rewritten atomically after every change;
* ``rootfs/``: the upper layer of the overlay the runner puts over the host's
  root file system: every file the programs wrote outside ``--output``;
* ``lock``: held by the one run that uses the machine.

Everything in DIR is readable by its owner only: it describes a crashed kernel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from abi_specs.errors import AbiError
from abi_specs.lifecycle import STATES
from mockfs.dumps.served import load_imported, load_machine_fixture, open_image, resolve_served, write_machine_fixture
from mockfs.judge import Judge
from mockfs.live import LiveMachine, life
from mockfs.live.machine import control_path
from mockfs.live.state import MachineState
from mockfs.machine import Fixture
from mockfs.sandbox.processes import is_alive, start_time
from mockfs.sandbox.syscalls import CLONE_NEWNS, setns

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mockfs.dumps.served import CoreFileImage
    from mockfs.machine import VmcoreImage

FORMAT = 1


class MachineError(AbiError):
    """A machine directory that cannot be used; the message says which and why."""


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _same_fixture(given: Fixture, kept: Fixture) -> bool:
    """Whether *given* is the fixture a machine was made from (a real core: the same core file)."""
    if given.core_manifest and kept.core_manifest:
        same_core = (Path(load_imported(given.core_manifest).core_path).resolve()
                     == Path(load_imported(kept.core_manifest).core_path).resolve())
        return same_core and dataclasses.replace(given, core_manifest=kept.core_manifest) == kept
    return given == kept


class MachineDir:
    """The directory of one machine (see the module docstring)."""

    def __init__(self, path: Path, fixture: Fixture, doc: dict[str, Any]) -> None:
        self.path = path
        self.fixture = fixture
        self.doc = doc
        self._image: VmcoreImage | CoreFileImage | None = None

    @property
    def image(self) -> VmcoreImage | CoreFileImage:
        """The machine's /proc/vmcore, built once: it never changes, and every run's daemon serves it."""
        if self._image is None:
            self._image = open_image(self.fixture)
        return self._image

    def reloaded(self) -> MachineDir:
        """This machine with its state read again (a daemon saved it); its fixture and image are kept."""
        again = MachineDir.open_state(self.path)
        machine = MachineDir(self.path, self.fixture, again)
        machine._image = self._image
        return machine

    # -- where things are ------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.path / "machine.json"

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    # -- making and opening ----------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], fixture: str | os.PathLike[str] | Fixture,
               kernel: str = "capture") -> MachineDir:
        """A new machine in *path* (created mode 0700) from *fixture*, in *kernel* (``capture`` or ``armed``)."""
        if kernel not in STATES:
            raise MachineError(f"unknown state {kernel!r} (use {' or '.join(STATES)})")
        target = Path(path).absolute()  # daemons and runners work from other directories
        if (target / "machine.json").exists():
            raise MachineError(f"{target}: already holds a machine")
        fx = fixture if isinstance(fixture, Fixture) else resolve_served(fixture)
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(target, 0o700)
        write_machine_fixture(fx, target / "fixture.toml")
        os.chmod(target / "fixture.toml", 0o600)
        machine = cls(target, fx, {"format": FORMAT, "fixture": "fixture.toml", "runs": 0})
        live = LiveMachine(machine.image, state=None)
        live.state = live.initial_state(kernel)
        live.state.event("created", fixture=fx.name)
        machine.save(live)
        return machine

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> MachineDir:
        """The machine in *path*; MachineError when there is none or it is broken."""
        target = Path(path).absolute()  # daemons and runners work from other directories
        doc = cls.open_state(target)
        return cls(target, load_machine_fixture(target / str(doc.get("fixture", "fixture.toml"))), doc)

    @staticmethod
    def open_state(target: Path) -> dict[str, Any]:
        """The machine state document in *target*; MachineError when there is none or it is broken."""
        try:
            doc = json.loads((target / "machine.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MachineError(f"{target}: no machine here (create one with --fixture)") from None
        except (OSError, ValueError) as exc:
            raise MachineError(f"{target / 'machine.json'}: unreadable machine state ({exc})") from None
        if doc.get("format") != FORMAT:
            raise MachineError(f"{target / 'machine.json'}: unknown format {doc.get('format')!r}")
        return doc

    @classmethod
    def open_or_create(cls, path: str | os.PathLike[str], fixture: str | None, kernel: str | None) -> MachineDir:
        """``run --machine DIR``: the machine in DIR, created from *fixture* on first use.

        On a later use *fixture* and *kernel* may be left out; given, they must
        match the machine (its fixture, the kernel it is in now), else
        MachineError: a rerun never silently becomes another machine.
        """
        if (Path(path) / "machine.json").exists():
            machine = cls.open(path)
            machine._check_matches(fixture, kernel)
            return machine
        if fixture is None:
            raise MachineError(f"{path}: no machine here yet: give --fixture (and --state) to create it")
        return cls.create(path, fixture, kernel or "capture")

    def _check_matches(self, fixture: str | None, kernel: str | None) -> None:
        """MachineError when *fixture* or *kernel* (if given) contradict this machine."""
        if fixture is not None and not _same_fixture(resolve_served(fixture), self.fixture):
            raise MachineError(f"{self.path}: holds a machine of fixture {self.fixture.name!r}, not {fixture!r} "
                               "(leave out --fixture to continue it, or give a new directory)")
        current = MachineState.from_dict(self.doc["state"]).kernel.kernel
        if kernel is not None and kernel != current:
            raise MachineError(f"{self.path}: the machine is in its {current} kernel, not {kernel} (leave out "
                               "--state to continue it; abi-harness crash and reboot move it between kernels)")

    # -- its root file system ------------------------------------------------------------------

    def install(self, tree: str | os.PathLike[str], only: tuple[str, ...] = ()) -> int:
        """Put the files of an unpacked package *tree* into the machine's root file system.

        They land in the overlay's upper layer, so the machine's programs see
        them and the host does not. Paths follow the host's own directory
        links (``/sbin`` is ``usr/sbin`` on a merged-/usr system), lest a
        package's ``sbin/`` hide the host's. *only* keeps just the named
        top-level directories. No maintainer script runs. Returns the number
        of files placed.
        """
        source = Path(tree)
        upper = self.rootfs / "upper"
        count = 0
        for dirpath, dirnames, filenames in os.walk(source):
            rel = Path(dirpath).relative_to(source)
            if only and rel.parts and rel.parts[0] not in only:
                dirnames.clear()
                continue
            if rel.parts:  # empty directories too (/var/lib/kdump): programs expect them
                (upper / os.path.realpath("/" + str(rel)).lstrip("/")).mkdir(parents=True, exist_ok=True)
            links = [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
            for name in filenames + links:
                item = Path(dirpath) / name
                if only and not rel.parts:
                    continue  # a file at the top of the tree is in no kept directory
                target = upper / os.path.realpath("/" + str(rel)).lstrip("/") / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.unlink(missing_ok=True)
                if item.is_symlink():
                    os.symlink(os.readlink(item), target)
                else:
                    shutil.copy2(item, target)
                count += 1
        return count

    # -- state -------------------------------------------------------------------------------

    def live(self, quirks: frozenset[str] | None = None) -> LiveMachine:
        """The machine, live, as it was left."""
        state = MachineState.from_dict(self.doc["state"])
        judge = Judge.from_dict(self.doc.get("judge", {}))
        return LiveMachine(self.image, quirks=quirks, state=state, judge=judge)

    def save(self, machine: LiveMachine) -> None:
        """Keep *machine*'s state (atomically: a crash of ours never leaves half a file)."""
        with machine.lock:
            self.doc["state"] = machine.state.to_dict()
            self.doc["judge"] = machine.judge.to_dict()
            text = json.dumps(self.doc, indent=1)
        _write_private(self.state_file, text)

    def describe(self) -> dict[str, Any]:
        """What ``abi-harness machine show`` prints."""
        live = self.live()
        state = live.state
        return {
            "machine": str(self.path),
            "fixture": self.fixture.name,
            "platform": self.fixture.platform,
            "arch": self.fixture.arch,
            "kernel": state.kernel.kernel,
            "variables": {v: state.kernel[v] for v in live.lifecycle.variables},
            "armed": live.lifecycle.is_armed(state.kernel),
            "crash_size": state.crash_size,
            "crash_kernel": state.crash_kernel,
            "kexec_kernel": state.kexec_kernel,
            "bootargs": state.bootargs,
            "sysctls": dict(state.sysctls),
            "dumps": state.dump,
            "released": state.release_count,
            "runs": self.doc.get("runs", 0),
            "events": state.events,
        }

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the machine for one run; MachineError at once when another run holds it.

        The lock is a POSIX record lock, which is this process's own: a process
        another thread forks meanwhile (conform's next run) does not take it
        along, as it would a flock() held by the descriptor both then share.
        """
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (BlockingIOError, PermissionError):  # EAGAIN, or EACCES on some systems
                raise MachineError(f"{self.path}: another run is using this machine") from None
            self.doc["runs"] = int(self.doc.get("runs", 0)) + 1
            yield
        finally:
            (self.path / "active.json").unlink(missing_ok=True)
            os.close(fd)

    def mark_active(self, mock_root: Path) -> None:
        """Say where the live run serves this machine (for ``crash``/``reboot`` from outside)."""
        _write_private(self.path / "active.json", json.dumps({"pid": os.getpid(), "start": start_time(os.getpid()),
                                                               "mock": str(mock_root)}))

    def in_use(self) -> dict[str, Any] | None:
        """The live run's record, or None when no run holds the machine.

        For other processes than the holder: a POSIX lock is its owner's, so the
        holder would find it free, and closing this descriptor would drop it.
        """
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (BlockingIOError, PermissionError):
                try:
                    return dict(json.loads((self.path / "active.json").read_text()))
                except (OSError, ValueError):
                    return {"pid": None}
            fcntl.lockf(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def transition(path: str | os.PathLike[str], name: str, by: str) -> list[str]:
    """``abi-harness crash DIR`` / ``reboot DIR``: the transition *name* of the machine in *path*.

    With no run using the machine, its saved state changes. With one, the
    request goes to its mock (in the run's mount namespace), and the machine
    goes down under the run: every process of it dies, as in a real crash.
    """
    machine = MachineDir.open(path)
    active = machine.in_use()
    if active is None:
        with machine.locked():
            live = machine.live()
            ran = (life.crash if name == "crash" else life.reboot)(live, by)
            machine.save(live)
        return ran
    if not active.get("pid") or not is_alive(int(active["pid"]), active.get("start")):
        raise MachineError(f"{path}: a run holds this machine but cannot be reached; try again when it ends")
    answer = _ask_live(int(active["pid"]), str(active["mock"]), {"op": name, "by": by})
    if "errno" in answer:
        raise MachineError(f"{path}: cannot {name}: {answer.get('reason')}")
    return list(answer.get("ran", []))


def _ask_live(pid: int, mock: str, request: dict[str, Any]) -> dict[str, Any]:
    """A control request to the mock of a live run, from inside the run supervisor's mount namespace."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.close(r)
            ns = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            setns(ns, CLONE_NEWNS)
            fd = os.open(control_path(mock), os.O_RDWR | os.O_CLOEXEC)
            os.pwrite(fd, json.dumps(request).encode(), 0)
            os.write(w, os.pread(fd, 1 << 20, 0))
            code = 0
        except BaseException as exc:
            os.write(w, json.dumps({"errno": 1, "reason": str(exc)}).encode())
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(child, 0)
    try:
        return dict(json.loads(b"".join(chunks) or b"{}"))
    except ValueError:
        return {"errno": 1, "reason": "no answer from the live run"}

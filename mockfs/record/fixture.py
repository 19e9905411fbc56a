"""A recorded fixture: a real crash's /proc/vmcore (sparse, beside the manifest) and what its ABI showed.

The manifest is an imported-core manifest (``kind = "imported-core"``) with
two more tables: ``[machine]`` (platform, kernel release, crashkernel= area:
what the machine model needs) and ``[recorded]`` (per state, ``armed``,
``armed-loaded`` after ``kexec -p``, ``capture``: every ABI file's presence,
mode and value, and the writes tried with their results). Both files are
readable by their owner only: they hold a real kernel's memory.

:func:`record_live` records the capture kernel it runs in; it only reads.
:func:`record_qemu` boots a real kernel under QEMU (:mod:`mockfs.oracle`) and
records both of its kernels.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from abi_specs.errors import AbiError
from mockfs.dumps.export import export_file
from mockfs.dumps.imported import ImportedCore, import_core

from .abi import platform_of, record_abi

Progress = Callable[[int, int], None]  # (bytes done, total)


class RecordError(AbiError):
    """A recording that cannot be made; the message says what and where."""


class _FileImage:
    """/proc/vmcore as an image: its size from stat, its bytes by pread (it is not seekable past the end)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = os.stat(path).st_size
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        os.close(self._fd)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


def write_recorded(core: ImportedCore, manifest: Path) -> None:
    """The manifest of a recorded core, naming its core file relative to itself."""
    doc = core.manifest()
    doc["core"]["path"] = os.path.relpath(core.core_path, manifest.parent)
    _write_private(manifest, tomli_w.dumps(doc))


def blob_path(manifest: Path) -> Path:
    """Where the recorded vmcore goes: beside the manifest, named after it."""
    return manifest.with_name(manifest.stem + ".vmcore")


def _copy_vmcore(source: Path, dest: Path, progress: Progress | None) -> None:
    image = _FileImage(source)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, image.size)

    try:
        export_file(image, dest, progress=step, sparse=True)
    except OSError as exc:
        raise RecordError(f"{dest}: cannot write the recorded vmcore: {exc.strerror}") from None
    finally:
        image.close()


def record_live(manifest: str | os.PathLike[str], root: Path = Path("/"), name: str | None = None,
                progress: Progress | None = None) -> ImportedCore:
    """Record the capture kernel this runs in (its files under *root*) as a fixture at *manifest*."""
    out = Path(manifest)
    vmcore = root / "proc/vmcore"
    if not vmcore.exists():
        raise RecordError(f"{vmcore}: no such file: fixture record runs in a capture kernel, after a crash and "
                          "before the collector")
    if not out.parent.is_dir():
        raise RecordError(f"{out.parent}: no such directory")
    files = record_abi(root)
    blob = blob_path(out)
    _copy_vmcore(vmcore, blob, progress)
    core = import_core(blob, name or out.stem)
    release = os.uname().release
    core.machine = {"platform": platform_of(files), "osrelease": release, "hostname": os.uname().nodename}
    upstream = upstream_version(os.uname().version, release)
    if upstream:
        core.machine["kernel_version"] = upstream
    core.recorded = {"capture": {"files": files}}
    core.description = f"recorded from a live capture kernel (Linux {release}) on {datetime.date.today()}"
    write_recorded(core, out)
    return core


# -- from QEMU ------------------------------------------------------------------------------

#: The oracle's state names, and the recording's.
_STATES = {"production": "armed", "production-loaded": "armed-loaded", "capture": "capture"}


def _oracle_file(raw: dict[str, Any]) -> dict[str, Any]:
    """One file as the oracle's guest saw it, in the recording's words."""
    if not raw.get("present"):
        return {"present": False}
    kind = {"regular file": "file", "directory": "dir", "symbolic link": "link"}.get(str(raw.get("type")), "file")
    out: dict[str, Any] = {"present": True, "mode": int(str(raw.get("mode", "0")), 8), "type": kind}
    if kind == "file":
        out["size"] = int(raw.get("size", 0))
        if "content" in raw:
            out["value"] = str(raw["content"])
        if raw.get("read_error"):
            out["read_error"] = str(raw["read_error"]).strip()
    return out


def _oracle_write(raw: dict[str, Any]) -> dict[str, Any]:
    return {"path": raw["path"], "data": raw["data"], "errno": raw.get("errno") or "", "readback": raw.get("readback", "")}


def upstream_version(uname_v: str, release: str) -> str:
    """The upstream version a distribution kernel is, when ``uname -v`` says more than ``uname -r``:
    Debian's ``6.1.0-57-amd64`` is ``#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (...)``: 6.1.192."""
    from abi_specs.versions import KernelVersion

    base = KernelVersion.parse(release)
    for text in re.findall(r"\b(\d+\.\d+\.\d+)", uname_v):
        found = KernelVersion.parse(text)
        if (found.major, found.minor) == (base.major, base.minor) and found > base:
            return str(found)
    return ""


def _crashkernel(iomem_line: str) -> dict[str, int] | None:
    """``2f000000-3effffff : Crash kernel`` as {start, size}."""
    text = iomem_line.strip().split(" ", 1)[0]
    if "-" not in text:
        return None
    start, end = (int(x, 16) for x in text.split("-"))
    return {"start": start, "size": end - start + 1}


def recorded_states(states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The oracle's states as a recording's ``[recorded]`` table."""
    out: dict[str, Any] = {}
    for theirs, ours in _STATES.items():
        state = states.get(theirs)
        if state is None:
            continue
        entry: dict[str, Any] = {"files": {p: _oracle_file(v) for p, v in state.get("files", {}).items()},
                                 "writes": [_oracle_write(w) for w in state.get("writes", [])],
                                 "cmdline": state.get("cmdline", "")}
        if "kexec_load" in state:
            entry["kexec_load"] = {k: str(v) for k, v in state["kexec_load"].items()}
        if ours == "capture":
            entry["vmcore_dmesg"] = state.get("vmcore_dmesg", "")
        if "dmesg" in state:  # the armed kernel's own log, read in the guest just before the crash
            entry["dmesg"] = state["dmesg"]
        out[ours] = entry
    return out


def record_qemu(manifest: str | os.PathLike[str], *, arch: str = "x86_64", memory: str = "1G",
                kernel: str | None = None, name: str | None = None, say: Callable[[str], None] | None = None,
                **options: Any) -> ImportedCore:
    """Boot a real kernel under QEMU, arm it with kexec -p, crash it, and record both kernels at *manifest*."""
    from mockfs.oracle.vm import record_vm

    out = Path(manifest)
    if not out.parent.is_dir():
        raise RecordError(f"{out.parent}: no such directory")
    work = Path(tempfile.mkdtemp(prefix=".record-", dir=out.parent))
    try:
        rec = record_vm(work, arch=arch, memory=memory, kernel=kernel, progress=say, **options)
        blob = blob_path(out)
        os.replace(rec.vmcore, blob)
        os.chmod(blob, 0o600)
        core = import_core(blob, name or out.stem)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    production = rec.states.get("production", {})
    machine: dict[str, Any] = {"platform": "kdump", "osrelease": rec.kernel_version, "hostname": "oracle"}
    upstream = upstream_version(str(production.get("uname_v", "")), rec.kernel_version)
    if upstream:
        machine["kernel_version"] = upstream
    ck = _crashkernel(str(production.get("iomem_crash_kernel", "")))
    if ck:
        machine["crashkernel"] = ck
    core.machine = machine
    core.recorded = recorded_states(rec.states)
    core.recorded["qemu"] = {"accel": rec.accel, "accel_note": rec.accel_note, "memory": rec.memory, "cpus": rec.cpus,
                             "kernel": rec.kernel_source, "kexec_tools": rec.kexec_tools,
                             "seconds": rec.wall_seconds}
    core.description = (f"recorded under QEMU ({rec.accel}): Debian's {rec.kernel_version} kernel, {memory}, "
                        f"armed with {rec.kexec_tools}, on {datetime.date.today()}")
    write_recorded(core, out)
    return core

"""record_vm: boot a Debian kernel in QEMU, arm kdump, crash it, record both kernels and the vmcore."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from .console import parse_serial_log
from .disk import create_disk, extract_vmcore
from .guest import DUMP_GLOBS, dump_files, read_only_probes
from .host import guest_memory, private_dir, qemu_memory, write_private
from .initramfs import build_initramfs
from .packages import GuestUserland, KernelImage, apt_for, guest_userland, resolve_kernel, resolve_kexec_tools
from .profiles import (
    COPY_CHUNK_MB,
    DEFAULT_CAPTURE_APPEND,
    DISK_MAGIC,
    DISK_SLACK,
    PROFILES,
    VMCORE_MAGIC,
    VMCORE_OFFSET,
    OracleError,
    ProgressCallback,
)
from .qemu import QemuResult, QemuTarget, SerialWatcher, choose_accel, qemu_argv, resolve_qemu, run_qemu

# record_vm
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Recording:
    """What one oracle run produced.

    ``states`` maps ``production`` (before ``kexec -p``), ``production-loaded``
    (after it), ``capture`` and ``capture-copy`` to their recorded dicts.
    ``stage_times`` are seconds since QEMU started; ``wall_seconds`` covers
    the whole call (packages, initramfs, KVM probe, QEMU, extraction).
    """

    vmcore: Path
    vmcore_size: int
    vmcore_disk_bytes: int
    states: dict[str, dict[str, Any]]
    arch: str
    kernel_version: str
    kernel_source: str
    kexec_tools: str
    accel: str
    accel_note: str
    memory: str
    cpus: int
    wall_seconds: float
    stage_times: dict[str, float]
    serial_log: Path
    qemu_argv: list[str]

    @property
    def production(self) -> dict[str, Any]:
        return self.states["production"]

    @property
    def capture(self) -> dict[str, Any]:
        return self.states["capture"]

    @property
    def vmcore_dmesg(self) -> str:
        """The crashed kernel's log as vmcore-dmesg printed it in the guest."""
        return str(self.states["capture"].get("vmcore_dmesg", ""))

    @property
    def dmesg(self) -> str:
        """The armed kernel's own log, read with ``dmesg`` in the guest just before the crash."""
        return str(self.states.get("production-loaded", {}).get("dmesg", ""))

    def to_json(self) -> str:
        def default(obj: object) -> str:
            return str(obj)

        return json.dumps(dataclasses.asdict(self), indent=2, default=default)


def _check_states(states: dict[str, dict[str, Any]], watcher: SerialWatcher) -> None:
    if watcher.failures:
        raise OracleError(f"guest reported failure: {watcher.failures[0]}")
    wanted = ("production", "production-loaded", "capture", "capture-copy")
    missing = [s for s in wanted if s not in states]
    if missing:
        raise OracleError(
            f"no {', '.join(missing)} state recorded; last console lines:\n{watcher.tail()}"
        )


def record_vm(
    workdir: str | os.PathLike[str],
    *,
    arch: str = "x86_64",
    memory: str = "1G",
    cpus: int = 1,
    kernel: str | os.PathLike[str] | None = None,
    accel: str = "auto",
    timeout: float = 900.0,
    idle_timeout: float = 180.0,
    crashkernel: str = "256M",
    capture_append: str = DEFAULT_CAPTURE_APPEND,
    extra_append: str = "",
    kexec_file_load: bool = False,
    shrink_by: int = 0,
    keep_disk: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    fetch_qemu: bool = False,
    progress: ProgressCallback | None = None,
) -> Recording:
    """Boot a Debian kernel in QEMU, arm kdump, crash it and record both kernels.

    Args:
        workdir: output directory (created 0700): ``vmcore``, ``serial.log``,
            ``recording.json``.
        arch: guest architecture, a key of :data:`PROFILES` (``x86_64``,
            ``ppc64le``: pseries under TCG, packages of Debian's ppc64el).
        memory, cpus: guest size: *memory* in the project's size grammar (``1G``;
            a bare number is bytes), given to QEMU's ``-m`` in MiB; *cpus* ``-smp``.
        kernel: None for Debian's current ``linux-image-<flavour>`` dependency,
            else a ``linux-image-*.deb`` or a kernel image path.
        accel: ``auto`` (probe KVM briefly, else TCG), ``kvm`` or ``tcg``.
        timeout, idle_timeout: overall limit, and limit without console output.
        crashkernel: the production kernel's ``crashkernel=`` value.
        capture_append: command line given to ``kexec -p --append``
            (``console=`` for the architecture is put in front).
        kexec_file_load: use ``kexec -s`` (kexec_file_load) instead of kexec_load.
        shrink_by: bytes to shrink the reservation by before loading (0: no
            shrink).  A real shrink is recorded (page rounding, iomem), but
            with kexec_load the freed page then shows up twice in the
            vmcore's PT_LOADs, so the default keeps the reservation whole.
        keep_disk: keep the raw disk image (``workdir/disk.raw``).
        cache_dir: where packages and the KVM probe result are cached
            (default ``~/.cache/abi-harness/oracle``, beside the private packages).
        fetch_qemu: when the emulator is not installed, ``apt-get download``
            its package and run it from the cache instead of failing.
        progress: called with one line per boot stage.

    Raises:
        OracleError: with a one-line reason (missing QEMU or package, guest
            failure, timeout, corrupted console records).
    """
    started = time.monotonic()
    if arch not in PROFILES:
        raise OracleError(f"arch must be one of {', '.join(PROFILES)}, not {arch!r}")
    profile = PROFILES[arch]
    memory_bytes = guest_memory(memory)  # bad input fails before anything is fetched or booted
    out = private_dir(Path(workdir).resolve())
    cache = private_dir(Path(cache_dir).resolve() if cache_dir is not None else default_cache())
    qemu = resolve_qemu(profile, cache, fetch=fetch_qemu)
    say = progress or (lambda _msg: None)
    for stale in ("vmcore", "recording.json", "serial.log"):
        (out / stale).unlink(missing_ok=True)

    apt = apt_for(profile.debian_arch, cache)
    image = resolve_kernel(kernel, cache, profile, apt)
    tools = resolve_kexec_tools(cache, apt)
    userland = guest_userland(profile, cache, apt)
    say(f"{arch} kernel {image.version} ({image.source}), {tools.package}")
    config = _record_config(
        f"console={profile.console} {capture_append}", kexec_file_load, shrink_by
    )
    prod_img, _capture_img = build_initramfs(image, tools, userland, config)

    boot = _boot_and_extract(qemu, image, userland, prod_img, out, cache, accel=accel, cpus=cpus,
                             memory_bytes=memory_bytes, append=f"console={profile.console} crashkernel={crashkernel} "
                             f"panic=1 {extra_append}".strip(), timeout=timeout, idle_timeout=idle_timeout,
                             keep_disk=keep_disk, progress=progress)
    expected = boot.states["capture"].get("files", {}).get("/proc/vmcore", {}).get("size")
    if expected is not None and expected != boot.size:
        raise OracleError(f"vmcore length {boot.size} differs from /proc/vmcore size {expected}")
    recording = Recording(
        vmcore=out / "vmcore",
        vmcore_size=boot.size,
        vmcore_disk_bytes=(out / "vmcore").stat().st_blocks * 512,
        states=boot.states,
        arch=arch,
        kernel_version=image.version,
        kernel_source=image.source,
        kexec_tools=tools.package,
        accel=boot.accel,
        accel_note=boot.accel_note,
        memory=memory,
        cpus=cpus,
        wall_seconds=round(time.monotonic() - started, 2),
        stage_times=boot.result.watcher.stage_times,
        serial_log=out / "serial.log",
        qemu_argv=boot.argv,
    )
    write_private(out / "recording.json", recording.to_json().encode())
    say(f"done in {recording.wall_seconds:.1f}s")
    return recording


@dataclasses.dataclass
class _Boot:
    """What one boot gave: both kernels' states, the vmcore's size, and how QEMU ran."""

    states: dict[str, dict[str, Any]]
    size: int
    accel: str
    accel_note: str
    argv: list[str]
    result: QemuResult


def _boot_and_extract(qemu: QemuTarget, image: KernelImage, userland: GuestUserland, prod_img: bytes, out: Path,
                      cache: Path, *, accel: str, cpus: int, memory_bytes: int, append: str, timeout: float,
                      idle_timeout: float, keep_disk: bool, progress: ProgressCallback | None) -> _Boot:
    """One boot: arm, crash, capture; the states of both kernels, and the vmcore pulled from the disk."""
    say = progress or (lambda _msg: None)
    scratch = private_dir(out / "run")
    try:
        initrd = scratch / "production.img"
        write_private(initrd, prod_img)
        chosen, note = choose_accel(accel, qemu, image, userland, scratch, cache)
        say(f"accelerator: {chosen} ({note})")
        disk = scratch / "disk.raw"
        create_disk(disk, memory_bytes + DISK_SLACK)
        argv = qemu_argv(qemu, vmlinuz=image.vmlinuz, initrd=initrd, append=append,
                         memory=qemu_memory(memory_bytes), cpus=cpus, accel=chosen, disk=disk)
        result = run_qemu(argv, log_path=out / "serial.log", timeout=timeout, idle_timeout=idle_timeout,
                          progress=progress)
        states = parse_serial_log(result.watcher.lines)
        _check_states(states, result.watcher)
        say("extracting vmcore")
        size = extract_vmcore(disk, out / "vmcore")
        if keep_disk:
            disk.rename(out / "disk.raw")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _Boot(states, size, chosen, note, list(argv), result)


def default_cache() -> Path:
    """Where downloads and the KVM probe result are kept between recordings."""
    from mockfs.tools.debs import private_root

    return private_root().parent / "oracle"


def _record_config(capture_append: str, kexec_file_load: bool, shrink_by: int) -> dict[str, str]:
    """The guest's /oracle.conf for a recording run."""
    if shrink_by < 0 or shrink_by > 64 << 20:
        raise OracleError("shrink_by must be between 0 and 64 MiB")
    return {
        "MODE": "record",
        "DUMP_FILES": " ".join(dump_files()),
        "DUMP_GLOBS": " ".join(DUMP_GLOBS),
        "RO_PROBES": " ".join(read_only_probes()),
        "CAPTURE_APPEND": capture_append,
        "KEXEC_FLAGS": "-s" if kexec_file_load else "",
        "SHRINK_BY": str(int(shrink_by)),
        "DISK_MAGIC": DISK_MAGIC,
        "VMCORE_MAGIC": VMCORE_MAGIC,
        "VMCORE_OFFSET": str(VMCORE_OFFSET),
        "COPY_CHUNK_MB": str(COPY_CHUNK_MB),
    }

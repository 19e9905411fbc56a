"""QEMU: the emulator to run, its command line, the serial console it is watched through, and the KVM probe."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, BinaryIO

from .host import run, write_private
from .initramfs import probe_initramfs
from .packages import Apt, GuestUserland, KernelImage, fetch_tree, find_in, host_debian_arch, ldd_libraries
from .profiles import PROBE_TIMEOUT, QEMU_FIRMWARE_DIR, ArchProfile, OracleError, ProgressCallback

# QEMU and the serial console
# --------------------------------------------------------------------------

_KERNEL_MILESTONES = (
    (re.compile(r"Linux version (\S+)"), "kernel {0} booting"),
    (re.compile(r"Run /init as init process"), "init started"),
    (re.compile(r"sysrq: Trigger a crash"), "sysrq crash triggered"),
    (re.compile(r"Kernel panic - not syncing: (.*)"), "panic: {0}"),
    (re.compile(r"Starting crashdump kernel"), "jumping to the capture kernel"),
)
#: Console lines after which waiting longer is pointless.
_FATAL = re.compile(r"Failed to execute /init|Attempted to kill init|No working init found")


class SerialWatcher:
    """Reads QEMU's serial output, logs it, reports stages, remembers markers."""

    def __init__(
        self, stream: IO[bytes], log: BinaryIO, progress: ProgressCallback | None, start: float
    ) -> None:
        self.lines: list[str] = []
        self.stage_times: dict[str, float] = {}
        self.failures: list[str] = []
        self.done = threading.Event()
        self.fatal = threading.Event()
        self.last_output = time.monotonic()
        self._stream, self._log, self._progress, self._start = stream, log, progress, start
        self._crashed = False
        self._in_capture = False
        self._partial = b""
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        fd = self._stream.fileno()
        while chunk := os.read(fd, 65536):
            self._log.write(chunk)
            self._log.flush()
            self.last_output = time.monotonic()
            self._partial += chunk
            *complete, self._partial = self._partial.split(b"\n")
            for raw in complete:
                line = raw.decode("utf-8", "replace").rstrip("\r")
                self.lines.append(line)
                self._classify(line)
        if self._partial:
            self.lines.append(self._partial.decode("utf-8", "replace"))
            self._partial = b""

    def _stage(self, name: str) -> None:
        elapsed = time.monotonic() - self._start
        self.stage_times.setdefault(name, round(elapsed, 2))
        if self._progress is not None:
            self._progress(f"[{elapsed:7.1f}s] {name}")

    def _classify(self, line: str) -> None:
        if line.startswith("@@ABI"):
            return
        if line.startswith("@@STAGE "):
            self._stage(line[8:].strip())
        elif line.startswith("@@PROGRESS "):
            if self._progress is not None:
                elapsed = time.monotonic() - self._start
                self._progress(f"[{elapsed:7.1f}s]   {line[11:].strip()}")
        elif line.startswith("@@FAIL"):
            self.failures.append(line[6:].strip())
            self._stage(f"FAILED: {line[6:].strip()}")
        elif _FATAL.search(line):
            self.failures.append(line.strip())
            self._stage(f"FATAL: {line.strip()}")
            self.fatal.set()
        elif line.startswith(("@@DONE", "@@PROBE-OK")):
            self._stage(line[2:].strip().lower())
            self.done.set()
        else:
            for pattern, label in _KERNEL_MILESTONES:
                m = pattern.search(line)
                if m:
                    self._milestone(label.format(*m.groups()))
                    break
        if line.startswith("@@STAGE crash"):
            self._crashed = True

    def _milestone(self, label: str) -> None:
        """Report a kernel message, named after the kernel that printed it."""
        if label.startswith("kernel") and self._crashed:
            self._in_capture = True  # (powerpc prints "Linux version" twice per boot)
        if label.startswith(("sysrq", "panic")):
            self._crashed = True
        self._stage(("capture: " if self._in_capture else "production: ") + label)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def tail(self, n: int = 15) -> str:
        """The last ``n`` console lines, including an unfinished one."""
        partial = [self._partial.decode("utf-8", "replace")] if self._partial else []
        return "\n".join((self.lines + partial)[-n:])


@dataclasses.dataclass
class QemuResult:
    returncode: int
    watcher: SerialWatcher
    wall_seconds: float


@dataclasses.dataclass(frozen=True)
class QemuTarget:
    """A QEMU system emulator for one guest architecture."""

    profile: ArchProfile
    binary: str
    extra_args: tuple[str, ...] = ()

    @property
    def native(self) -> bool:
        """Whether KVM is conceivable (guest and host architecture agree)."""
        return os.uname().machine == self.profile.name


def resolve_qemu(profile: ArchProfile, cache: Path, *, fetch: bool = False) -> QemuTarget:
    """Find ``qemu-system-*`` on PATH, or (``fetch``) unpack its package privately."""
    found = shutil.which(profile.qemu_binary)
    if found is not None:
        return QemuTarget(profile, found)
    if not fetch:
        raise OracleError(
            f"{profile.qemu_binary} not found on PATH: install Debian's {profile.qemu_package} "
            "(make install does), or let the oracle unpack it privately (fetch_qemu=True)"
        )
    tree = fetch_tree(profile.qemu_package, cache, Apt(host_debian_arch()))
    binary = find_in(tree, profile.qemu_binary, ("usr/bin",))
    ldd_libraries(binary)  # raises when a shared library is missing on the host
    if not QEMU_FIRMWARE_DIR.is_dir():
        raise OracleError(f"{QEMU_FIRMWARE_DIR} missing (Debian package qemu-system-data)")
    return QemuTarget(profile, str(binary), ("-L", str(QEMU_FIRMWARE_DIR)))


def _accel_args(accel: str, profile: ArchProfile) -> list[str]:
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", profile.kvm_cpu]
    if accel == "tcg":
        return ["-accel", "tcg", *(["-cpu", profile.tcg_cpu] if profile.tcg_cpu else [])]
    raise OracleError(f"accel must be 'auto', 'kvm' or 'tcg', not {accel!r}")


def qemu_argv(
    qemu: QemuTarget,
    *,
    vmlinuz: Path,
    initrd: Path,
    append: str,
    memory: str,
    cpus: int,
    accel: str,
    disk: Path | None,
) -> list[str]:
    """The QEMU command line (console on stdout, no other devices but the disk)."""
    argv = [
        qemu.binary,
        *qemu.extra_args,
        *qemu.profile.machine_args,
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        *_accel_args(accel, qemu.profile),
        "-m",
        memory,
        "-smp",
        str(cpus),
        "-serial",
        "stdio",
        "-kernel",
        str(vmlinuz),
        "-initrd",
        str(initrd),
        "-append",
        append,
    ]
    if disk is not None:
        argv += [
            "-drive",
            f"file={disk},if=virtio,format=raw,discard=unmap,detect-zeroes=unmap",
        ]
    return argv


def run_qemu(
    argv: Sequence[str],
    *,
    log_path: Path,
    timeout: float,
    idle_timeout: float,
    progress: ProgressCallback | None,
    stop_on_done: bool = False,
) -> QemuResult:
    """Run QEMU until it exits; kill it on timeout (overall or no output).

    With ``stop_on_done`` QEMU is killed as soon as ``@@DONE``/``@@PROBE-OK``
    shows (used by the KVM probe).
    """
    start = time.monotonic()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert proc.stdout is not None
        watcher = SerialWatcher(proc.stdout, log, progress, start)
        try:
            reason = _wait_qemu(proc, watcher, start, timeout, idle_timeout, stop_on_done)
        finally:
            _stop(proc)
            watcher.join(10)
    wall = time.monotonic() - start
    if reason is not None:
        raise OracleError(f"{reason} after {wall:.0f}s; last console lines:\n{watcher.tail()}")
    return QemuResult(proc.returncode, watcher, wall)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate QEMU if it still runs (SIGTERM, then SIGKILL after 5 s)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_qemu(
    proc: subprocess.Popen[bytes],
    watcher: SerialWatcher,
    start: float,
    timeout: float,
    idle_timeout: float,
    stop_on_done: bool,
) -> str | None:
    """Wait for QEMU to exit; return a failure reason or None."""
    while True:
        try:
            proc.wait(timeout=0.5)
            return None
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if stop_on_done and watcher.done.is_set():
            return None
        if watcher.fatal.is_set():
            return f"guest failed ({watcher.failures[-1]})"
        if now - start > timeout:
            return f"QEMU timed out ({timeout:.0f}s)"
        if now - watcher.last_output > idle_timeout:
            return f"QEMU printed nothing for {idle_timeout:.0f}s"


def probe_kvm(
    qemu: QemuTarget,
    kernel: KernelImage,
    userland: GuestUserland,
    scratch: Path,
    *,
    timeout: float = PROBE_TIMEOUT,
) -> tuple[bool, str]:
    """Boot ``kernel`` briefly under KVM; return (usable, explanation)."""
    if not qemu.native:
        return False, "no KVM across architectures"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "no usable /dev/kvm"
    initrd = scratch / "probe.img"
    write_private(initrd, probe_initramfs(userland))
    argv = qemu_argv(
        qemu,
        vmlinuz=kernel.vmlinuz,
        initrd=initrd,
        append=f"console={qemu.profile.console} panic=-1",
        memory="256M",
        cpus=1,
        accel="kvm",
        disk=None,
    )
    try:
        result = run_qemu(
            argv,
            log_path=scratch / "kvm-probe.log",
            timeout=timeout,
            idle_timeout=timeout,
            progress=None,
            stop_on_done=True,
        )
    except OracleError as exc:
        reason, _, tail = str(exc).partition("; last console lines:\n")
        lines = [ln for ln in tail.strip().splitlines() if "terminating on signal" not in ln]
        last = lines[-1:] or ["nothing"]
        return False, f"KVM probe failed: {reason}; console ended with {last[0]!r}"
    if result.watcher.done.is_set():
        return True, f"KVM probe booted to init in {result.wall_seconds:.1f}s"
    return False, f"KVM probe: QEMU exited ({result.returncode}): {result.watcher.tail(3)}"


def choose_accel(
    accel: str,
    qemu: QemuTarget,
    kernel: KernelImage,
    userland: GuestUserland,
    scratch: Path,
    cache: Path,
) -> tuple[str, str]:
    """Resolve ``auto`` with a (cached) KVM probe; return (accel, note)."""
    if accel != "auto":
        _accel_args(accel, qemu.profile)
        return accel, "requested"
    if not qemu.native:
        return "tcg", "no KVM across architectures"
    qemu_version = run([qemu.binary, "--version"], what="qemu --version").splitlines()[0]
    key = f"{qemu_version}|{kernel.version}|{os.uname().release}"
    cache_file = cache / f"kvm-probe-{qemu.profile.name}.json"
    try:
        cached = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cached = {}
    if cached.get("key") == key:
        usable, note = cached["usable"], cached["note"] + " (cached)"
    else:
        usable, note = probe_kvm(qemu, kernel, userland, scratch)
        entry = {"key": key, "usable": usable, "note": note}
        write_private(cache_file, json.dumps(entry).encode())
    return ("kvm" if usable else "tcg"), note

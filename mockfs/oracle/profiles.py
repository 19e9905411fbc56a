"""What differs between the guest architectures, and the oracle's constants."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from abi_specs.errors import AbiError

ProgressCallback = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class ArchProfile:
    """What differs between the guest architectures the oracle can run."""

    name: str
    debian_arch: str
    kernel_flavour: str  # linux-image-<flavour> is the metapackage
    kernel_glob: str  # the bootable file in the package's boot/
    qemu_binary: str
    qemu_package: str
    machine_args: tuple[str, ...]
    tcg_cpu: str | None
    console: str
    #: Only used with KVM (same host architecture).
    kvm_cpu: str = "host"


PROFILES = {
    "x86_64": ArchProfile(
        name="x86_64",
        debian_arch="amd64",
        kernel_flavour="amd64",
        kernel_glob="vmlinuz-*",
        qemu_binary="qemu-system-x86_64",
        qemu_package="qemu-system-x86",
        machine_args=(),
        tcg_cpu="max",
        console="ttyS0",
    ),
    "ppc64le": ArchProfile(
        name="ppc64le",
        debian_arch="ppc64el",
        kernel_flavour="powerpc64le",
        kernel_glob="vmlinux-*",
        qemu_binary="qemu-system-ppc64",
        qemu_package="qemu-system-ppc",
        machine_args=("-M", "pseries"),
        tcg_cpu=None,
        console="hvc0",
    ),
}
KEXEC_PACKAGE = "kexec-tools"
#: Modules the capture kernel needs to write the vmcore to a virtio disk.
CAPTURE_MODULES = ("virtio_pci", "virtio_blk")
#: ``kexec -p --append`` (``console=`` is added per architecture).
DEFAULT_CAPTURE_APPEND = "irqpoll nr_cpus=1 reset_devices panic=1"
#: Where a privately unpacked QEMU finds its firmware (package qemu-system-data).
QEMU_FIRMWARE_DIR = Path("/usr/share/qemu")
DISK_MAGIC = "ABIORACLE-EMPTY-DISK-V1"
VMCORE_MAGIC = "ABIORACLE-VMCORE"
VMCORE_OFFSET = 1 << 20
DISK_SLACK = 256 << 20  # beyond guest RAM: headers and the kernel-text PT_LOAD
SPARSE_CHUNK = 64 << 10
COPY_CHUNK_MB = 128  # the guest copies /proc/vmcore in chunks of this size
PROBE_TIMEOUT = 15.0


class OracleError(AbiError, RuntimeError):
    """Any failure of the oracle, with a one-line, human-readable message."""

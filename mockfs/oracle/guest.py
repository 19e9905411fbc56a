"""What the guest records, from the spec: every dump ABI file it knows, and writes worth trying.

The guest's ``/init`` (``guest_init.sh``) is told, through ``/oracle.conf``,
which paths to record in each state; they are the spec's paths of every
platform (a kdump guest shows which of them a real kernel has), the
device-tree entries the powerpc kernels publish the reservation in, and globs
for what the spec may not know yet.
"""

from __future__ import annotations

from importlib import resources

from abi_specs import builtin_spec

#: The device-tree entries powerpc kernels publish the crashkernel= reservation in, and the
#: directories whose presence says which generation of the kexec and fadump files a kernel has.
EXTRA = ("/proc/device-tree/chosen/linux,crashkernel-base", "/proc/device-tree/chosen/linux,crashkernel-size",
         "/sys/kernel/kexec", "/sys/kernel/fadump")
#: Globs expanded in the guest, for dump files the spec may not know yet.
DUMP_GLOBS = ("/sys/kernel/*kexec*", "/sys/kernel/*crash*", "/sys/kernel/*vmcore*", "/sys/kernel/*fadump*",
              "/sys/kernel/*dump*", "/sys/kernel/kexec/*", "/sys/kernel/fadump/*")


def dump_files() -> tuple[str, ...]:
    """Every dump ABI path the spec knows (recorded present or absent; the machine's /proc files aside)."""
    paths = {f.path for f in builtin_spec().files if not f.directory and f.kind != "procfs"}
    return tuple(sorted((paths - {"/proc/vmcore"}) | set(EXTRA)))


def read_only_probes() -> tuple[str, ...]:
    """Files without a write format on the kdump platform: a write is tried on each, to record the error."""
    return tuple(sorted(f.path for f in builtin_spec().files
                        if "kdump" in f.platforms and f.kind == "attribute" and f.write is None
                        and not f.directory and f.path.startswith("/sys/kernel/")))


def guest_init() -> bytes:
    """The guest's /init script."""
    return (resources.files("mockfs.oracle") / "guest_init.sh").read_bytes()

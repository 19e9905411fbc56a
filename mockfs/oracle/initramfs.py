"""The guest's initramfs images, written in Python (newc cpio) so that ownership and modes are exact."""

from __future__ import annotations

import gzip
import io
import shlex
import stat
from pathlib import Path

from .guest import guest_init
from .packages import GuestUserland, KernelImage, KexecTools, resolve_modules
from .profiles import CAPTURE_MODULES

# initramfs (newc cpio, written in Python so ownership and modes are exact)
# --------------------------------------------------------------------------


class NewcArchive:
    """A minimal writer for the ``newc`` cpio format the kernel unpacks."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._ino = 1
        self._dirs: set[str] = set()

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        name_bytes = name.encode() + b"\0"
        fields = (
            self._ino,
            mode,
            0,
            0,
            1,
            0,
            len(data),
            0,
            0,
            rdev[0],
            rdev[1],
            len(name_bytes),
            0,
        )
        self._ino += 1
        header = b"070701" + b"".join(b"%08x" % f for f in fields)
        self._buf.write(header + name_bytes)
        self._pad()
        self._buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self._buf.write(b"\0" * (-self._buf.tell() % 4))

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        """Add a directory and any missing parents."""
        name = name.strip("/")
        parts = name.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub and sub not in self._dirs:
                self._dirs.add(sub)
                self._entry(sub, stat.S_IFDIR | mode)

    def add_file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        """Add a regular file (parents are created)."""
        name = name.strip("/")
        if "/" in name:
            self.add_dir(name.rsplit("/", 1)[0])
        self._entry(name, stat.S_IFREG | mode, data)

    def add_symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        if "/" in name:
            self.add_dir(name.rsplit("/", 1)[0])
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def add_chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        name = name.strip("/")
        self.add_dir(name.rsplit("/", 1)[0])
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        """Append the trailer and return the archive."""
        self._entry("TRAILER!!!", 0)
        return self._buf.getvalue()


def _guest_config(values: dict[str, str]) -> bytes:
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items()).encode()


def _base_archive(config: dict[str, str], userland: GuestUserland) -> NewcArchive:
    """busybox, /init, /oracle.conf and the mount points."""
    arc = NewcArchive()
    for d in ("bin", "sbin", "proc", "sys", "dev", "tmp", "lib/modules/oracle"):
        arc.add_dir(d)
    arc.add_chardev("dev/console", 5, 1)
    arc.add_file("bin/busybox", userland.busybox.read_bytes(), 0o755)
    arc.add_symlink("bin/sh", "busybox")
    arc.add_file("init", guest_init(), 0o755)
    arc.add_file("oracle.conf", _guest_config(config), 0o644)
    return arc


def _add_binary(
    arc: NewcArchive, name: str, binary: Path, userland: GuestUserland, added: set[str]
) -> None:
    """Add ``binary`` as ``name`` plus the shared libraries it needs."""
    arc.add_file(name, binary.read_bytes(), 0o755)
    for guest_path, host_file in userland.libraries(binary):
        if guest_path not in added:
            added.add(guest_path)
            arc.add_file(guest_path, host_file.read_bytes(), 0o755)


def build_initramfs(
    kernel: KernelImage, tools: KexecTools, userland: GuestUserland, config: dict[str, str]
) -> tuple[bytes, bytes]:
    """Return (production image, capture image).

    The capture image (gzip) holds busybox, vmcore-dmesg and the virtio
    modules; the production image (uncompressed: faster under TCG) holds the
    same plus kexec, the kernel as /vmlinuz and the capture image.
    """
    modules = resolve_modules(kernel, CAPTURE_MODULES)

    def common(arc: NewcArchive, added: set[str]) -> None:
        for name, image in modules:
            arc.add_file(f"lib/modules/oracle/{name}.ko", image)
        arc.add_file(
            "lib/modules/oracle/load-order",
            "".join(f"{name}\n" for name, _ in modules).encode(),
        )
        _add_binary(arc, "bin/vmcore-dmesg", tools.vmcore_dmesg, userland, added)

    capture = _base_archive(config, userland)
    common(capture, set())
    capture_img = gzip.compress(capture.finish(), compresslevel=6, mtime=0)

    prod = _base_archive(config, userland)
    added: set[str] = set()
    common(prod, added)
    _add_binary(prod, "sbin/kexec", tools.kexec, userland, added)
    prod.add_file("vmlinuz", kernel.vmlinuz.read_bytes())
    prod.add_file("capture.img", capture_img)
    return prod.finish(), capture_img


def probe_initramfs(userland: GuestUserland) -> bytes:
    return _base_archive({"MODE": "probe"}, userland).finish()

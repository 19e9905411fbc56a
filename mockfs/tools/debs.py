"""Debian packages unpacked into a private directory: no maintainer scripts, no system change.

``unpack("kdump-tools")`` runs ``apt-get download`` and ``dpkg-deb -x`` into
``$ABI_HARNESS_DEBS`` (default ``~/.cache/abi-harness/debs``), one directory
per package and version, and returns it. A package already unpacked is not
downloaded again. ``python -m mockfs.tools.debs PKG...`` does the same from
``make``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from abi_specs.errors import AbiError

ENV = "ABI_HARNESS_DEBS"


class DebError(AbiError):
    """A package could not be fetched or unpacked; the message says which and why."""


def private_root() -> Path:
    """The directory private package trees live in."""
    if override := os.environ.get(ENV):
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "abi-harness" / "debs"


def unpacked(package: str) -> list[Path]:
    """Trees of *package* already unpacked (newest version last)."""
    root = private_root()
    return sorted(root.glob(f"{package}_*/")) if root.is_dir() else []


def _run(argv: list[str], cwd: Path | None = None) -> str:
    if shutil.which(argv[0]) is None:
        raise DebError(f"{argv[0]} is missing: private packages need Debian's apt and dpkg")
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise DebError(f"{' '.join(argv)}: {last}")
    return proc.stdout


def resolve(package: str) -> str:
    """*package*, or for a kernel metapackage (``linux-image-amd64``) the versioned package it depends on.

    A metapackage holds no files; what a user means by it is the kernel it pulls in.
    """
    if not package.startswith("linux-image-") or any(c.isdigit() for c in package.removeprefix("linux-image-")[:1]):
        return package
    for line in _run(["apt-cache", "depends", package]).splitlines():
        kind, _, name = line.strip().partition(": ")
        if kind == "Depends" and name.startswith("linux-image-") and name[len("linux-image-"):][:1].isdigit():
            return name
    raise DebError(f"{package}: apt-cache names no versioned kernel package it depends on")


def kernel_image(package: str = "") -> Path:
    """The vmlinuz of Debian's kernel package (default: the host architecture's flavour), unpacked privately."""
    if not package:
        package = "linux-image-" + _run(["dpkg", "--print-architecture"]).strip()
    name = resolve(package)
    trees = unpacked(name)
    tree = trees[-1] if trees else unpack(name)
    images = sorted((tree / "boot").glob("vmlinu[xz]-*"))
    if not images:
        raise DebError(f"{tree}: the package {name} holds no boot/vmlinuz-*")
    return images[-1]


def unpack(package: str, deb: Path | None = None) -> Path:
    """Unpack *package* (a name to download, or the .deb file *deb*) privately; return its tree."""
    root = private_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o755)
    with tempfile.TemporaryDirectory(prefix="abi-debs-", dir=root) as tmp:
        work = Path(tmp)
        if deb is None:
            os.chmod(work, 0o755)  # apt's download sandbox user must be able to write... or it warns and goes on as root
            _run(["apt-get", "download", "-q", package], cwd=work)
            found = sorted(work.glob("*.deb"))
            if not found:
                raise DebError(f"apt-get download {package}: no .deb file arrived")
            deb = found[0]
        version = _run(["dpkg-deb", "-f", str(deb), "Version"]).strip().replace(":", "%3a")
        name = _run(["dpkg-deb", "-f", str(deb), "Package"]).strip()
        target = root / f"{name}_{version}"
        if target.is_dir():
            return target
        staging = work / "tree"
        _run(["dpkg-deb", "-x", str(deb), str(staging)])
        staging.rename(target)  # complete trees only: an interrupted unpack leaves nothing half-made
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m mockfs.tools.debs PKG...``: unpack each package privately, print its tree."""
    packages = sys.argv[1:] if argv is None else argv
    if not packages:
        print("usage: python -m mockfs.tools.debs PACKAGE...", file=sys.stderr)
        return 2
    try:
        for package in map(resolve, packages):
            trees = unpacked(package)
            print(trees[-1] if trees else unpack(package))
    except DebError as exc:
        print(f"abi-harness: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

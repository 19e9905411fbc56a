"""One real kernel recorded under QEMU for the whole suite: cached, so `make test` boots QEMU at most once.

The cache key covers what decides the recording: every file of the oracle's
and the recorder's packages (the guest's script among them), the importer of
cores, the list of files it records and the kernel package. Workers
of ``pytest -n auto`` share it: one records while the others wait on a lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from importlib import resources
from pathlib import Path

import pytest

from mockfs.dumps.imported import ImportedCore, load_imported
from mockfs.oracle.guest import dump_files, read_only_probes
from mockfs.tools.debs import private_root, resolve

#: What shapes a recording: every file of these packages, and these modules.
_RECORDING_PACKAGES = ("mockfs.oracle", "mockfs.record")
_RECORDING_MODULES = (("mockfs.dumps", "imported.py"),)


def _key() -> str:
    digest = hashlib.sha256()
    sources = [(package, entry.name) for package in _RECORDING_PACKAGES
               for entry in resources.files(package).iterdir() if entry.is_file() and not entry.name.endswith(".pyc")]
    for package, name in sorted(sources) + list(_RECORDING_MODULES):
        digest.update(f"{package}/{name}\0".encode())
        digest.update((resources.files(package) / name).read_bytes())
    digest.update(repr((dump_files(), read_only_probes())).encode())
    digest.update(resolve("linux-image-amd64").encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def recording() -> tuple[Path, ImportedCore]:
    """(manifest, core) of a real 6.x kernel armed with kexec -p, crashed and recorded under QEMU."""
    from mockfs.record.fixture import record_qemu

    cache = private_root().parent / "recordings" / f"x86_64-{_key()}"
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(cache, 0o700)  # a real kernel's memory
    manifest = cache / "recording.toml"
    with open(cache / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be recording it right now
        if not manifest.exists():
            partial = cache / "partial.toml"
            record_qemu(partial, arch="x86_64", memory="1G", name="oracle-x86_64")
            os.replace(cache / "partial.vmcore", cache / "recording.vmcore")
            text = partial.read_text().replace('path = "partial.vmcore"', 'path = "recording.vmcore"')
            fresh = cache / "recording.toml.new"
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)  # owner-only from birth
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(fresh, manifest)  # complete or absent: a killed recording is never taken for a cached one
            partial.unlink()
            for stale in cache.parent.glob("x86_64-*"):  # 800 MiB each: only the current one is kept
                if stale != cache:
                    shutil.rmtree(stale, ignore_errors=True)
    return manifest, load_imported(manifest)

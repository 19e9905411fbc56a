"""One real kernel recorded under QEMU for the whole suite: cached, so `make test` boots QEMU at most once.

The cache key covers what decides the recording: the guest's script, the
list of files it records, the kernel package and the oracle's code. Workers
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


def _key() -> str:
    digest = hashlib.sha256()
    for name in ("guest_init.sh", "guest.py", "vm.py", "initramfs.py", "console.py"):
        digest.update((resources.files("mockfs.oracle") / name).read_bytes())
    digest.update(repr((dump_files(), read_only_probes())).encode())
    digest.update((resources.files("mockfs.record") / "fixture.py").read_bytes())
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
            manifest.write_text(text)
            os.chmod(manifest, 0o600)
            partial.unlink()
            for stale in cache.parent.glob("x86_64-*"):  # 800 MiB each: only the current one is kept
                if stale != cache:
                    shutil.rmtree(stale, ignore_errors=True)
    return manifest, load_imported(manifest)

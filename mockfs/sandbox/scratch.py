"""Scratch directories that say whose they are, so that a killed owner's are found and removed.

Each is named ``PREFIX<pid>-<start>-XXXX`` (the owner's pid and start time,
see :mod:`.processes`): :func:`stale_scratch` lists those whose owner is gone,
and :func:`mockfs.sandbox.cleanup.cleanup` removes them. A SIGKILL leaves them
behind; nothing else does, since their owners remove them on every other exit.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from .processes import is_alive, start_time

#: The kinds of scratch directory, by prefix.
PREFIXES = ("abi-run-", "abi-mock-", "abi-rootfs-", "abi-conform-", "abi-demo-")
_NAME = re.compile(r"^(abi-[a-z]+-)(\d+)-(\d+)-")
#: Where they are made: the temporary directory, and tmpfs for conform's dumps.
SHM = "/dev/shm"


def bases() -> list[str]:
    """The directories scratch directories are made in."""
    out = [tempfile.gettempdir()]
    if os.path.isdir(SHM) and SHM not in out:
        out.append(SHM)
    return out


def scratch_dir(prefix: str, base: str | None = None) -> str:
    """A new private directory named after its owner (this process)."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown scratch prefix {prefix!r}")
    pid = os.getpid()
    return tempfile.mkdtemp(prefix=f"{prefix}{pid}-{start_time(pid)}-", dir=base)


class Scratch:
    """A scratch directory as a context manager: removed on exit (a kill -9 leaves it to cleanup)."""

    def __init__(self, prefix: str, base: str | None = None) -> None:
        self.name = scratch_dir(prefix, base)

    def cleanup(self) -> None:
        shutil.rmtree(self.name, ignore_errors=True)

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def stale_scratch() -> list[str]:
    """Scratch directories whose owner is gone."""
    out = []
    for base in bases():
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            m = _NAME.match(name)
            if not m or m.group(1) not in PREFIXES:
                continue
            path = os.path.join(base, name)
            if os.path.isdir(path) and not os.path.islink(path) and not is_alive(int(m.group(2)), int(m.group(3))):
                out.append(path)
    return sorted(out)

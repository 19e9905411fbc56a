"""Small host-side helpers of the oracle: running commands, private files and directories, sizes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from abi_specs.units import parse_size

from .profiles import OracleError


def run(argv: Sequence[str], *, cwd: Path | None = None, what: str) -> str:
    """Run a host command, return its stdout, raise OracleError on failure."""
    try:
        proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise OracleError(f"{what}: {argv[0]} not found") from exc
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit status {proc.returncode}"
        raise OracleError(f"{what}: {last}")
    return proc.stdout


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700; return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new mode-0600 file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    path.chmod(0o600)


def guest_memory(text: str) -> int:
    """Bytes of guest memory from *text*, in the project's one size grammar (:func:`abi_specs.units.parse_size`:
    ``1G``, ``512M``, ``0x40000000``; a bare number is bytes, as for ``fixture new --memory``, not QEMU's MiB).

    QEMU is then given whole MiB (:func:`qemu_memory`), so the size must be a multiple of 1 MiB.
    """
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise OracleError(f"--memory: {exc}") from None
    if size == 0 or size % (1 << 20):
        raise OracleError(f"--memory {text}: the guest's memory must be a positive whole number of MiB "
                          f"({size} bytes is not; a bare number is bytes)")
    return size


def qemu_memory(size: int) -> str:
    """QEMU's ``-m`` for *size* bytes (QEMU reads a bare number as MiB: the unit is always written)."""
    return f"{size >> 20}M"

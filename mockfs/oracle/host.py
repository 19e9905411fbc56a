"""Small host-side helpers of the oracle: running commands, private files and directories, sizes."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

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


def parse_size(text: str) -> int:
    """Parse a QEMU-style memory size (``1G``, ``512M``, ``1024``) into bytes."""
    m = re.fullmatch(r"(\d+)([KMGT]?)i?B?", text.strip(), re.IGNORECASE)
    if not m:
        raise OracleError(f"cannot parse memory size {text!r}")
    shift = {"": 20, "K": 10, "M": 20, "G": 30, "T": 40}  # QEMU: no suffix = MiB
    return int(m.group(1)) << shift[m.group(2).upper()]

"""`abi-harness check --spec vmcore` on real files, through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..support import build_core, gcore_of_sleep


def test_user_core_is_not_a_vmcore(cli, tmp_path: Path) -> None:
    core = gcore_of_sleep(tmp_path)
    proc = cli("check", "--spec", "vmcore", str(core))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    # gcore writes PT_NOTE first too but never pads it to a page like /proc/vmcore.
    assert "vmcore" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("garbage", [b"", b"\x7fELF", b"hello world\n" * 100])
def test_garbage_is_rejected_cleanly(cli, tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "vmcore"
    path.write_bytes(garbage)
    proc = cli("check", "--spec", "vmcore", str(path), "--json")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_json_numbers_are_integers(cli, tmp_path: Path) -> None:
    path = tmp_path / "proc" / "vmcore"
    path.parent.mkdir()
    path.write_bytes(build_core("ppc64", 65536, pids=(3, 4), ranges=((0, 65536),)))
    proc = cli("check", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    values = json.loads(proc.stdout)["values"]
    assert values["arch"] == "ppc64" and values["pids"] == [3, 4] and values["page_size"] == 65536

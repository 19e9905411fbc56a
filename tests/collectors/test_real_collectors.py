"""Real third-party collectors against the mock at canonical paths, judged by output, not exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from mockfs.conform.campaign import Example, judge
from mockfs.dumps import verify_dump
from mockfs.machine import VmcoreImage, expected_dmesg, resolve_fixture
from mockfs.session.runner import run

from ..support import tool

KDUMP = resolve_fixture("kdump-x86_64")
VMCORE_SAVE = str(Path(sys.executable).parent / "vmcore-save")  # the console script this package installs


def savecore(tmp_path: Path, faults: list[str] | None = None):
    """`kdump-config savecore` (never load/unload), unpacked privately, with KDUMP_COREDIR in tmp_path.

    kdump-config reads /etc/default/kdump-tools, which overrides the environment:
    where the host has that file a test copy is bound over it inside the namespace.
    """
    coredir = tmp_path / "crash"
    coredir.mkdir()
    defaults = tmp_path / "kdump-tools"
    defaults.write_text(f'USE_KDUMP=1\nKDUMP_COREDIR="{coredir}"\n')
    binds = {"/etc/default/kdump-tools": defaults} if Path("/etc/default/kdump-tools").exists() else {}
    result = run(["sh", tool("kdump-config"), "savecore"], fixture="kdump-x86_64", output=coredir, faults=faults or [],
                 env={**os.environ, "KDUMP_COREDIR": str(coredir)}, extra_binds=binds, workdir=tmp_path / "run")
    return result, coredir


def zero_pages(image: VmcoreImage) -> set[int]:
    """Every all-zero RAM page of the fixture: makedumpfile -d 1 excludes exactly these."""
    ps, window, found = image.page_size, 1 << 20, set()
    zero = bytes(ps)
    for start, size in image.fixture.ram:
        for at in range(start, start + size, window):
            data = image.phys_read(at, min(window, start + size - at))
            pos = data.find(zero)
            while pos >= 0:
                if pos % ps == 0:
                    found.add(at + pos)
                    pos = data.find(zero, pos + ps)
                else:
                    pos = data.find(zero, pos - pos % ps + ps)
    return found


def test_kdump_config_savecore_end_to_end(tmp_path: Path) -> None:
    result, coredir = savecore(tmp_path)
    assert result.returncode == 0 and result.violations == []
    (dmesg,) = coredir.glob("*/dmesg.*")
    assert dmesg.read_text() == expected_dmesg(KDUMP.log)
    (flat,) = coredir.glob("*/dump.*")
    plain = tmp_path / "dump.kdump"
    with open(flat, "rb") as src:
        subprocess.run([tool("makedumpfile"), "-R", str(plain)], stdin=src, check=True, capture_output=True)
    report = verify_dump(VmcoreImage(KDUMP), plain)
    assert report.different == report.misplaced == report.missing == 0
    excluded = set(report.excluded_pages())
    planted = {p for kind in ("free", "cache", "user") for p in KDUMP.planted(kind)}
    zeros = zero_pages(VmcoreImage(KDUMP))
    assert set(KDUMP.planted("zero")) <= zeros
    assert excluded == planted | zeros  # -d 31 drops exactly the planted pages and the all-zero ones


def test_kdump_config_savecore_lies_under_read_errors(tmp_path: Path) -> None:
    """makedumpfile fails on EIO, but savecore's pipeline exit status is compress's: 0."""
    image = VmcoreImage(KDUMP)
    at = image.size // 2 // 4096 * 4096
    faults = [f"eio:{at:#x}-{at + 4096:#x}"]
    result, coredir = savecore(tmp_path, faults)
    assert any(t.get("errno") == "EIO" and t["path"] == "/proc/vmcore" for t in result.trace())  # the fault fired
    problems, _ = judge(Example(KDUMP, tuple(faults)), result, coredir, image)
    assert result.returncode == 0
    assert any("exit status 0 although the save is incomplete" in p for p in problems), problems
    assert any("readable by other users" in p for p in problems), problems  # kdump-tools keeps umask 022


def test_conform_passes_the_reference_collector(cli, tmp_path: Path) -> None:
    junit = tmp_path / "conform.xml"
    proc = cli("conform", "--platform", "kdump", "--examples", "6", "--seed", "3", "--junit", str(junit), "--",
               VMCORE_SAVE, "--quiet", "{output}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "6 passed, 0 failed"
    suite = ElementTree.parse(junit).getroot()
    assert suite.get("tests") == "6" and suite.get("failures") == "0"


def test_conform_catches_and_shrinks_a_careless_collector(cli, tmp_path: Path) -> None:
    keep = tmp_path / "failures"
    careless = "cat /proc/vmcore > {output}/vmcore"  # world-readable, ignores errors
    proc = cli("conform", "--platform", "kdump", "--examples", "5", "--seed", "1", "--keep-failures", str(keep),
               "--", "sh", "-c", careless)
    assert proc.returncode == 1
    assert "readable by other users" in proc.stderr
    # Shrunk to the simplest machine: the first kdump kernel, the smallest memory, one CPU, no fault.
    assert "minimal failure: kdump/x86_64 Linux 2.6.13-conform 64 MiB 1 cpu, no faults" in proc.stderr
    reproduce = (keep / "reproduce.sh").read_text()
    assert "conform --replay" in reproduce and "failure.toml" in reproduce and (keep / "failure.toml").is_file()
    assert proc.stdout.strip().splitlines()[-1].endswith("failed") and " 0 failed" not in proc.stdout


@pytest.mark.parametrize("platform", ["kdump"])
def test_demo(cli, platform: str) -> None:
    proc = cli("demo", "--platform", platform)
    assert proc.returncode == 0, proc.stderr
    assert "violations: none" in proc.stdout
    assert "0 different, 0 missing, 0 misplaced" in proc.stdout

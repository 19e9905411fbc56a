"""`abi-harness docs`: Documentation/ABI drafts from the spec, through the real command line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..support import REPO

TAGS = ["What", "Date", "KernelVersion", "Contact", "Description", "Users"]
EXAMPLE = REPO / "abi_specs" / "examples" / "mem_released.toml"


def entries(text: str) -> list[list[str]]:
    """The tag names of each entry of a Documentation/ABI file, as the kernel's README lays them out."""
    result: list[list[str]] = []
    for line in text.splitlines():
        if not line or line[0] in "\t ":
            continue
        m = re.match(r"([A-Za-z]+):", line)
        assert m, f"untagged line at column 0: {line!r}"
        if m.group(1) == "What":
            result.append([])
        assert result, f"{line!r} before the first What:"
        result[-1].append(m.group(1))
    return result


def test_rendered_tree_follows_the_abi_readme(cli, tmp_path: Path) -> None:
    out = tmp_path / "abi"
    proc = cli("docs", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "testing/sysfs-kernel-phyp_dump" in files
    assert "obsolete/sysfs-kernel-fadump_release_mem" in files
    assert all(f.split("/")[0] in ("testing", "obsolete") for f in files)
    for rel in files:
        text = (out / rel).read_text()
        assert not text.startswith(("\n", "#", "=")), f"{rel} has a title"
        for tags in entries(text):
            assert tags == TAGS, (rel, tags)


def test_release_region_entry_says_what_the_kernel_does(cli, tmp_path: Path) -> None:
    cli("docs", "--out", str(tmp_path))
    text = (tmp_path / "testing" / "sysfs-kernel-phyp_dump").read_text()
    entry = text.split("\nWhat:")[0]
    flat = " ".join(entry.split())
    for fact in [
        "What: /sys/kernel/release_region",
        "address and a LENGTH",
        "not an end address",
        'sscanf("%lx %lx")',
        "1024 means 0x1024",
        "fails with EINVAL only when fewer than two numbers",
        "cuts LENGTH at the reserved end",
        "one page more than asked",
        "rounds START and LENGTH down to whole pages",
        "one value per file",
        "Mode 0600",
    ]:
        assert fact in flat, fact


def test_check_passes_on_fresh_output_and_names_the_stale_file(cli, tmp_path: Path) -> None:
    out = tmp_path / "abi"
    cli("docs", "--out", str(out))
    assert cli("docs", "--out", str(out), "--check").returncode == 0
    target = out / "testing" / "sysfs-kernel-fadump"
    target.write_text(target.read_text().replace("Dec 2019", "Dec 2018", 1))
    proc = cli("docs", "--out", str(out), "--check")
    assert proc.returncode == 1
    assert str(target) in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    cli("docs", "--out", str(out))
    (out / "testing" / "sysfs-kernel-bogus").write_text("What:\t\t/sys/kernel/bogus\n")
    proc = cli("docs", "--out", str(out), "--check")
    assert proc.returncode == 1 and "sysfs-kernel-bogus" in proc.stderr
    cli("docs", "--out", str(out))
    assert not (out / "testing" / "sysfs-kernel-bogus").exists()  # regenerating removes stale files


def test_committed_drafts_are_current(cli, tmp_path: Path) -> None:
    shutil.copytree(REPO / "Documentation-ABI", tmp_path / "abi")
    proc = cli("docs", "--out", str(tmp_path / "abi"), "--check")
    assert proc.returncode == 0, proc.stderr


def test_readme_lifecycle_tables_are_the_spec(cli, tmp_path: Path) -> None:
    """The README's tables of each platform's life are rendered from lifecycle.toml; a stale copy fails."""
    shutil.copytree(REPO / "Documentation-ABI", tmp_path / "abi")
    readme = tmp_path / "README.md"
    shutil.copyfile(REPO / "README.md", readme)
    proc = cli("docs", "--out", str(tmp_path / "abi"), "--check", "--readme", str(readme))
    assert proc.returncode == 0, proc.stderr
    life = cli("machine", "life")
    assert life.returncode == 0 and life.stdout in readme.read_text()
    readme.write_text(readme.read_text().replace("| crash |", "| crash? |", 1))
    stale = cli("docs", "--out", str(tmp_path / "abi"), "--check", "--readme", str(readme))
    assert stale.returncode == 1 and "lifecycle tables differ" in stale.stderr
    assert cli("docs", "--out", str(tmp_path / "abi"), "--readme", str(readme)).returncode == 0
    assert life.stdout in readme.read_text()


def test_worked_example_spec_file(cli) -> None:
    proc = cli("docs", "--spec-file", str(EXAMPLE))
    assert proc.returncode == 0, proc.stderr
    assert entries(proc.stdout) == [TAGS]
    assert "What:\t\t/sys/kernel/fadump/mem_released" in proc.stdout
    ok = cli("check", "--spec-file", str(EXAMPLE), "--spec", "fadump/mem_released", "-", stdin=b"4096 1073741824\n")
    assert ok.returncode == 0, ok.stderr
    assert "released = 4096 (0x1000)" in ok.stdout
    bad = cli("check", "--spec-file", str(EXAMPLE), "--spec", "fadump/mem_released", "-", stdin=b"4096\n")
    assert bad.returncode == 1
    assert "offset 4" in bad.stderr

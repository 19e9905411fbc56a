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
    assert "removed/sysfs-kernel-phyp_dump" in files  # phyp dump left the kernel in 3.4
    assert "obsolete/sysfs-kernel-fadump_release_mem" in files
    assert "testing/sysfs-kernel-kexec" in files
    assert all(f.split("/")[0] in ("testing", "obsolete", "removed") for f in files)
    for rel in files:
        text = (out / rel).read_text()
        assert not text.startswith(("\n", "#", "=")), f"{rel} has a title"
        for tags in entries(text):
            assert tags == TAGS, (rel, tags)
        for line in text.splitlines():
            assert len(line.expandtabs(8)) <= 80, (rel, line)
    from abi_specs.abi_lint import lint_tree

    assert lint_tree(out) == []  # what the kernel's get_abi.py validate checks, and no warning


def test_release_region_entry_says_what_the_kernel_does(cli, tmp_path: Path) -> None:
    cli("docs", "--out", str(tmp_path))
    text = (tmp_path / "removed" / "sysfs-kernel-phyp_dump").read_text()
    entry = text.split("\nWhat:")[0]
    flat = " ".join(entry.split())
    for fact in [
        "What: /sys/kernel/release_region",
        "KernelVersion: 2.6.26",
        "CPU:0x0-0x0: HPTE:0x<c>-0x0: DUMP:0x<d>-0x0, 0x<s>-0x<n>:",
        "its own dump header, not the firmware's",
        "every length copied is 0",
        "the scratch address is added to the three destinations, once",
        "Removed in Linux 3.4",
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


def test_lint_warns_as_get_abi_does(cli, tmp_path: Path) -> None:
    """The kernel validator's rules, on broken trees: each mistake named with its file and line."""
    tree = tmp_path / "abi" / "testing"
    tree.mkdir(parents=True)
    (tree / "sysfs-a").write_text("Date:\t\tJan 2026\nWhat:\t\t/sys/kernel/a\nDescription:\n\t\tA.\nUser:\t\tme\n")
    (tree / "sysfs-b").write_text("What:\t\t/sys/kernel/a\nContact:\tx@y\nWhat:\t\t/sys/kernel/b\nDate:\t\tJan 2026\n"
                                  "Description:\n\t\tB.\n")
    proc = cli("docs", "--lint", str(tmp_path / "abi"))
    assert proc.returncode == 1
    err = proc.stderr
    assert f"{tree / 'sysfs-a'}:1: 'What:' should come first" in err
    assert f"{tree / 'sysfs-a'}:5: 'User:' inside a description is text to the kernel" in err
    assert f"{tree / 'sysfs-b'}:1: /sys/kernel/a doesn't have a description" in err
    assert "/sys/kernel/a is defined 2 times" in err
    assert "/sys/kernel/b doesn't have a description" not in err
    assert "4 warnings" in proc.stdout


def test_draft_spec_mistakes_are_refused_with_a_hint(cli, tmp_path: Path) -> None:
    base = ('[[attribute]]\nname = "x"\npath = "{path}"\nmode = {mode}\nplatforms = ["kdump"]\npresent = ["capture"]\n'
            'date = "Jan 2026"\nkernel_version = "6.20"\ncontact = "{contact}"\ndescription = "x"\n'
            'read = {{ format = "%d\\n", fields = ["v"] }}\n')
    draft = tmp_path / "draft.toml"
    cases = [
        ({"path": "/sys/kernel/x", "mode": "444", "contact": "a@b"}, "444 is a decimal number (0o674 in octal); write 0o444"),
        ({"path": "/sys/kernel/x", "mode": "0o444", "contact": " "}, "contact: empty: name the list"),
        ({"path": "/sys/kernel/kexec_loaded", "mode": "0o444", "contact": "a@b"},
         "is already the built-in entry 'kexec_loaded'"),
    ]
    for values, hint in cases:
        draft.write_text(base.format(**values))
        proc = cli("docs", "--spec-file", str(draft))
        assert proc.returncode != 0 and hint in proc.stderr, (values, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr

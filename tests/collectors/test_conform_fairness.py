"""Conformance that judges fairly and explains itself: one broken collector per kind of failure.

Each is caught by `conform`, kept with --keep-failures, and its reproduce.sh replays the
example, judges it the same way and exits 1.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from ..support import run_cli, wait_until

#: (kind, platform, collector script, what the minimal failure says)
BROKEN = [
    ("release before save", "fadump",
     "umask 077; echo 1 > /sys/kernel/fadump_release_mem; cat /proc/vmcore > {output}/vmcore 2>/dev/null; exit 0",
     "violation release-unread"),
    ("exit 0 on failure", "kdump",
     "umask 077; cat /proc/vmcore > {output}/vmcore 2>/dev/null; exit 0",
     "exit status 0 although the save is incomplete"),
    ("files others can read", "kdump",
     "cat /proc/vmcore > {output}/vmcore",
     "vmcore is readable by other users (mode 0644)"),
    ("truncated dump", "kdump",
     "umask 077; head -c 3000 /proc/vmcore > {output}/vmcore",
     "vmcore is no readable dump"),
    ("dishonest rerun", "kdump",
     "umask 077; [ -e {output}/started ] && exit 0; touch {output}/started; cat /proc/vmcore > {output}/vmcore",
     "after a kill, the rerun exited 0 although the save is incomplete"),
]


@pytest.mark.parametrize(("kind", "platform", "script", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_failure_is_caught_and_its_reproducer_reproduces(kind: str, platform: str, script: str, expected: str,
                                                               tmp_path: Path) -> None:
    keep = tmp_path / "failure"
    faults = ["--faults", "kill"] if kind == "dishonest rerun" else ["--faults", "eio,none"]
    proc = run_cli("conform", "--platform", platform, "--examples", "8", "--seed", "2", *faults, "--keep-failures",
                   str(keep), "--", "sh", "-c", script)
    assert proc.returncode == 1, proc.stderr
    minimal = proc.stderr.split("minimal failure:", 1)[1]
    assert expected in minimal, proc.stderr
    assert "0 pages missing" not in proc.stderr and "no dump found" not in proc.stderr
    replay = subprocess.run(["sh", str(keep / "reproduce.sh")], capture_output=True, text=True, timeout=600)
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert expected in replay.stderr and replay.stdout.strip() == "FAIL"
    text = (keep / "reproduce.sh").read_text()
    assert "failure.toml" in text and "conform --replay" in text  # the fixture in its own file, a readable script


def test_examples_means_examples_and_junit_numbers_them_as_the_console(tmp_path: Path) -> None:
    junit = tmp_path / "conform.xml"
    proc = run_cli("conform", "--platform", "kdump", "--examples", "6", "--seed", "3", "--junit", str(junit), "--",
                   "sh", "-c", "cat /proc/vmcore > {output}/vmcore")
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines()[-1] == "0 passed, 6 failed"  # shrinking runs are not examples
    cases = ElementTree.parse(junit).getroot().findall("testcase")
    assert [c.get("name").split(":")[0] for c in cases] == [f"example {i}" for i in range(1, 7)]
    console = [line.split("]")[0].strip("[ ") for line in proc.stderr.splitlines() if line.startswith("[")]
    assert console == [f"{i}/6" for i in range(1, 7)]


def test_conform_refuses_bad_arguments_at_once(tmp_path: Path) -> None:
    for n in ("0", "-1"):
        proc = run_cli("conform", "--examples", n, "--", "true", "{output}")
        assert proc.returncode == 2 and "at least one example" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("conform", "--examples", "1", "--junit", str(tmp_path / "no" / "dir" / "x.xml"), "--", "true",
                   "{output}")
    assert proc.returncode == 2 and "cannot write" in proc.stderr and "[  1/1]" not in proc.stderr
    proc = run_cli("conform", "--examples", "1", "--platform", "kdump", "--", "true")
    assert "warning: no {output} in the command" in proc.stderr


def test_ctrl_c_writes_the_junit_of_the_examples_done(tmp_path: Path) -> None:
    import threading

    junit = tmp_path / "conform.xml"
    cli = Path(sys.executable).parent / "abi-harness"
    proc = subprocess.Popen([str(cli), "conform", "--platform", "kdump", "--examples", "50", "--seed", "4", "--junit",
                             str(junit), "--", "sh", "-c", "umask 077; cat /proc/vmcore > {output}/vmcore"],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        assert wait_until(lambda: any(line.startswith("[  2/50]") for line in lines))
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()  # type: ignore[union-attr]
        proc.wait(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, "".join(lines)
    assert out.startswith("interrupted: ") and "of 50" in out
    cases = ElementTree.parse(junit).getroot().findall("testcase")
    passed, failed = (int(x.split()[0]) for x in out.removeprefix("interrupted: ").split(", "))
    assert len(cases) == passed + failed >= 2

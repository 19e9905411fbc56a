"""The README's worked examples, run as a user would paste them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from ..support import REPO, host_snapshot


def sh_block(after: str) -> str:
    """The first ```sh block of the README after the heading *after*."""
    text = (REPO / "README.md").read_text()
    start = text.index(after)
    match = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert match, f"no sh block after {after!r}"
    return match.group(1)


def test_whole_life_example(tmp_path: Path) -> None:
    """Arm with kdump-config, crash, save, verify, reboot, arm again: the README's commands, kdump-config behind the probe."""
    before = host_snapshot()
    script = sh_block("## The whole life of a machine")
    # kdump-config load runs kexec: each run of it proves the seals first, inside that same run.
    probe = f" -- {sys.executable} -m mockfs.sandbox.probe -- kdump-config "
    assert script.count(" -- kdump-config ") == 3, script
    script = script.replace(" -- kdump-config ", probe)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    proc = subprocess.run(["sh", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "different             0 pages" in proc.stdout and "missing               0 pages" in proc.stdout
    show = subprocess.run([str(Path(sys.executable).parent / "abi-harness"), "machine", "show", "m", "--json"],
                          cwd=tmp_path, capture_output=True, text=True)
    doc = json.loads(show.stdout)
    assert doc["kernel"] == "armed" and doc["armed"] and doc["dumps"] == 1
    assert [e["event"] for e in doc["events"]].count("load") == 2
    assert host_snapshot() == before


def py_block(after: str) -> str:
    """The first ```python block of the README after the heading *after*."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"```python\n(.*?)```", text[text.index(after):], re.S)
    assert match, f"no python block after {after!r}"
    return match.group(1)


def test_pytest_plugin_example(tmp_path: Path) -> None:
    """The README's complete test of a collector, run by pytest as a user's project would run it."""
    (tmp_path / "test_my_collector.py").write_text(py_block("### In your own tests (pytest plugin)"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    env.pop("PYTEST_XDIST_WORKER", None)
    # --basetemp: its dumps (GiBs) go with this test's tmp_path, not to /tmp/pytest-of-USER for good.
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
                           str(tmp_path / "inner"), str(tmp_path / "test_my_collector.py")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "6 passed" in proc.stdout


def test_specs_example_is_the_real_output(cli) -> None:
    """Every line of the README's `abi-harness specs` example is a line the command prints."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"```\n\$ abi-harness specs\n(.*?)```", text, re.S)
    assert block, "no abi-harness specs example in the README"
    shown = [line for line in block.group(1).splitlines() if line != "..."]
    printed = cli("specs").stdout.splitlines()
    assert len(shown) >= 3 and all(line in printed for line in shown), (shown, printed[:3])

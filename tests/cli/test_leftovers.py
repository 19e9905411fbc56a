"""Nothing left behind: interrupted commands clean up, and `cleanup` removes what a kill -9 left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from mockfs.sandbox.scratch import bases

from ..support import run_cli, wait_until

CLI = str(Path(sys.executable).parent / "abi-harness")


def _scratch_of(pid: int, prefix: str) -> list[Path]:
    return [p for base in bases() for p in Path(base).glob(f"{prefix}{pid}-*")]


def test_sigterm_during_export_leaves_no_partial_file(tmp_path: Path) -> None:
    out = tmp_path / "big.vmcore"
    proc = subprocess.Popen([CLI, "fixture", "export", "phyp-power6", "-o", str(out)], stderr=subprocess.PIPE, text=True)
    partial = out.with_name(out.name + ".partial")
    assert wait_until(lambda: partial.exists() and partial.stat().st_size > 0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "interrupted" in err
    assert not partial.exists() and not out.exists()


def test_sigterm_of_conform_removes_its_scratch() -> None:
    proc = subprocess.Popen([CLI, "conform", "--platform", "kdump", "--examples", "50", "--", "sh", "-c",
                             "umask 077; cat /proc/vmcore > {output}/vmcore"], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert wait_until(lambda: bool(_scratch_of(proc.pid, "abi-conform-")))
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=300)
    assert proc.returncode in (128 + signal.SIGTERM, 130, 143)
    assert _scratch_of(proc.pid, "abi-conform-") == []


def test_cleanup_removes_what_kill_9_of_run_left(tmp_path: Path) -> None:
    ready = tmp_path / "out" / "ready"
    # A temporary directory of its own, so that no other test's cleanup() check meets this kill's scratch.
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen([CLI, "run", "--fixture", "kdump-x86_64", "--output", str(ready.parent), "--", "sh", "-c",
                             f"echo up > {ready}; exec sleep 600"], stderr=subprocess.DEVNULL, env=env)
    try:
        assert wait_until(lambda: ready.exists())
        left = list((tmp_path / "tmp").glob(f"abi-run-{proc.pid}-*"))
        assert left, "the run keeps its work directory in a scratch named after it"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert all(p.exists() for p in left)  # a SIGKILL gives nobody a chance to clean up
    done = run_cli("cleanup", env=env)
    assert done.returncode == 0
    assert not any(p.exists() for p in left), done.stdout
    assert any(str(left[0]) in line for line in done.stdout.splitlines())


def test_cleanup_removes_orphan_daemon_logs(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    (runtime / "mounts").mkdir(parents=True)
    orphan = runtime / "mounts" / "deadbeef.log"
    orphan.write_text("abi-harness daemon: gone\n")
    kept = runtime / "mounts" / "cafe.log"
    kept.write_text("a live one\n")
    from mockfs.sandbox.processes import start_time

    # A live daemon's record (this very process stands in for it): its log stays.
    (runtime / "mounts" / "cafe.rec").write_text(repr({"pid": os.getpid(), "start": start_time(os.getpid()),
                                                       "log": str(kept)}))
    done = run_cli("cleanup", env={**os.environ, "ABI_HARNESS_RUNTIME_DIR": str(runtime)})
    assert done.returncode == 0
    assert not orphan.exists() and kept.exists()

"""`abi-harness fixture record` on a live capture kernel: the mock's own machines, recorded and served back."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from mockfs.dumps.imported import load_imported
from mockfs.machine.generate import MIN_MEMORY, new_fixture
from mockfs.session.runner import run
from mockfs.session.testbed import MockMount

from ..support import build_core, run_cli

CLI = str(Path(sys.executable).parent / "abi-harness")
SMALL = {p: new_fixture(p, memory=m, name=f"{p}-rec") for p, m in MIN_MEMORY.items()}


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def _abi(mock: MockMount, paths: list[str]) -> dict[str, tuple[bool, int | None, str | None]]:
    out = {}
    for path in paths:
        p = mock.path(path)
        if not (p.exists() or p.is_symlink()):
            out[path] = (False, None, None)
            continue
        st = os.lstat(p)
        readable = not p.is_symlink() and p.is_file() and st.st_mode & 0o444 and "device-tree" not in path
        value = p.read_text("latin-1") if readable else None
        out[path] = (True, st.st_mode & 0o777, value)
    return out


@pytest.mark.parametrize("platform", ["kdump", "phyp", "fadump"])
def test_a_recorded_machine_serves_back_as_it_was(platform: str, tmp_path: Path) -> None:
    fixture = SMALL[platform]
    manifest_source = tmp_path / "fixture.toml"
    from mockfs.machine import write_fixture

    write_fixture(fixture, manifest_source)
    out = tmp_path / "out"
    trace = tmp_path / "trace.jsonl"
    result = run([CLI, "fixture", "record", "-o", str(out / "rec.toml")], fixture=str(manifest_source), output=out,
                 trace=trace, workdir=tmp_path / "w")
    assert result.returncode == 0
    # It only reads: not one write reached the machine's files.
    ops = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [op for op in ops if op["op"] == "write"] == []
    manifest = out / "rec.toml"
    core = load_imported(manifest)
    assert core.machine["platform"] == platform and core.machine["osrelease"] == fixture.osrelease
    for path in (manifest, core.core_path):
        assert os.stat(path).st_mode & 0o777 == 0o600
    recorded = core.recorded["capture"]["files"]
    paths = sorted(p for p in recorded if p != "/proc/vmcore")
    with MockMount(fixture, workdir=tmp_path / "original") as original, \
            MockMount(str(manifest), workdir=tmp_path / "replayed") as replayed:
        # The recording says what the original served; the recorded fixture serves the same again.
        served = _abi(original, paths)
        for path in paths:
            present, mode, value = served[path]
            assert recorded[path]["present"] == present, path
            if present:
                assert recorded[path]["mode"] == mode, path
                if value is not None and "value" in recorded[path]:
                    assert recorded[path]["value"] == value, path
        assert _abi(replayed, paths) == served
        assert _digest(replayed.path("/proc/vmcore")) == _digest(original.path("/proc/vmcore"))
    os.unlink(core.core_path)  # hundreds of MiB: keep the disk free


def test_record_outside_a_capture_kernel_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("fixture", "record", "-o", str(tmp_path / "r.toml"))
    if Path("/proc/vmcore").exists():
        pytest.fail("this host is a capture kernel: the test cannot show the refusal")
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and "/proc/vmcore: no such file: fixture record runs in a capture kernel" \
        in proc.stderr
    assert not (tmp_path / "r.toml").exists()


def test_vm_options_need_vm(tmp_path: Path) -> None:
    proc = run_cli("fixture", "record", "-o", str(tmp_path / "r.toml"), "--memory", "2G")
    assert proc.returncode == 2 and "--memory goes with --vm" in proc.stderr


def test_vm_without_qemu_is_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    proc = run_cli("fixture", "record", "--vm", "-o", str(tmp_path / "r.toml"), env=env)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "qemu-system-x86_64 not found" in last and "qemu-system-x86" in last, proc.stderr
    assert "Traceback" not in proc.stderr


def test_vm_with_a_missing_kernel_is_one_clear_line(tmp_path: Path) -> None:
    proc = run_cli("fixture", "record", "--vm", "--kernel", str(tmp_path / "no-such.deb"), "-o", str(tmp_path / "r.toml"))
    assert proc.returncode != 0
    assert "no-such.deb does not exist" in proc.stderr.strip().splitlines()[-1], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("memory", "why"), [
    ("1024", "1024 bytes is not; a bare number is bytes"),  # `fixture new --memory`'s grammar, not QEMU's MiB
    ("1.5G", "cannot read '1.5G' as a size"),
])
def test_vm_memory_speaks_the_projects_size_grammar(tmp_path: Path, memory: str, why: str) -> None:
    proc = run_cli("fixture", "record", "--vm", "--memory", memory, "-o", str(tmp_path / "r.toml"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("abi-harness: error: --memory") and why in proc.stderr
    assert not (tmp_path / "r.toml").exists()


def test_vm_memory_in_bytes_is_whole_mib_for_qemu() -> None:
    from mockfs.oracle.host import guest_memory, qemu_memory

    assert [qemu_memory(guest_memory(m)) for m in ("1G", "0x40000000", "1073741824", "512 MiB")] == \
        ["1024M", "1024M", "1024M", "512M"]


def test_an_imported_core_serves_through_mount_and_run(tmp_path: Path) -> None:
    """A core made into a fixture with `fixture import` is served by `mount` and `run --fixture` as built-ins are."""
    core = build_core(info="OSRELEASE=6.1.0-imported\nPAGESIZE=4096\nCRASHTIME=1700000000\n")
    (tmp_path / "small.core").write_bytes(core)
    proc = run_cli("fixture", "import", "small.core", "-o", "small.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = run_cli("mount", "small.toml", str(mnt), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    try:
        assert (mnt / "proc" / "vmcore").read_bytes() == core
    finally:
        proc = run_cli("umount", str(mnt), cwd=tmp_path)
    assert proc.returncode == 0 and not os.path.ismount(mnt), proc.stderr
    proc = run_cli("run", "--fixture", "small.toml", "--output", "out", "--",
                   "sh", "-c", f"cat /proc/vmcore > {tmp_path}/out/copy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "copy").read_bytes() == core
    assert proc.stderr.startswith("abi-harness: small (kdump)")

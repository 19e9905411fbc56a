"""The kernel caches the mock's names and attributes; a write that changes them is seen at once.

The mock mounts with long entry and attribute timeouts (mockfs.fuse.cache), so
these tests first make the kernel cache every name, then change the tree with
one write through the mount and look again without waiting.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from abi_specs import builtin_spec
from mockfs.session.machines import MachineDir
from mockfs.session.testbed import MockMount

SPEC = builtin_spec()


def _served(root: Path) -> dict[str, os.stat_result]:
    """Every name under *root* (but /proc/sys, the host's mirror) with its lstat; caches them all in the kernel."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel == Path("proc/sys"):
            dirnames.clear()
            continue
        for name in dirnames + filenames:
            out[str(rel / name)] = os.lstat(Path(dirpath) / name)
    return out


def test_a_crash_shows_the_capture_kernels_tree_at_once(tmp_path: Path) -> None:
    machine = MachineDir.create(tmp_path / "m", "phyp-power6", "armed")
    with MockMount(machine=machine) as mock:
        armed = _served(mock.root)
        assert "proc/vmcore" not in armed
        for path in armed:  # twice: now every name and attribute comes from the kernel's cache
            os.lstat(mock.root / path)
        fd = os.open(mock.root / "proc/sysrq-trigger", os.O_WRONLY)
        try:
            os.write(fd, b"c")
        finally:
            os.close(fd)
        fixture = mock.fixture
        files = SPEC.files_for(fixture.platform, SPEC.lifecycle(fixture.platform).captured(fixture.version),
                               fixture.version)
        captured = _served(mock.root)
        assert {p for p, s in captured.items() if not stat.S_ISDIR(s.st_mode)} == {
            f.path.lstrip("/") for f in files if not f.directory and not f.path.startswith("/proc/sys/")}
        gone = set(armed) - set(captured)
        assert gone  # the armed kernel's own files went away with it
        for path in gone:
            try:
                os.lstat(mock.root / path)
            except FileNotFoundError:
                continue
            raise AssertionError(f"{path} is still there after the crash")
        vmcore = os.stat(mock.root / "proc/vmcore")
        assert stat.S_ISREG(vmcore.st_mode) and vmcore.st_size == mock.image.size
        with open(mock.root / "proc/vmcore", "rb") as f:
            assert f.read(4) == b"\x7fELF"


def test_no_name_changes_type_between_a_machines_kernels() -> None:
    # mockfs.fuse.cache drops the attributes of what a crash or a boot changed, not the kernel's cached
    # names (libfuse's high-level API cannot): a name that became a directory, or a link, would be seen as
    # a bad inode (EIO) until its entry timed out. That holds as long as no spec file changes type between
    # the production and the capture kernel of one version; this says so for every platform and version.
    from mockfs.live.tree import build_tree

    for platform in SPEC.platforms:
        for version in SPEC.notable_versions(platform):
            armed, capture = (build_tree([f for f in SPEC.files if f.exists_on(platform, kernel, version)], version)
                              for kernel in ("armed", "capture"))
            changed = {p: (armed[p].kind, capture[p].kind) for p in set(armed) & set(capture)
                       if armed[p].kind != capture[p].kind}
            assert not changed, (platform, str(version), changed)

"""A dump the firmware flagged as failed (DUMP_ERROR_FLAG), from `fixture new` to conformance.

The capture kernel that finds the flag in ibm,kernel-dump creates no
release_region and no /proc/vmcore and registers a new dump area at once:
a collector must say so and save nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import find, settings

from abi_specs import builtin_spec
from mockfs.conform.campaign import check_example, examples
from mockfs.machine import resolve_fixture
from mockfs.session.testbed import MockMount

from ..support import cli_path

SPEC = builtin_spec()


@pytest.fixture
def failed(cli, tmp_path: Path) -> Path:
    """A phyp machine whose firmware flagged its dump as failed, made by the real command line."""
    manifest = tmp_path / "failed.toml"
    proc = cli("fixture", "new", "--platform", "phyp", "--memory", "576MiB", "--dump-status", "error",
               "-o", str(manifest))
    assert proc.returncode == 0, proc.stderr
    assert "the firmware flagged the dump as failed" in proc.stdout
    return manifest


def test_fixture_new_writes_the_status_into_the_manifest(failed: Path, cli) -> None:
    fixture = resolve_fixture(str(failed))
    assert fixture.phyp is not None and fixture.phyp.dump_status == "error"
    assert 'dump_status = "error"' in failed.read_text()
    doc = json.loads(cli("fixture", "show", str(failed), "--json").stdout)
    assert doc["release_region"] is None and doc["phyp"]["dump_status"] == "error"


def test_the_failed_machine_has_no_dump_and_is_registered_again(failed: Path) -> None:
    kernel_dump = SPEC.get("ibm,kernel-dump")
    with MockMount(failed) as mock:
        root = mock.root / "sys/kernel"
        assert not (root / "release_region").exists()
        assert not mock.path("/proc/vmcore").exists()
        # Registered again at once: the file that exists only while a dump area is registered is there.
        assert (root / "phyp_dump_active").read_text() == "1\n"
        header = kernel_dump.cells.unpack(mock.path(kernel_dump.path).read_bytes(), kernel_dump.name)
        assert int(header["head"]["status"]) & kernel_dump.constants["status"]["DUMP_ERROR_FLAG"]
        served = {"/" + str(p.relative_to(mock.root)) for p in mock.root.rglob("*")
                  if not p.is_dir() and not p.is_relative_to(mock.root / "proc/sys")}
    state = SPEC.lifecycle("phyp").fire(SPEC.lifecycle("phyp").captured(mock.fixture.version), "failed-dump",
                                        mock.fixture.version)[0]
    assert state["registered"] and not state["dump_active"]
    assert served == {f.path for f in SPEC.files_for("phyp", state, mock.fixture.version) if not f.directory}
    assert mock.report["reregistered"] is True and mock.report["violations"] == []


def test_vmcore_save_says_why_in_one_line_and_saves_nothing(failed: Path, tmp_path: Path, cli) -> None:
    out, report = tmp_path / "out", tmp_path / "report.json"
    collector = str(Path(cli_path()).parent / "vmcore-save")
    proc = cli("run", "--fixture", str(failed), "--output", str(out), "--report", str(report), "--",
               collector, "{output}")
    assert proc.returncode == 1, proc.stderr
    cause = [line for line in proc.stderr.splitlines() if line.startswith("vmcore-save:")]
    assert cause == ["vmcore-save: /proc/device-tree/rtas/ibm,kernel-dump: the firmware flagged the dump as failed "
                     "(DUMP_ERROR_FLAG): there is no crash dump to save; the kernel registered a new dump area at boot"]
    assert "Traceback" not in proc.stderr
    assert list(out.iterdir()) == []
    judged = json.loads(report.read_text())
    assert judged["violations"] == [] and judged["releases"] == [] and judged["reregistered"] is True


def test_conform_draws_the_failed_dump_case() -> None:
    example = find(examples(platform="phyp"), lambda e: e.dump_failed, settings=settings(database=None))
    assert example.fixture.phyp is not None and example.fixture.phyp.dump_status == "error"
    assert example.faults == ()  # nothing to read, so no read or write faults
    assert "firmware flagged the dump as failed" in example.describe()


def test_conform_judges_a_failed_dump_by_what_the_collector_claims(tmp_path: Path) -> None:
    example = find(examples(platform="phyp"), lambda e: e.dump_failed, settings=settings(database=None))
    collector = str(Path(cli_path()).parent / "vmcore-save")
    honest = check_example([collector, "{output}"], example, tmp_path / "honest")
    assert honest.passed, honest.problems
    claims = check_example(["sh", "-c", "umask 077; echo dump > {output}/vmcore"], example, tmp_path / "claims")
    assert claims.problems == ["vmcore saved although the firmware flagged the dump as failed"]


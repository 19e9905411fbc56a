"""`run --machine DIR --fixture F --state S` on an existing machine: a match continues it, a conflict is one line."""

from __future__ import annotations

import json
from pathlib import Path

from ..support import run_cli


def _run(mdir: Path, *options: str) -> tuple[int, str]:
    proc = run_cli("run", "--machine", str(mdir), *options, "--", "true")
    return proc.returncode, proc.stderr


def _runs(mdir: Path) -> int:
    return int(json.loads(run_cli("machine", "show", str(mdir), "--json").stdout)["runs"])


def _refused(code: int, err: str, *words: str) -> bool:
    return code == 2 and err.count("\n") == 1 and "Traceback" not in err and all(w in err for w in words)


def test_matching_fixture_and_state_continue_the_machine(tmp_path: Path) -> None:
    mdir = tmp_path / "m"
    assert _run(mdir, "--fixture", "kdump-x86_64", "--state", "capture")[0] == 0
    for options in (("--fixture", "kdump-x86_64"), ("--state", "capture"),
                    ("--fixture", "kdump-x86_64", "--state", "capture"), ()):
        code, err = _run(mdir, *options)
        assert code == 0, (options, err)
    assert _runs(mdir) == 5


def test_a_conflicting_fixture_or_state_is_one_line_and_leaves_the_machine(tmp_path: Path) -> None:
    mdir = tmp_path / "m"
    assert _run(mdir, "--fixture", "kdump-x86_64", "--state", "capture")[0] == 0
    code, err = _run(mdir, "--fixture", "phyp-power6")
    assert _refused(code, err, str(mdir), "'kdump-x86_64'", "'phyp-power6'"), err
    code, err = _run(mdir, "--fixture", "kdump-x86_64", "--state", "armed")
    assert _refused(code, err, str(mdir), "capture kernel", "not armed"), err
    assert _runs(mdir) == 1  # neither refused run touched it
    # After a reboot the machine is armed: now --state armed matches and capture conflicts.
    assert run_cli("reboot", str(mdir)).returncode == 0
    assert _run(mdir, "--state", "armed")[0] == 0
    code, err = _run(mdir, "--state", "capture")
    assert _refused(code, err, "armed kernel", "not capture"), err


def test_an_imported_core_matches_only_itself(tmp_path: Path) -> None:
    core, manifest, mdir = tmp_path / "x.core", tmp_path / "x.toml", tmp_path / "m"
    assert run_cli("fixture", "export", "kdump-x86_64", "-o", str(core)).returncode == 0
    imported = run_cli("fixture", "import", str(core), "-o", str(manifest))
    assert imported.returncode == 0, imported.stderr
    assert _run(mdir, "--fixture", str(manifest))[0] == 0
    code, err = _run(mdir, "--fixture", str(manifest))
    assert code == 0, err
    code, err = _run(mdir, "--fixture", "kdump-x86_64")  # the same memory, but synthesized: another machine
    assert _refused(code, err, "'x'", "'kdump-x86_64'"), err

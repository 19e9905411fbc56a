"""The per-user cache of the built-in spec: used when current, ignored when stale, corrupt or not private.

Each test runs the real command line in a fresh process with its own
XDG_CACHE_HOME, so the cache is written and read as a user's command does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from abi_specs import spec_cache
from abi_specs.listing import listing
from abi_specs.specfile import builtin_texts, load_spec_text

PACKAGE = Path(spec_cache.__file__).parent


def _cli(cache_home: Path, *args: str, stdin: str = "") -> str:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    proc = subprocess.run([sys.executable, "-m", "abi_harness.cli", *args], env=env, input=stdin,
                          capture_output=True, text=True, check=True)
    assert proc.stderr == ""
    return proc.stdout


def _specs_json(cache_home: Path) -> str:
    return _cli(cache_home, "specs", "--json")


def _check(cache_home: Path) -> str:
    return _cli(cache_home, "check", "--json", "--spec", "kexec_crash_size", "-", stdin="4096\n")


@pytest.fixture
def cache_home(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def fresh(cache_home: Path) -> str:
    """The listing built with no cache, which writes one."""
    return _specs_json(cache_home)


def _cache_file(cache_home: Path) -> Path:
    (path,) = (cache_home / "abi-harness" / "spec").iterdir()
    return path


def test_the_cache_is_private_and_gives_the_same_spec(cache_home: Path, fresh: str) -> None:
    path = _cache_file(cache_home)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    before = path.stat().st_mtime_ns
    assert _specs_json(cache_home) == fresh
    assert json.loads(_check(cache_home))["values"] == {"bytes": 4096}  # the spec itself, from the cache
    assert path.stat().st_mtime_ns == before  # read, not rewritten


@pytest.mark.parametrize("garbage", [b"", b"\x00garbage\xff" * 100, b"\x80\x05K\x01."])
def test_a_corrupt_cache_is_ignored_and_replaced(cache_home: Path, fresh: str, garbage: bytes) -> None:
    path = _cache_file(cache_home)
    path.write_bytes(garbage)
    assert json.loads(_check(cache_home))["values"] == {"bytes": 4096}
    assert path.read_bytes() != garbage  # rebuilt and stored afresh
    path.write_bytes(garbage)
    assert _specs_json(cache_home) == fresh


def test_a_truncated_cache_is_ignored(cache_home: Path, fresh: str) -> None:
    path = _cache_file(cache_home)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert _specs_json(cache_home) == fresh


def test_a_stale_cache_is_not_loaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    stamp = spec_cache.source_stamp(str(PACKAGE))
    spec = load_spec_text(builtin_texts())
    spec_cache.save(stamp, spec)
    loaded = spec_cache.load(stamp, type(spec))
    assert loaded is not None and listing(loaded) == listing(spec)  # (struct.Struct compares by identity)
    # A spec file edited since: its size and mtime are in the stamp.
    edited = (*stamp[:3], tuple((sub, name, size + 1, mtime) if name == "kdump.toml" else (sub, name, size, mtime)
                                for sub, name, size, mtime in stamp[3]))
    assert edited != stamp
    assert spec_cache.load(edited, type(spec)) is None
    assert spec_cache.load(stamp, dict) is None  # nor as an object of another type


def test_a_cache_open_to_others_is_not_loaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    stamp = spec_cache.source_stamp(str(PACKAGE))
    spec = load_spec_text(builtin_texts())
    spec_cache.save(stamp, spec)
    (path,) = Path(spec_cache.cache_dir()).iterdir()
    path.chmod(0o622)
    assert spec_cache.load(stamp, type(spec)) is None


def test_the_stamp_follows_the_spec_files() -> None:
    stamp = spec_cache.source_stamp(str(PACKAGE))
    names = {(sub, name) for sub, name, _size, _mtime in stamp[3]}
    assert {("specs", p.name) for p in (PACKAGE / "specs").glob("*.toml")} <= names
    assert ("", "model.py") in names


def test_an_unwritable_cache_costs_only_time(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert _specs_json(blocker) == _specs_json(tmp_path / "cache")


def test_a_lax_cache_folder_is_made_private(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = Path(spec_cache.cache_dir())
    folder.mkdir(parents=True, mode=0o755)
    folder.chmod(0o755)
    stamp = spec_cache.source_stamp(str(PACKAGE))
    assert spec_cache.load(stamp, list) is None
    spec_cache.save(stamp, ["rows"])
    assert folder.stat().st_mode & 0o777 == 0o700
    assert spec_cache.load(stamp, list) == ["rows"]


_QUICK_PROBE = """
import sys
from abi_harness.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
print("loaded:", *sorted(m for m in ("abi_specs.model", "dataclasses") if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize(("args", "text"), [
    (["--spec", "kexec_crash_size"], "4096\n"),
    (["--spec", "/sys/kernel/kexec_crash_size"], "4096 \n"),  # by path; invalid: a space
    (["--spec", "release_region"], "CPU:0x0-0x0: HPTE:0x0-0x0: DUMP:0x0-0x0, 0x0-0x0:\n"),
    (["--spec", "release_region"], "0x10 0x20\n"),
    (["--spec", "fadump_registered"], "1\n"),
    (["--spec", "release_region"], "CPU:0x0-0x0: HPTE:0x0-0x0: DUMP:0x0-0x0, 0x0-0x0:"),  # no newline
])
def test_check_from_the_cache_loads_no_model_and_judges_as_the_spec_does(cache_home: Path, fresh: str,
                                                                         args: list[str], text: str) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    quick = subprocess.run([sys.executable, "-c", _QUICK_PROBE, "check", "--json", *args, "-"], env=env,
                           input=text, capture_output=True, text=True)
    assert quick.stderr.splitlines()[-1] == "loaded:", quick.stderr  # the cache's quick entry: no model
    # The same check against the whole spec (the example spec file extends the built-in one).
    extra = PACKAGE / "examples" / "mem_released.toml"
    whole = subprocess.run([sys.executable, "-c", _QUICK_PROBE, "check", "--json", "--spec-file", str(extra), *args,
                            "-"], env=env, input=text, capture_output=True, text=True)
    assert "abi_specs.model" in whole.stderr.splitlines()[-1], whole.stderr
    assert (quick.returncode, quick.stdout) == (whole.returncode, whole.stdout)
    assert quick.stderr.splitlines()[:-1] == whole.stderr.splitlines()[:-1]


def test_a_core_is_still_checked_against_the_whole_spec(cache_home: Path, fresh: str, tmp_path: Path) -> None:
    # /proc/vmcore needs the spec's core rules: no quick entry serves it, and the error is the spec's own.
    core = tmp_path / "vmcore"
    core.write_bytes(b"not an ELF core")
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    proc = subprocess.run([sys.executable, "-c", _QUICK_PROBE, "check", "--spec", "vmcore", str(core)], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "/proc/vmcore" in proc.stderr, proc.stderr
    assert "abi_specs.model" in proc.stderr.splitlines()[-1]

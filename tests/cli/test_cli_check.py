"""`abi-harness check` and `specs` through the real command line."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abi_specs import builtin_spec, strategies

from ..support import run_cli

GOOD = "CPU:0x177fee000-0x10000: HPTE:0x177ffe020-0x1000: DUMP:0x177fff020-0x10000000, 0x10000000-0x16f1d370a:\n"
DOC_EXAMPLE = "CPU:0x177fee000-0x10000: HPTE:0x177ffe020-0x1000: / DUMP:0x177fff020-0x10000000, 0x10000000-0x16F1D370A\n"


def captured(tmp_path: Path, canonical: str, content: bytes) -> Path:
    """A captured copy of an ABI file, kept under its canonical path below tmp_path."""
    path = tmp_path / canonical.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def assert_one_line_error(proc, *words: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_valid_release_region_guessed_from_path(cli, tmp_path: Path) -> None:
    path = captured(tmp_path, "/sys/kernel/release_region", GOOD.encode())
    proc = cli("check", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["spec"] == "release_region"
    assert out["values"]["reserve_len"] == 0x16F1D370A
    assert out["values"]["ranges"][1] == {"name": "HPTE", "start": 0x177FFE020, "length": 0x1000}
    text = cli("check", str(path))
    assert text.returncode == 0
    assert "range CPU: start 0x177fee000 length 0x10000" in text.stdout


def test_document_example_is_not_kernel_output(cli, tmp_path: Path) -> None:
    path = captured(tmp_path, "/sys/kernel/release_region", DOC_EXAMPLE.encode())
    proc = cli("check", str(path))
    assert proc.returncode == 1
    assert_one_line_error(proc, "invalid /sys/kernel/release_region", "offset 50", "'DUMP:0x'", "'/ DUMP")


def test_stdin_with_named_spec(cli) -> None:
    proc = cli("check", "--spec", "fadump/registered", "-", "--json", stdin=b"1\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["values"] == {"registered": 1}
    bad = cli("check", "--spec", "/sys/kernel/fadump/registered", "-", stdin=b"01\n")
    assert bad.returncode == 1
    assert_one_line_error(bad, "standard input", "offset 1")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["check", "/nonexistent/sys/kernel/release_region"], ["/nonexistent/sys/kernel/release_region", "No such file"]),
        (["check", "/etc/hostname"], ["/etc/hostname", "--spec"]),
        (["check", "--spec", "no_such_file", "-"], ["no_such_file", "known:"]),
        (["check", "--spec", "fadump/release_mem", "/etc/hostname"], ["write-only"]),
        (["docs", "--spec-file", "/nonexistent.toml"], ["/nonexistent.toml", "No such file"]),
    ],
)
def test_usage_errors_are_one_line(cli, args: list[str], words: list[str]) -> None:
    proc = cli(*args, stdin=b"")
    assert proc.returncode == 2
    assert_one_line_error(proc, *words)


READABLE = [f for f in builtin_spec().files if f.read is not None]


@pytest.mark.parametrize("entry", READABLE, ids=[f.name for f in READABLE])
@settings(max_examples=3)  # each example is a process; the library tests run hundreds
@given(data=st.data())
def test_every_readable_attribute_checks_through_the_cli(entry, data, tmp_path_factory) -> None:
    values = data.draw(strategies.values(entry))
    text = entry.read.format(values)
    path = captured(tmp_path_factory.mktemp("cap"), entry.path, text.encode("latin-1"))
    proc = run_cli("check", str(path), "--json")
    assert proc.returncode == 0, (entry.name, text, proc.stderr)
    out = json.loads(proc.stdout)
    assert out["spec"] == entry.name
    assert {k: out["values"][k] for k in values} == values


def test_device_tree_property(cli, tmp_path: Path) -> None:
    blob = struct.pack(">IQIQ", 1, 0x10000, 2, 0x4000)
    path = captured(tmp_path, "/proc/device-tree/rtas/ibm,configure-kernel-dump-sizes", blob)
    proc = cli("check", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["values"]["records"] == [{"section_id": 1, "size": 0x10000}, {"section_id": 2, "size": 0x4000}]
    path.write_bytes(blob[:-1])
    proc = cli("check", str(path))
    assert proc.returncode == 1
    assert_one_line_error(proc, "a multiple of 12 bytes", "23 bytes")


def test_specs_lists_every_file(cli) -> None:
    proc = cli("specs", "--json")
    assert proc.returncode == 0
    rows = {r["path"]: r for r in json.loads(proc.stdout)}
    assert rows["/sys/kernel/release_region"]["mode"] == 0o600
    assert rows["/proc/vmcore"]["mode_octal"] == "0400"
    assert rows["/sys/kernel/fadump_release_mem"]["stability"] == "obsolete"
    assert set(rows) == {f.path for f in builtin_spec().files}
    table = cli("specs")
    assert "/sys/kernel/release_region" in table.stdout and "0600" in table.stdout


def test_help_is_there(cli) -> None:
    for sub in ("specs", "check", "docs"):
        proc = cli(sub, "--help")
        assert proc.returncode == 0 and "usage: abi-harness" in proc.stdout

"""`abi-harness fixture ...` through the real command line.

Round trips (new -> show -> export -> check/vmcore-dmesg -> verify), dumps with
planted defects, imports of real cores, and broken inputs that must give one
line and exit 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from abi_specs.units import parse_size
from mockfs.machine import VmcoreImage, expected_dmesg, new_fixture, resolve_fixture
from mockfs.machine.describe import fixture_summary
from mockfs.machine.generate import MIN_MEMORY

from ..support import cli_path, gcore_of_sleep, run_cli, tool

MiB = 1 << 20
MESSAGES = ["Linux version 6.1.0-mock", "sysrq: Trigger a crash", "Kernel panic - not syncing: sysrq triggered crash"]


def one_line_usage_error(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("abi-harness")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 64 MiB x86_64 manifest written by `fixture new` and its export (shared; copy before damaging)."""
    d = tmp_path_factory.mktemp("cli-fixture")
    manifest, vmcore = d / "small.toml", d / "small.vmcore"
    args = ["fixture", "new", "--platform", "kdump", "--memory", "64M", "--cpus", "3", "--seed", "11", "-o", str(manifest)]
    for m in MESSAGES:
        args += ["--message", m]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("fixture", "export", str(manifest), "-o", str(vmcore))
    assert proc.returncode == 0, proc.stderr
    return manifest, vmcore


# -- list / new / show ----------------------------------------------------------------------


def test_list(cli) -> None:
    proc = cli("fixture", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(rows) >= {"phyp-power6", "fadump-power9", "kdump-x86_64"}
    assert rows["phyp-power6"] == {
        "name": "phyp-power6", "platform": "phyp", "arch": "ppc64", "memory_bytes": 4 << 30, "cpus": 4,
        "description": "ppc64 big-endian pSeries LPAR, 4 GiB, 4 CPUs, phyp dump waiting",
    }  # fmt: skip
    text = cli("fixture", "list").stdout
    assert text.splitlines()[0].split()[:5] == ["NAME", "PLATFORM", "ARCH", "MEMORY", "CPUS"]
    assert "kdump-x86_64" in text and "1.75 GiB" in text


def test_new_then_show(cli, small: tuple[Path, Path]) -> None:
    manifest, _ = small
    doc = json.loads(cli("fixture", "show", str(manifest), "--json").stdout)
    got = (doc["platform"], doc["arch"], doc["page_size"], doc["memory_bytes"], doc["cpus"])
    assert got == ("kdump", "x86_64", 4096, 64 * MiB, 3)
    assert [m["text"] for m in doc["messages"]] == MESSAGES
    ts = [m["ts_nsec"] for m in doc["messages"]]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    assert doc["vmcore_size"] == VmcoreImage(resolve_fixture(str(manifest))).size
    text = cli("fixture", "show", str(manifest)).stdout
    assert "64 MiB" in text and MESSAGES[1] in text


@pytest.mark.parametrize("platform,arch", [("phyp", "ppc64"), ("fadump", "ppc64le"), ("kdump", "x86_64")])
def test_new_defaults_per_platform(cli, tmp_path: Path, platform: str, arch: str) -> None:
    out = tmp_path / "f.toml"
    assert cli("fixture", "new", "--platform", platform, "-o", str(out)).returncode == 0
    doc = json.loads(cli("fixture", "show", str(out), "--json").stdout)
    assert doc["arch"] == arch and doc["memory_bytes"] == 1 << 30 and doc["cpus"] == 2 and doc["messages"]
    if platform == "phyp":
        # What the capture kernel prints: offsets, zero lengths, then the reserved remainder.
        lay = resolve_fixture(str(out)).phyp_layout()
        assert doc["release_region"] == (f"CPU:0x0-0x0: HPTE:{lay.cpu_len:#x}-0x0: "
                                         f"DUMP:{lay.cpu_len + lay.hpte_len:#x}-0x0, "
                                         f"{lay.second_addr:#x}-{lay.second_len:#x}:")
        # The firmware's areas, labelled as such: the first three pairs of the document's form.
        assert [a["name"] for a in doc["firmware_areas"]] == ["CPU", "HPTE", "DUMP"]
        assert [v for a in doc["firmware_areas"] for v in (a["start"], a["length"])] == list(lay.pairs()[:6])


def test_new_refuses_to_overwrite(cli, tmp_path: Path) -> None:
    out = tmp_path / "f.toml"
    out.write_text("keep")
    one_line_usage_error(cli("fixture", "new", "--platform", "kdump", "-o", str(out)))
    assert out.read_text() == "keep"
    assert cli("fixture", "new", "--platform", "kdump", "-o", str(out), "--force").returncode == 0
    assert "kdump" in out.read_text()


def test_builtin_phyp_show(cli) -> None:
    doc = json.loads(cli("fixture", "show", "phyp-power6", "--json").stdout)
    assert doc["platform"] == "phyp" and doc["cpus"] == 4 and len(doc["firmware_areas"]) == 3
    assert doc["release_region"] == "CPU:0x0-0x0: HPTE:0x10000-0x0: DUMP:0x1010000-0x0, 0x10000000-0xdeff0000:"
    text = cli("fixture", "show", "phyp-power6").stdout
    assert f"release_region {doc['release_region']}\n" in text and "(ibm,kernel-dump)" in text
    assert doc["messages"][0] == {"text": "Using pSeries machine description", "ts_nsec": 0}


sizes = st.sampled_from(["64M", "96MiB", "768M", "1G", "1536M", "4G", "1TiB"])


@given(platform=st.sampled_from(["phyp", "fadump", "kdump"]), memory=sizes, cpus=st.integers(1, 64),
       messages=st.lists(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60), max_size=6),
       seed=st.integers(0, 2**64 - 1))
def test_new_fixture_summary_agrees(platform: str, memory: str, cpus: int, messages: list[str], seed: int) -> None:
    """Library level, many examples: whatever new_fixture accepts, show --json reports back."""
    assume(parse_size(memory) >= MIN_MEMORY[platform])
    fx = new_fixture(platform, memory=memory, cpus=cpus, messages=messages, seed=seed)
    doc = fixture_summary(fx)
    assert (doc["platform"], doc["memory_bytes"], doc["cpus"]) == (platform, parse_size(memory), cpus)
    if messages:
        assert [m["text"] for m in doc["messages"]] == messages
    else:  # the default boot-and-panic log
        assert doc["messages"] and "panic" in doc["messages"][-1]["text"]
    assert all(a["ts_nsec"] < b["ts_nsec"] for a, b in zip(doc["messages"], doc["messages"][1:]))
    assert len(set(doc["pids"])) == cpus and doc["seed"] == seed


@settings(max_examples=5, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(platform=st.sampled_from(["phyp", "fadump", "kdump"]), cpus=st.integers(1, 16),
       messages=st.lists(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30),
                         min_size=1, max_size=4))
def test_new_show_through_cli(cli, tmp_path: Path, platform: str, cpus: int, messages: list[str]) -> None:
    out = tmp_path / "h.toml"
    args = ["fixture", "new", "--platform", platform, "--memory", "2G", "--cpus", str(cpus), "-o", str(out), "--force"]
    for m in messages:
        args.append(f"--message={m}")  # a message may start with "-"
    assert cli(*args).returncode == 0
    doc = json.loads(cli("fixture", "show", str(out), "--json").stdout)
    assert (doc["memory_bytes"], doc["cpus"]) == (2 << 30, cpus)
    assert [m["text"] for m in doc["messages"]] == messages


# -- export ---------------------------------------------------------------------------------


def test_export_is_a_vmcore_with_the_messages(cli, small: tuple[Path, Path]) -> None:
    manifest, vmcore = small
    assert vmcore.stat().st_mode & 0o777 == 0o600
    assert not Path(f"{vmcore}.partial").exists()
    proc = cli("check", "--spec", "vmcore", str(vmcore), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["values"]["cpus"] == 3
    out = subprocess.run([tool("vmcore-dmesg"), str(vmcore)], capture_output=True, text=True, timeout=60)
    fx = resolve_fixture(str(manifest))
    assert out.stdout == expected_dmesg(fx.log) and all(m in out.stdout for m in MESSAGES)


def test_export_bytes_and_quiet_without_terminal(cli, small: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, vmcore = small
    out = tmp_path / "again"
    proc = cli("fixture", "export", str(manifest), "-o", str(out))
    assert proc.returncode == 0 and proc.stderr == ""  # no progress bar in a pipe
    assert out.read_bytes() == vmcore.read_bytes()
    one_line_usage_error(cli("fixture", "export", str(manifest), "-o", str(out)))  # exists: needs --force


def test_export_progress_on_a_terminal(small: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, _ = small
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([str(cli_path()), "fixture", "export", str(manifest), "-o", str(tmp_path / "v")],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, timeout=120,
                              env={**os.environ, "COLUMNS": "100"})  # fmt: skip
        os.close(slave)
        slave = -1
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    assert b"export" in seen and b"MiB" in seen


def test_export_unwritable(cli, small: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, _ = small
    one_line_usage_error(cli("fixture", "export", str(manifest), "-o", str(tmp_path / "no" / "dir" / "x")))
    assert not list(tmp_path.glob("**/*.partial"))


# -- verify ---------------------------------------------------------------------------------


def verify(cli, manifest: Path, dump: Path, *extra: str) -> tuple[int, dict]:
    proc = cli("fixture", "verify", str(manifest), str(dump), "--json", *extra)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_verify_own_export(cli, small: tuple[Path, Path]) -> None:
    manifest, vmcore = small
    rc, rep = verify(cli, manifest, vmcore, "--complete")
    assert rc == 0 and rep["identical"] == 64 * MiB // 4096
    assert all(rep[k] == 0 for k in ("different", "misplaced", "missing", "excluded", "extra"))
    proc = cli("fixture", "verify", str(manifest), str(vmcore))
    assert proc.returncode == 0 and "result: OK" in proc.stdout


def test_verify_flipped_byte(cli, small: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, vmcore = small
    bad = tmp_path / "bad"
    data = bytearray(vmcore.read_bytes())
    img = VmcoreImage(resolve_fixture(str(manifest)))
    ph = img.layout.loads[-1]
    at = ph.offset + 0x1234567 - ph.paddr
    data[at] ^= 1
    bad.write_bytes(bytes(data))
    rc, rep = verify(cli, manifest, bad)
    assert rc == 1 and rep["different"] == 1 and rep["problems"][0]["paddr"] == 0x1234000
    text = cli("fixture", "verify", str(manifest), str(bad)).stdout
    assert "0x0000000001234000" in text and "FAILED" in text


def test_verify_missing_load_needs_complete(cli, small: tuple[Path, Path], tmp_path: Path) -> None:
    """Drop the direct-map PT_LOAD: only the kernel-text one (2 MiB at 16 MiB) stays."""
    manifest, vmcore = small
    data = bytearray(vmcore.read_bytes())
    phnum = int.from_bytes(data[56:58], "little")
    data[56:58] = (phnum - 1).to_bytes(2, "little")
    dump = tmp_path / "dropped"
    dump.write_bytes(bytes(data))
    rc, rep = verify(cli, manifest, dump)
    assert rc == 0 and rep["missing"] == (64 - 2) * MiB // 4096 and rep["identical"] == 2 * MiB // 4096
    rc, rep = verify(cli, manifest, dump, "--complete")
    assert rc == 1 and not rep["ok"]


def test_verify_other_seed(cli, small: tuple[Path, Path], tmp_path: Path) -> None:
    _, vmcore = small
    other = tmp_path / "other.toml"
    cli("fixture", "new", "--platform", "kdump", "--memory", "64M", "--cpus", "3", "--seed", "12", "-o", str(other))
    rc, rep = verify(cli, other, vmcore)
    assert rc == 1 and rep["different"] > 0.9 * (64 * MiB // 4096) and rep["misplaced"] == 0


def test_verify_misplaced_page(cli, small: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, vmcore = small
    img = VmcoreImage(resolve_fixture(str(manifest)))
    ph = img.layout.loads[-1]
    data = bytearray(vmcore.read_bytes())
    src, dst = ph.offset + 0x2000000, ph.offset + 0x2100000
    data[dst : dst + 4096] = data[src : src + 4096]
    (tmp_path / "moved").write_bytes(bytes(data))
    rc, rep = verify(cli, manifest, tmp_path / "moved")
    assert rc == 1 and rep["misplaced"] == 1 and rep["different"] == 0
    assert rep["problems"][0]["paddr"] == 0x2100000 and "0x2000000" in rep["problems"][0]["detail"]


def test_verify_makedumpfile_elf(cli, small: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, vmcore = small
    out = tmp_path / "dump.elf"
    subprocess.run([tool("makedumpfile"), "-E", "-d", "0", str(vmcore), str(out)], capture_output=True, timeout=300)
    rc, rep = verify(cli, manifest, out, "--complete")
    assert rc == 0 and rep["format"] == "elf" and rep["identical"] == 64 * MiB // 4096


def test_verify_makedumpfile_compressed(cli, small: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, vmcore = small
    out = tmp_path / "dump"
    subprocess.run([tool("makedumpfile"), "-c", "-d", "31", str(vmcore), str(out)], capture_output=True, timeout=300)
    rc, rep = verify(cli, manifest, out, "--complete")
    assert rc == 0 and rep["format"] == "kdump-compressed" and rep["excluded"] == 4  # one planted page of each kind


# -- import ---------------------------------------------------------------------------------


def test_import_gcore_and_export(cli, tmp_path: Path) -> None:
    core = gcore_of_sleep(tmp_path)
    proc = cli("fixture", "import", str(core), "-o", str(tmp_path / "sleep.toml"))
    assert proc.returncode == 0, proc.stderr
    assert cli("fixture", "export", str(tmp_path / "sleep.toml"), "-o", str(tmp_path / "out")).returncode == 0
    assert (tmp_path / "out").read_bytes() == core.read_bytes()
    doc = json.loads(cli("fixture", "show", str(tmp_path / "sleep.toml"), "--json").stdout)
    assert doc["kind"] == "imported-core" and doc["arch"] == "x86_64" and doc["vmcore_size"] == core.stat().st_size
    one_line_usage_error(cli("fixture", "verify", str(tmp_path / "sleep.toml"), str(core)))


def test_import_export_of_an_export(cli, small: tuple[Path, Path], tmp_path: Path) -> None:
    _, vmcore = small
    assert cli("fixture", "import", str(vmcore), "-o", str(tmp_path / "i.toml")).returncode == 0
    assert (tmp_path / "i.toml").stat().st_size < 64 * 1024  # memory referenced, not copied
    assert cli("fixture", "export", str(tmp_path / "i.toml"), "-o", str(tmp_path / "again")).returncode == 0
    assert (tmp_path / "again").read_bytes() == vmcore.read_bytes()
    doc = json.loads(cli("fixture", "show", str(tmp_path / "i.toml"), "--json").stdout)
    assert doc["cpus"] == 3 and doc["page_size"] == 4096


# -- broken inputs --------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["fixture", "show", "{tmp}/missing.toml"],
    ["fixture", "show", "{tmp}/bad.toml"],
    ["fixture", "show", "{tmp}/notelf"],
    ["fixture", "export", "{tmp}/bad.toml", "-o", "{tmp}/x"],
    ["fixture", "verify", "{manifest}", "{tmp}/missing"],
    ["fixture", "verify", "{manifest}", "{tmp}/notelf"],
    ["fixture", "verify", "{tmp}/bad.toml", "{tmp}/notelf"],
    ["fixture", "import", "{tmp}/missing", "-o", "{tmp}/y.toml"],
    ["fixture", "import", "{tmp}/notelf", "-o", "{tmp}/y.toml"],
    ["fixture", "import", "/bin/sleep", "-o", "{tmp}/y.toml"],
    ["fixture", "new", "--platform", "phyp", "--memory", "64M", "-o", "{tmp}/z.toml"],
    ["fixture", "new", "--platform", "kdump", "--memory", "lots", "-o", "{tmp}/z.toml"],
    ["fixture", "new", "--platform", "s390", "-o", "{tmp}/z.toml"],
    ["fixture", "new", "--platform", "phyp", "--arch", "x86_64", "-o", "{tmp}/z.toml"],
    ["fixture", "new", "--platform", "kdump", "--cpus", "0", "-o", "{tmp}/z.toml"],
    ["fixture", "verify", "{manifest}"],
    ["fixture"],
])  # fmt: skip
def test_broken_inputs(cli, small: tuple[Path, Path], tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "notelf").write_text("hello\n")
    (tmp_path / "bad.toml").write_text('format = 1\nname = "x"\nplatform = "kdump"\nbogus = 1\n')
    proc = cli(*(a.format(tmp=tmp_path, manifest=small[0]) for a in args))
    one_line_usage_error(proc)
    assert not (tmp_path / "z.toml").exists() and not (tmp_path / "y.toml").exists()

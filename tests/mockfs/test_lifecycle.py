"""A machine through its whole life: armed, crashed, captured, armed again; and sealed from the host.

Every command that writes /proc/sysrq-trigger, calls reboot(2) or loads a
kernel runs behind ``SEALED``: the probe proves inside the runner that the
seals hold, and aborts the command otherwise.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abi_specs import builtin_spec
from mockfs.machine.generate import MIN_MEMORY, new_fixture
from mockfs.session.machines import MachineDir, MachineError
from mockfs.session.runner import KILLED
from mockfs.session.testbed import Machine

from ..support import SEALED, cli_path, host_snapshot, run_cli, tool, wait_for_line

SPEC = builtin_spec()
#: Machines as small as the model allows: every byte of their dumps is copied, kept and compared.
SMALL = {p: new_fixture(p, memory=m, name=f"{p}-small") for p, m in MIN_MEMORY.items()}
VMCORE_SAVE = str(Path(sys.executable).parent / "vmcore-save")


def _py(code: str) -> list[str]:
    """A Python one-liner for inside the run (the venv's interpreter is on the host's root, seen through the overlay)."""
    return [sys.executable, "-c", code]


# -- the states, as the spec says -------------------------------------------------------------


@pytest.mark.parametrize("name", ["phyp-power6", "fadump-power9", "kdump-x86_64"])
def test_armed_kernel_serves_the_armed_files(name: str, tmp_path: Path) -> None:
    machine = Machine(tmp_path / "m", name, state="armed")
    out = tmp_path / "out"
    result = machine.run(["sh", "-c", f"cd /sys/kernel && find . -maxdepth 2 \\( -type f -o -type l \\) | sort > {out}/sys;"
                          f"test -e /proc/vmcore && echo vmcore > {out}/vmcore; true"], output=out)
    assert result.returncode == 0
    platform = machine.state["platform"]
    version = MachineDir.open(machine.path).fixture.version
    files = SPEC.files_for(platform, SPEC.lifecycle(platform).boot(version), version)
    wanted = {f.path.removeprefix("/sys/kernel/") for f in files if f.path.startswith("/sys/kernel/") and not f.directory}
    seen = {line.removeprefix("./") for line in (out / "sys").read_text().split()}
    assert wanted <= seen  # the real /sys/kernel entries are there too
    assert not (out / "vmcore").exists()  # no dump before a crash
    assert machine.kernel == "armed"


def test_phyp_is_armed_by_the_kernel_itself_and_crashes_into_a_dump(tmp_path: Path) -> None:
    machine = Machine(tmp_path / "m", SMALL["phyp"], state="armed")
    assert machine.armed and machine.variables["registered"]
    out = tmp_path / "out"
    result = machine.run([*SEALED, "sh", "-c", f"cat /sys/kernel/phyp_dump_active > {out}/active; "
                          "ls /proc/device-tree/rtas/ > " f"{out}/rtas; echo c > /proc/sysrq-trigger; sleep 600"],
                         output=out)
    assert result.returncode == KILLED and result.crashed
    assert "ibm,kernel-dump" not in (out / "rtas").read_text().split()  # armed: the dump area is not filled yet
    assert machine.kernel == "capture" and machine.variables["dump_active"]
    # The capture kernel: release_region and /proc/vmcore; our collector saves and gives everything back.
    saved = tmp_path / "saved"
    result = machine.run([VMCORE_SAVE, "--quiet", str(saved)], output=saved)
    assert result.returncode == 0 and result.violations == [], result.report
    assert machine.variables["registered"] and machine.armed  # the kernel registered again by itself


def test_a_crash_of_an_unarmed_machine_is_a_reboot_without_a_dump(tmp_path: Path) -> None:
    machine = Machine(tmp_path / "m", "kdump-x86_64", state="armed")
    assert not machine.armed
    ran = machine.crash()
    assert ran == ["crash", "boot"]  # the crash found nothing armed: an ordinary boot followed
    assert machine.kernel == "armed" and not machine.variables["dump_active"]
    out = tmp_path / "out"
    machine.run(["sh", "-c", f"test -e /proc/vmcore || echo none > {out}/vmcore"], output=out)
    assert (out / "vmcore").read_text() == "none\n"


def test_fadump_register_unregister_crash_release_register(tmp_path: Path) -> None:
    machine = Machine(tmp_path / "m", SMALL["fadump"], state="armed")
    assert not machine.armed  # 5.15: nothing registers at boot
    machine.run(["sh", "-c", "echo 1 > /sys/kernel/fadump/registered"])
    assert machine.armed
    out = tmp_path / "out"
    machine.run(["sh", "-c", f"echo 0 > /sys/kernel/fadump/registered; cat /sys/kernel/fadump/registered > {out}/r"],
                output=out)
    assert (out / "r").read_text() == "0\n" and not machine.armed
    machine.run(["sh", "-c", "echo 1 > /sys/kernel/fadump_registered"])  # the flat name of 5.7+ is a symlink
    assert machine.crash() == ["crash"]
    assert machine.kernel == "capture"
    result = machine.run(["sh", "-c", f"cat /proc/vmcore > {out}/vmcore && echo 1 > /sys/kernel/fadump/release_mem; "
                          f"test -e /proc/vmcore || echo gone > {out}/after"], output=out)
    assert result.returncode == 0 and result.violations == []
    assert (out / "after").read_text() == "gone\n"
    assert not machine.variables["dump_active"] and not machine.armed
    machine.run(["sh", "-c", "echo 1 > /sys/kernel/fadump/registered"])  # the service registers again
    assert machine.armed


def test_sysrq_crash_kills_every_process_of_the_run(tmp_path: Path) -> None:
    machine = Machine(tmp_path / "m", "fadump-power9", state="armed")
    machine.run(["sh", "-c", "echo 1 > /sys/kernel/fadump/registered"])
    out = tmp_path / "out"
    script = f"sleep 600 & sleep 600 & echo started > {out}/started; echo c > /proc/sysrq-trigger; echo survived > {out}/s"
    result = machine.run([*SEALED, "sh", "-c", script], output=out)
    assert (out / "started").exists() and not (out / "s").exists()
    assert result.returncode == KILLED and result.crashed
    assert [e["event"] for e in result.events][-1] == "crash"
    assert machine.kernel == "capture"


def test_reboot_syscall_reboots_the_machine(tmp_path: Path) -> None:
    machine = Machine(tmp_path / "m", "kdump-x86_64", state="capture")
    result = machine.run([*SEALED, tool("busybox"), "reboot", "-f"])
    assert result.rebooted and result.returncode == KILLED
    assert machine.kernel == "armed" and not machine.variables["dump_active"]
    assert any(call.startswith("reboot by busybox") for call in result.seal)


def test_crash_from_outside_takes_the_run_down(tmp_path: Path) -> None:
    """`abi-harness crash DIR` while a run uses the machine: the run dies as in a real crash."""
    mdir = tmp_path / "m"
    out = tmp_path / "out"
    run_cli("run", "--machine", str(mdir), "--fixture", "phyp-power6", "--state", "armed", "--", "true")
    proc = subprocess.Popen([str(cli_path()), "run", "--machine", str(mdir), "--output", str(out), "--", "sh", "-c",
                             f"echo started > {out}/started; exec sleep 600"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for_line(out / "started", "started")
        crash = run_cli("crash", str(mdir))
        assert crash.returncode == 0, crash.stderr
        assert "now in the capture kernel holding a dump" in crash.stdout
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == KILLED, err
    assert "the machine crashed during the run" in err
    show = json.loads(run_cli("machine", "show", str(mdir), "--json").stdout)
    assert show["kernel"] == "capture" and show["variables"]["dump_active"]


def test_machine_show_and_reboot_from_the_command_line(tmp_path: Path) -> None:
    mdir = tmp_path / "m"
    assert run_cli("run", "--machine", str(mdir), "--fixture", "kdump-x86_64", "--state", "capture", "--",
                   "true").returncode == 0
    text = run_cli("machine", "show", str(mdir)).stdout
    assert "kdump-x86_64" in text and "capture" in text and "dump_active" in text
    reboot = run_cli("reboot", str(mdir))
    assert reboot.returncode == 0 and "now in the armed kernel" in reboot.stdout
    doc = json.loads(run_cli("machine", "show", str(mdir), "--json").stdout)
    assert doc["kernel"] == "armed" and doc["crash_size"] == 0x10000000
    assert [e["event"] for e in doc["events"]] == ["created", "reboot", "boot"]
    assert os.stat(mdir).st_mode & 0o777 == 0o700 and os.stat(mdir / "machine.json").st_mode & 0o777 == 0o600


def test_a_process_forked_while_a_machine_is_held_does_not_keep_it(tmp_path: Path) -> None:
    """conform forks one example's run supervisor while another thread holds its own machine (an offline
    crash): once the holder lets go, the machine is free, however long the forked process lives."""
    machine = MachineDir.create(tmp_path / "m", "kdump-x86_64", "armed")
    r, w = os.pipe()
    with machine.locked():
        child = os.fork()
        if child == 0:  # lives on with whatever it inherited, until the test lets it go
            os.close(w)
            os.read(r, 1)
            os._exit(0)
    os.close(r)
    try:
        assert machine.in_use() is None
        with MachineDir.open(machine.path).locked():  # the next run of it takes it, against other processes
            probe = os.fork()
            if probe == 0:
                os._exit(0 if machine.in_use() == {"pid": None} else 1)  # held (no active.json: nothing serves it)
            assert os.waitstatus_to_exitcode(os.waitpid(probe, 0)[1]) == 0
    finally:
        os.close(w)
        os.waitpid(child, 0)


def test_a_reloaded_machine_reads_the_state_a_daemon_saved_and_keeps_its_image(tmp_path: Path) -> None:
    machine = MachineDir.create(tmp_path / "m", "kdump-x86_64", "armed")
    # Another process (a run's daemon) moves the machine on and saves it.
    other = MachineDir.open(machine.path)
    live = other.live()
    live.state = live.initial_state("capture")
    live.state.event("crashed-elsewhere")
    other.save(live)
    again = machine.reloaded()
    assert again.describe()["kernel"] == "capture" and machine.describe()["kernel"] == "armed"
    assert [e["event"] for e in again.describe()["events"]] == ["crashed-elsewhere"]
    assert again.image is machine.image and again.fixture is machine.fixture  # built once per machine
    (machine.path / "machine.json").write_text("{")
    with pytest.raises(MachineError, match=r"machine\.json: unreadable machine state"):
        machine.reloaded()


def test_machine_errors_are_one_line(tmp_path: Path) -> None:
    missing = run_cli("run", "--machine", str(tmp_path / "none"), "--", "true")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "give --fixture" in missing.stderr
    show = run_cli("machine", "show", str(tmp_path / "none"))
    assert show.returncode != 0 and "no machine here" in show.stderr and "Traceback" not in show.stderr
    crash = run_cli("crash", str(tmp_path / "none"))
    assert crash.returncode != 0 and "no machine here" in crash.stderr


# -- a collector resumed on the same machine ---------------------------------------------------


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kill_at=st.integers(1, 560))
def test_a_resumed_collector_is_judged_on_the_whole_history(tmp_path_factory, kill_at: int) -> None:
    """Killed part-way, then rerun by a second `run` on the same DIR: one machine, one verdict."""
    work = tmp_path_factory.mktemp("resume")
    machine = Machine(work / "m", SMALL["phyp"], state="capture")
    out = work / "out"
    try:
        first = machine.run([VMCORE_SAVE, "--quiet", str(out)], output=out, faults=[f"kill-after:{kill_at << 20}"])
        second = machine.run([VMCORE_SAVE, "--quiet", str(out)], output=out)
    finally:
        shutil.rmtree(out, ignore_errors=True)  # one dump per example: keep the disk free
    assert first.returncode in (0, KILLED)
    assert second.returncode == 0
    assert second.violations == [], second.violations
    assert machine.armed  # everything given back: the kernel registered again


# -- the seals ------------------------------------------------------------------------------------


def test_sysctls_are_the_machines(tmp_path: Path) -> None:
    before = host_snapshot()
    machine = Machine(tmp_path / "m", "kdump-x86_64", state="armed")
    host_value = Path("/proc/sys/kernel/panic_on_oops").read_text()
    flipped = "0" if host_value.strip() == "1" else "1"
    out = tmp_path / "out"
    result = machine.run([*SEALED, "sh", "-c", f"cat /proc/sys/kernel/panic_on_oops > {out}/first; "
                          f"sysctl -q -w kernel.panic_on_oops={flipped}; sysctl -w kernel.panic=10 >/dev/null"],
                         output=out)
    assert result.returncode == 0
    assert (out / "first").read_text() == host_value  # reads start from the host's values
    assert machine.state["sysctls"] == {"kernel/panic_on_oops": f"{flipped}\n", "kernel/panic": "10\n"}
    assert [e["key"] for e in result.events if e["event"] == "sysctl"] == ["kernel.panic_on_oops", "kernel.panic"]
    machine.run(["sh", "-c", f"cat /proc/sys/kernel/panic_on_oops > {out}/second"], output=out)
    assert (out / "second").read_text() == f"{flipped}\n"  # kept across runs
    assert host_snapshot() == before


def test_the_rest_is_sealed(tmp_path: Path) -> None:
    """/sys read-only, /dev/kmsg read-only, a private hostname, sysrq not procfs, the root an overlay."""
    before = host_snapshot()
    machine = Machine(tmp_path / "m", "kdump-x86_64", state="capture")
    out = tmp_path / "out"
    script = "; ".join([
        f"echo mem 2>/dev/null > /sys/power/state || echo ro > {out}/power",
        f"for p in /sys/module/*/parameters/*; do [ -w \"$p\" ] && echo 1 2>/dev/null > \"$p\" && echo $p >> {out}/w; done",
        f"echo x 2>/dev/null > /dev/kmsg || echo ro > {out}/kmsg",
        f"hostname inside-the-run && hostname > {out}/hostname",
        f"stat -L -f -c %T /proc/sysrq-trigger > {out}/sysrq",
        f"stat -f -c %T / > {out}/root",
        "echo written-inside > /etc/abi-harness-test-file",
    ])
    result = machine.run([*SEALED, "sh", "-c", script], output=out)  # the writes only after the probe
    assert result.returncode == 0
    assert (out / "power").read_text() == "ro\n"
    assert not (out / "w").exists()
    assert (out / "kmsg").read_text() == "ro\n"
    assert (out / "hostname").read_text() == "inside-the-run\n"
    assert (out / "sysrq").read_text().strip() != "proc"
    assert (out / "root").read_text().strip() == "overlayfs"
    assert not Path("/etc/abi-harness-test-file").exists()
    assert (machine.path / "rootfs/upper/etc/abi-harness-test-file").read_text() == "written-inside\n"
    machine.run(["sh", "-c", f"cat /etc/abi-harness-test-file > {out}/kept"], output=out)
    assert (out / "kept").read_text() == "written-inside\n"  # the machine's root lives on
    assert host_snapshot() == before


def test_module_clock_and_swap_calls_are_refused_and_reported(tmp_path: Path) -> None:
    machine = Machine(tmp_path / "m", "kdump-x86_64", state="armed")
    out = tmp_path / "out"
    code = (
        "import ctypes, errno, os, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "results = []\n"
        "for name, nr, args in [('init_module', 175, (0, 0, b'')), ('finit_module', 313, (0, b'', 0)),"
        " ('delete_module', 176, (b'ext4', 0)), ('settimeofday', 164, (0, 0)), ('swapon', 167, (b'/dev/null', 0)),"
        " ('swapoff', 168, (b'/dev/null',))]:\n"
        "    rc = libc.syscall(nr, *args)\n"
        "    results.append(f'{name} {rc} {errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())}')\n"
        f"open('{out}/calls', 'w').write(chr(10).join(results))\n"
    )
    result = machine.run(_py(code), output=out)
    assert result.returncode == 0
    lines = (out / "calls").read_text().splitlines()
    assert lines == [f"{n} -1 EPERM" for n in ("init_module", "finit_module", "delete_module", "settimeofday",
                                                "swapon", "swapoff")]
    assert [c.split(" by ")[0] for c in result.seal if "not allowed on a mocked machine" in c] == [
        "init_module", "finit_module", "delete_module", "settimeofday", "swapon", "swapoff"], result.seal


def test_kexec_file_load_is_checked_the_kernels_way(tmp_path: Path) -> None:
    """Not a kernel: ENOEXEC; bad flags: EINVAL; no crashkernel= area: EADDRNOTAVAIL (raw syscalls)."""
    out = tmp_path / "out"
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "fd = os.open('/etc/hostname', os.O_RDONLY)\n"
        "def call(flags, fd=fd):\n"
        "    rc = libc.syscall(320, fd, -1, 1, b'', flags)\n"
        "    return str(ctypes.get_errno() if rc else 0)\n"
        "out = [call(0x2 | 0x4), call(0x100)]\n"
        f"open('{out}/kexec', 'w').write(' '.join(out))\n"
    )
    machine = Machine(tmp_path / "m", "kdump-x86_64", state="armed")
    result = machine.run([*SEALED, *_py(code)], output=out)
    assert result.returncode == 0
    assert (out / "kexec").read_text().split() == [str(errno.ENOEXEC), str(errno.EINVAL)]
    assert not machine.variables["crash_loaded"]
    refused = [e for e in machine.state["events"] if e["event"] == "kexec-refused"]
    assert [e["errno"] for e in refused] == ["ENOEXEC", "EINVAL"]


def test_plugin_machine_fixture(abi_machine) -> None:
    assert abi_machine.kernel == "capture"
    abi_machine.reboot()
    assert abi_machine.kernel == "armed"


@pytest.mark.abi_fixture("fadump-power9", state="armed")
def test_plugin_machine_fixture_in_the_armed_state(abi_machine, tmp_path: Path) -> None:
    assert abi_machine.kernel == "armed" and not abi_machine.armed
    result = abi_machine.run(["sh", "-c", "echo 1 > /sys/kernel/fadump/registered"])
    assert result.returncode == 0 and abi_machine.armed
    assert abi_machine.crash() == ["crash"] and abi_machine.state["dumps"] == 1


def test_kexec_crash_size_only_shrinks_and_not_while_loaded(tmp_path: Path) -> None:
    """crash_shrink_memory through a real shell, and kexec_load's raw syscall against the shrunk area."""
    machine = Machine(tmp_path / "m", "kdump-x86_64", state="armed")
    out = tmp_path / "out"
    start = MachineDir.open(machine.path).fixture.crashkernel[0]
    code = (
        "import ctypes, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "class Segment(ctypes.Structure):\n"
        "    _fields_ = [('buf', ctypes.c_void_p), ('bufsz', ctypes.c_size_t), ('mem', ctypes.c_void_p),"
        " ('memsz', ctypes.c_size_t)]\n"
        "flags = 0x1 | (62 << 16)  # KEXEC_ON_CRASH, an x86_64 image\n"
        "if sys.argv[1] == 'unload':\n"
        "    rc = libc.syscall(246, 0, 0, None, flags)\n"
        "else:\n"
        "    data = ctypes.create_string_buffer(4096)\n"
        f"    seg = Segment(ctypes.addressof(data), 4096, {start} + int(sys.argv[1], 0), 0x100000)\n"
        f"    rc = libc.syscall(246, {start}, 1, ctypes.byref(seg), flags)\n"
        "print(0 if rc == 0 else ctypes.get_errno())\n"
    )
    out_py = tmp_path / "load.py"
    out_py.write_text(code)
    script = "; ".join([
        f"cat /sys/kernel/kexec_crash_size > {out}/size0",
        f"echo 100000000 > /sys/kernel/kexec_crash_size; cat /sys/kernel/kexec_crash_size > {out}/size1",
        f"echo 200000000 2>/dev/null > /sys/kernel/kexec_crash_size || echo refused > {out}/grow",
        f"{sys.executable} {out_py} 0x6000000 > {out}/outside",  # past the shrunk area: EADDRNOTAVAIL
        f"{sys.executable} {out_py} 0 > {out}/inside",
        # coreutils echo names the errno (the shell builtin says "I/O error" for any failed write)
        f"/bin/echo 0 2>{out}/busy.err > /sys/kernel/kexec_crash_size; cat /sys/kernel/kexec_crash_loaded > {out}/loaded",
        f"{sys.executable} {out_py} unload > {out}/unload",
    ])
    result = machine.run([*SEALED, "sh", "-c", script], output=out, extra_binds={str(out_py): out_py})
    assert result.returncode == 0
    assert (out / "size0").read_text() == f"{256 << 20}\n"
    assert (out / "size1").read_text() == f"{-(-100000000 // 4096) * 4096}\n"  # rounded up to whole pages
    assert (out / "grow").read_text() == "refused\n"
    assert (out / "outside").read_text() == f"{errno.EADDRNOTAVAIL}\n"
    assert (out / "inside").read_text() == "0\n"
    assert "No such file or directory" in (out / "busy.err").read_text()  # ENOENT while loaded
    assert (out / "loaded").read_text() == "1\n"
    assert (out / "unload").read_text() == "0\n"
    assert not machine.armed and machine.state["crash_size"] == -(-100000000 // 4096) * 4096


def test_fadump_armed_attributes(tmp_path: Path) -> None:
    # 6.10: bootargs_append and hotplug_ready are there (the armed kernel only has bootargs_append before 6.13).
    fixture = new_fixture("fadump", memory=MIN_MEMORY["fadump"], name="fadump-610", osrelease="6.10.0-mock")
    machine = Machine(tmp_path / "m", fixture, state="armed")
    out = tmp_path / "out"
    script = "; ".join([
        f"cat /sys/kernel/fadump/enabled /sys/kernel/fadump/registered > {out}/flags",
        f"cat /sys/kernel/fadump/mem_reserved > {out}/reserved",
        f"echo 'nr_cpus=16 numa=off' > /sys/kernel/fadump/bootargs_append; cat /sys/kernel/fadump/bootargs_append > {out}/args",
        f"echo 2 2>/dev/null > /sys/kernel/fadump/registered || echo refused > {out}/two",
        f"test -e /sys/kernel/fadump/release_mem || echo none > {out}/release",
    ])
    result = machine.run(["sh", "-c", script], output=out)
    assert result.returncode == 0
    assert (out / "flags").read_text() == "1\n1\n"  # since 5.18 the kernel registers at boot by itself
    assert int((out / "reserved").read_text()) > 0
    assert (out / "args").read_text() == "nr_cpus=16 numa=off\n"
    assert machine.state["bootargs"] == "nr_cpus=16 numa=off"
    assert (out / "two").read_text() == "refused\n"
    assert (out / "release").read_text() == "none\n"

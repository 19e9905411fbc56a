"""Real dump services, unmodified, arming and collecting on a mocked machine: kdump-tools and kexec-tools.

kdump-tools, kexec-tools and Debian's kernel are unpacked privately (``make
private-debs``) and put into each machine's own root file system, so the
machine has them installed and the host does not. Every test checks the host
before and after: its sysctls, its kexec and fadump state, and the
directories a dump service writes. Commands that load a kernel, write sysctls
(kdump-config load in fadump mode) or reboot run behind ``SEALED`` (the probe
proves the seals inside the runner first).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from mockfs.dumps import verify_dump
from mockfs.machine import VmcoreImage, expected_dmesg
from mockfs.machine.generate import MIN_MEMORY, new_fixture
from mockfs.session.machines import MachineDir
from mockfs.session.runner import KILLED
from mockfs.session.testbed import Machine

from ..support import SEALED, host_snapshot, private_tree, tool

VMCORE_SAVE = str(Path(sys.executable).parent / "vmcore-save")  # the console script this package installs
INITRD = "/boot/initrd.img-abi-harness"  # kexec loads it as it is: any bytes do


def kernel_image() -> Path:
    """Debian's kernel, unpacked privately."""
    images = sorted((private_tree("linux-image-amd64") / "boot").glob("vmlinuz-*"))
    assert images, "Debian's kernel package holds no boot/vmlinuz-*"
    return images[-1]


def equipped(path: Path, fixture: object, coredir: Path) -> Machine:
    """An armed machine with kexec-tools, kdump-tools and Debian's kernel installed and configured.

    The configuration is what kdump-tools' maintainer script would write
    (/etc/default/kdump-tools from the package's template), with the kernel
    and the initrd named and the dumps going to *coredir*.
    """
    machine = Machine(path, fixture, state="armed")
    mdir = MachineDir.open(path)
    for package in ("kexec-tools", "kdump-tools"):
        assert mdir.install(private_tree(package)) > 0
    assert mdir.install(private_tree("linux-image-amd64"), only=("boot",)) > 0
    vmlinuz = f"/boot/{kernel_image().name}"
    configure = (
        "cp /usr/share/kdump-tools/kdump-tools.conf /etc/default/kdump-tools && "
        f"sed -i 's|^KDUMP_KERNEL=.*|KDUMP_KERNEL={vmlinuz}|; s|^KDUMP_INITRD=.*|KDUMP_INITRD={INITRD}|; "
        f"s|^KDUMP_COREDIR=.*|KDUMP_COREDIR=\"{coredir}\"|' /etc/default/kdump-tools && "
        f"printf 'initrd of abi-harness' > {INITRD}"
    )
    assert machine.run(["sh", "-c", configure]).returncode == 0
    return machine


def run_to_file(machine: Machine, out: Path, name: str, argv: list[str], **options: object) -> tuple[int, str]:
    """Run *argv* with stdout and stderr in ``out/name``; returns the exit status and the text."""
    script = " ".join(f"'{a}'" for a in argv) + f" > {out}/{name} 2>&1"
    result = machine.run(["sh", "-c", script], output=out, **options)
    return result.returncode, (out / name).read_text()


@pytest.fixture
def host():
    """The host as a dump service could change it, compared after the test."""
    before = host_snapshot()
    yield before
    assert host_snapshot() == before, "the host changed"


def test_kdump_tools_fadump_mode_load_status_unload(tmp_path: Path, host) -> None:
    fixture = new_fixture("fadump", memory=MIN_MEMORY["fadump"], name="fadump-small")
    out = tmp_path / "out"
    machine = equipped(tmp_path / "m", fixture, out)
    assert not machine.armed
    code, text = run_to_file(machine, out, "load", [*SEALED, "kdump-config", "load"])
    assert code == 0, text
    assert "fadump registered successfully" in text
    assert machine.armed and machine.variables["registered"]
    assert machine.state["sysctls"] == {"kernel/panic_on_oops": "1\n"}  # in the machine, not on the host
    code, text = run_to_file(machine, out, "status", ["kdump-config", "status"])
    assert code == 0 and "ready to fadump" in text and "Not ready" not in text, text
    code, text = run_to_file(machine, out, "unload", [*SEALED, "kdump-config", "unload"])
    assert code == 0 and "fadump un-registered successfully" in text, text
    assert not machine.armed
    code, text = run_to_file(machine, out, "status2", ["kdump-config", "status"])
    assert "Not ready to fadump" in text, text


def test_kdump_tools_fadump_registers_again_after_release_mem(tmp_path: Path, host) -> None:
    fixture = new_fixture("fadump", memory=MIN_MEMORY["fadump"], name="fadump-small")
    out = tmp_path / "out"
    machine = equipped(tmp_path / "m", fixture, out)
    assert run_to_file(machine, out, "load", [*SEALED, "kdump-config", "load"])[0] == 0
    assert machine.crash() == ["crash"]
    saved = tmp_path / "saved"
    result = machine.run([VMCORE_SAVE, "--quiet", str(saved)], output=saved)  # it writes release_mem
    assert result.returncode == 0 and result.violations == [], result.report
    assert not machine.variables["dump_active"] and not machine.armed
    code, text = run_to_file(machine, out, "again", [*SEALED, "kdump-config", "load"])
    assert code == 0 and "fadump registered successfully" in text, text
    assert machine.armed


def test_kdump_tools_kdump_mode_whole_life(tmp_path: Path, host) -> None:
    """Arm with kdump-config load, crash, kdump-config savecore, reboot, arm again, unload."""
    out = tmp_path / "out"
    machine = equipped(tmp_path / "m", "kdump-x86_64", out)
    assert not machine.armed
    code, text = run_to_file(machine, out, "load", [*SEALED, "kdump-config", "load"])
    assert code == 0 and "loaded kdump kernel" in text, text
    state = machine.state
    assert state["variables"]["crash_loaded"] and state["armed"]
    loaded = state["crash_kernel"]
    assert loaded["syscall"] == "kexec_load" and loaded["comm"] == "kexec"
    assert loaded["kernel"] == f"/boot/{kernel_image().name}" and loaded["initrd"] == INITRD
    assert "reset_devices" in loaded["cmdline"] and "crashkernel=" not in loaded["cmdline"]
    assert state["sysctls"] == {"kernel/panic_on_oops": "1\n"}
    code, text = run_to_file(machine, out, "status", ["kdump-config", "status"])
    assert "ready to kdump" in text, text
    code, text = run_to_file(machine, out, "loaded", ["cat", "/sys/kernel/kexec_crash_loaded"])
    assert text == "1\n"

    assert machine.crash() == ["crash"]
    code, text = run_to_file(machine, out, "savecore", ["kdump-config", "savecore"])
    assert code == 0, text
    (dmesg,) = out.glob("*/dmesg.*")
    image = VmcoreImage(MachineDir.open(machine.path).fixture)
    assert dmesg.read_text() == expected_dmesg(image.fixture.log)
    (flat,) = out.glob("*/dump.*")
    plain = tmp_path / "dump.kdump"
    with open(flat, "rb") as src:
        subprocess.run([tool("makedumpfile"), "-R", str(plain)], stdin=src, check=True, capture_output=True)
    report = verify_dump(image, plain)
    assert report.different == report.misplaced == report.missing == 0

    result = machine.run([*SEALED, tool("busybox"), "reboot", "-f"])  # the capture kernel's last step
    assert result.rebooted and result.returncode == KILLED
    assert machine.kernel == "armed" and not machine.armed
    assert run_to_file(machine, out, "load2", [*SEALED, "kdump-config", "load"])[0] == 0
    assert machine.armed
    code, text = run_to_file(machine, out, "unload", [*SEALED, "kdump-config", "unload"])
    assert code == 0 and "unloaded kdump kernel" in text, text
    assert not machine.armed


def test_kexec_p_and_unload_run_directly(tmp_path: Path, host) -> None:
    out = tmp_path / "out"
    machine = equipped(tmp_path / "m", "kdump-x86_64", out)
    vmlinuz = f"/boot/{kernel_image().name}"
    code, text = run_to_file(machine, out, "p", [*SEALED, "kexec", "-p", vmlinuz, f"--initrd={INITRD}",
                                                 "--append=console=ttyS0 abi"])
    assert code == 0, text
    loaded = machine.state["crash_kernel"]
    assert machine.armed and loaded["syscall"] == "kexec_load" and loaded["cmdline"] == "console=ttyS0 abi"
    code, text = run_to_file(machine, out, "u", [*SEALED, "kexec", "-p", "-u"])
    assert code == 0 and not machine.armed, text

    # kexec_file_load: the machine reads the kernel and the initrd through the caller's descriptors.
    code, text = run_to_file(machine, out, "s", [*SEALED, "kexec", "-s", "-p", vmlinuz, f"--initrd={INITRD}",
                                                 "--append=console=ttyS0"])
    assert code == 0, text
    loaded = machine.state["crash_kernel"]
    assert loaded["syscall"] == "kexec_file_load" and loaded["cmdline"] == "console=ttyS0"
    assert loaded["kernel"]["sha256"] == hashlib.sha256(kernel_image().read_bytes()).hexdigest()
    assert loaded["initrd"]["size"] == len("initrd of abi-harness")
    code, text = run_to_file(machine, out, "su", [*SEALED, "kexec", "-s", "-p", "-u"])
    assert code == 0 and not machine.armed, text
    # A crash now gives no dump: nothing is loaded.
    assert machine.crash() == ["crash", "boot"]


# -- conformance of the arming half ------------------------------------------------------------

KDUMP_TOOLS_ARM = ("cp /usr/share/kdump-tools/kdump-tools.conf /etc/default/kdump-tools && "
                   f"{' '.join(SEALED)} kdump-config load")


def test_conform_arm_passes_kdump_config_in_fadump_mode(cli, tmp_path: Path, host) -> None:
    proc = cli("conform", "--platform", "fadump", "--examples", "4", "--seed", "5", "--arm", KDUMP_TOOLS_ARM,
               "--install", "kdump-tools", "--install", "kexec-tools", "--", VMCORE_SAVE, "--quiet", "{output}")
    assert proc.returncode == 0, proc.stderr
    assert "4 passed, 0 failed" in proc.stdout
    assert "each machine armed by" in proc.stderr


def test_conform_arm_passes_kexec_p_on_x86_64(cli, tmp_path: Path, host) -> None:
    kexec = private_tree("kexec-tools") / "sbin" / "kexec"
    proc = cli("conform", "--platform", "kdump", "--arch", "x86_64", "--examples", "4", "--seed", "6", "--arm",
               f"{' '.join(SEALED)} {kexec} -p {kernel_image()} --append=console=ttyS0", "--", VMCORE_SAVE, "--quiet",
               "{output}")
    assert proc.returncode == 0, proc.stderr
    assert "4 passed, 0 failed" in proc.stdout


def test_conform_arm_catches_a_command_that_does_not_arm(cli, tmp_path: Path) -> None:
    keep = tmp_path / "failure"
    proc = cli("conform", "--platform", "fadump", "--examples", "2", "--seed", "1", "--arm", "true",
               "--keep-failures", str(keep), "--", VMCORE_SAVE, "--quiet", "{output}")
    assert proc.returncode == 1
    assert "the crash left no dump: 'true' did not arm the machine (registered was false)" in proc.stderr
    # The reproducer replays the machine's life (arm, crash, collect) and judges it again.
    replay = subprocess.run(["sh", str(keep / "reproduce.sh")], capture_output=True, text=True)
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert "the crash left no dump: 'true' did not arm the machine" in replay.stderr


def test_conform_arm_catches_a_service_that_arms_only_once(cli, tmp_path: Path) -> None:
    # As a real service would: the flat name on kernels before the fadump/ directory (conform draws them).
    once = ("[ -e /var/tmp/armed-once ] && exit 0; f=/sys/kernel/fadump/registered; "
            "[ -e $f ] || f=/sys/kernel/fadump_registered; echo 1 > $f; touch /var/tmp/armed-once")
    proc = cli("conform", "--platform", "fadump", "--examples", "2", "--seed", "1", "--arm", once, "--",
               VMCORE_SAVE, "--quiet", "{output}")
    assert proc.returncode == 1
    assert "in the same kernel did not arm the machine again (registered is false)" in proc.stderr

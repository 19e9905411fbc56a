"""A real kernel is the referee: the mock against Debian's kernel, recorded once under QEMU (conftest.py).

(a) the mock's ABI answers equal the real kernel's, armed, loaded and captured;
(b) a synthesized fixture with the real machine's memory map is laid out like the real /proc/vmcore,
    and every difference is listed here with its reason;
(c) the recorded vmcore served through the mock reads like the file, for real tools too.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import subprocess
from pathlib import Path

import drgn
import pytest

from abi_specs.corehead import read_core_head
from abi_specs.streams import ReadAtStream
from mockfs.dumps.served import fixture_of
from mockfs.machine import VmcoreImage
from mockfs.machine.model import Cpu, Fixture
from mockfs.session.machines import MachineDir
from mockfs.session.testbed import Machine, MockMount
from mockfs.tools.debs import resolve

from ..support import SEALED, private_tree, tool

KERNEL_MAP = 0xFFFFFFFF80000000  # x86_64: the kernel text mapping, above the direct map


def _kexec() -> Path:
    return private_tree("kexec-tools") / "sbin" / "kexec"


def _vmlinuz() -> Path:
    (image,) = sorted((private_tree("linux-image-amd64") / "boot").glob("vmlinuz-*"))
    return image


def _write(path: Path, data: str) -> tuple[str, str]:
    """A write as the guest's shell made it; (errno name or "", what reads back)."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        return errno.errorcode[exc.errno], path.read_text()
    try:
        os.write(fd, data.encode())
        result = ""
    except OSError as exc:
        result = errno.errorcode[exc.errno]
    finally:
        os.close(fd)
    return result, path.read_text()


def _compare_files(mock: MockMount, recorded: dict[str, dict], state: str) -> list[str]:
    """Where the mock's files differ from the real kernel's: presence, mode, value."""
    differences = []
    for path, real in sorted(recorded.items()):
        if path == "/proc/vmcore":
            continue
        served = mock.path(path)
        here = served.exists() or served.is_symlink()
        if here != real["present"]:
            differences.append(f"{state} {path}: the kernel {'has' if real['present'] else 'lacks'} it, the mock not")
            continue
        if not here or real.get("type") != "file":
            continue
        mode = os.stat(served).st_mode & 0o777
        if mode != real["mode"]:
            differences.append(f"{state} {path}: mode {mode:o}, the kernel's {real['mode']:o}")
        value = served.read_text() if "value" in real else None
        if path.endswith("vmcoreinfo") and value is not None:
            # The note's address is where this one kernel put it; the format and the size are the ABI.
            value, expected = value.split(" ")[1], real["value"].split(" ")[1]
            if not re.fullmatch(r"0x[0-9a-f]{16} [0-9a-f]+\n", served.read_text()):
                differences.append(f"{state} {path}: {served.read_text()!r} is not '%pa %x'")
        else:
            expected = real.get("value")
        if value != expected:
            differences.append(f"{state} {path}: {value!r}, the kernel's {expected!r}")
    return differences


def _replay(mock: MockMount, writes: list[dict], state: str) -> list[str]:
    differences = []
    for w in writes:
        result, readback = _write(mock.path(w["path"]), w["data"])
        if result != w["errno"]:
            differences.append(f"{state} write {w['data']!r} to {w['path']}: {result or 'ok'}, "
                               f"the kernel's {w['errno'] or 'ok'}")
        if readback != w["readback"] and not w["path"].endswith("vmcoreinfo"):
            differences.append(f"{state} after {w['data']!r}: reads {readback!r}, the kernel's {w['readback']!r}")
    return differences


def _release(core) -> str:
    """The recorded kernel's release, from its own VMCOREINFO (the package may move to a newer build)."""
    release = core.head.vmcoreinfo()["OSRELEASE"]
    assert f"linux-image-{release}" == resolve("linux-image-amd64"), "the recording is not of the kernel package"
    return release


def _crashkernel(states: dict) -> tuple[int, int]:
    """The reservation the recorded kernel made: its boot log's line, and kexec_crash_size (not the manifest)."""
    size = int(states["armed"]["files"]["/sys/kernel/kexec_crash_size"]["value"])
    log = states["capture"]["vmcore_dmesg"]
    if m := re.search(r"Reserving (\d+)MB of memory at (\d+)MB for crashkernel", log):  # up to 6.6
        start, logged = int(m[2]) << 20, int(m[1]) << 20
    elif m := re.search(r"crashkernel reserved: 0x([0-9a-f]+) - 0x([0-9a-f]+)", log):  # 6.7 and later
        start, logged = int(m[1], 16), int(m[2], 16) - int(m[1], 16)
    else:
        pytest.fail("the recorded boot log names no crashkernel reservation")
    assert logged == size
    return start, size


def test_a_the_mock_answers_as_the_real_kernel(recording, tmp_path: Path) -> None:
    manifest, core = recording
    states = core.recorded
    fixture = fixture_of(core, manifest)
    assert fixture.crashkernel == _crashkernel(states) and fixture.osrelease == _release(core)
    machine = Machine(tmp_path / "m", fixture, state="armed")
    differences = []
    with MockMount(machine=MachineDir.open(machine.path), workdir=tmp_path / "armed") as mock:
        differences += _compare_files(mock, states["armed"]["files"], "armed")
        differences += _replay(mock, states["armed"]["writes"], "armed")
    # The real kexec -p, through the sealed runner, as the guest ran it.
    loaded = machine.run([*SEALED, str(_kexec()), "-p", str(_vmlinuz()),
                          f"--append={states['armed-loaded']['kexec_load']['append']}"])
    assert loaded.returncode == 0
    with MockMount(machine=MachineDir.open(machine.path), workdir=tmp_path / "loaded") as mock:
        differences += _compare_files(mock, states["armed-loaded"]["files"], "armed-loaded")
        differences += _replay(mock, states["armed-loaded"]["writes"], "armed-loaded")
    assert machine.crash() == ["crash"]
    with MockMount(machine=MachineDir.open(machine.path), workdir=tmp_path / "capture") as mock:
        differences += _compare_files(mock, states["capture"]["files"], "capture")
        differences += _replay(mock, states["capture"]["writes"], "capture")
        real_vmcore = states["capture"]["files"]["/proc/vmcore"]
        st = os.stat(mock.path("/proc/vmcore"))
        assert (st.st_mode & 0o777, st.st_size) == (real_vmcore["mode"], real_vmcore["size"])
    assert differences == []


# (b) What the synthesizer must do differently, and why. Anything else that differs fails the test.
ALLOWED = {
    "kernel text PT_LOAD": "its place is the real kernel's KASLR offset and its size the real image's (52 MiB); "
                           "the synthesized kernel is 2 MiB at 16 MiB, without KASLR",
    "direct map": "the direct map's base is KASLR'd, and QEMU's TCG CPU has 5-level paging; the synthesizer "
                  "models 4-level page tables at the default PAGE_OFFSET",
    "RAM ending mid-page": "e820 gives a range ending at 0x9fc00; fixtures take whole pages (each page's pattern "
                           "proves where it came from), so the synthesized range ends at 0x9f000",
}
#: VMCOREINFO keys of the real 6.1 kernel the synthesizer leaves out: announcing a structure without the
#: memory behind it would send makedumpfile and drgn to read garbage.
ABSENT_KEYS = {
    "sparsemem": {"SYMBOL(mem_section)", "LENGTH(mem_section)", "SIZE(mem_section)",
                  "OFFSET(mem_section.section_mem_map)", "NUMBER(SECTION_SIZE_BITS)", "NUMBER(MAX_PHYSMEM_BITS)"},
    "numa nodes and zones": {"SYMBOL(node_online_map)", "SYMBOL(node_data)", "LENGTH(node_data)", "SIZE(nodemask_t)",
                             "SIZE(pglist_data)", "OFFSET(pglist_data.node_zones)", "OFFSET(pglist_data.nr_zones)",
                             "OFFSET(pglist_data.node_start_pfn)", "OFFSET(pglist_data.node_spanned_pages)",
                             "OFFSET(pglist_data.node_id)", "SIZE(zone)", "OFFSET(zone.free_area)",
                             "OFFSET(zone.vm_stat)", "OFFSET(zone.spanned_pages)", "LENGTH(zone.free_area)",
                             "SIZE(free_area)", "OFFSET(free_area.free_list)", "LENGTH(free_area.free_list)",
                             "NUMBER(NR_FREE_PAGES)", "SIZE(list_head)", "OFFSET(list_head.next)",
                             "OFFSET(list_head.prev)"},
    "vmalloc and kallsyms": {"SYMBOL(vmap_area_list)", "OFFSET(vmap_area.va_start)", "OFFSET(vmap_area.list)",
                             "SYMBOL(kallsyms_names)", "SYMBOL(kallsyms_num_syms)", "SYMBOL(kallsyms_token_table)",
                             "SYMBOL(kallsyms_token_index)", "SYMBOL(kallsyms_offsets)",
                             "SYMBOL(kallsyms_relative_base)"},
    "compound and huge pages": {"OFFSET(page.compound_dtor)", "OFFSET(page.compound_order)",
                                "OFFSET(page.compound_head)", "NUMBER(HUGETLB_PAGE_DTOR)"},
    "newer printk and build facts": {"SIZE(latched_seq)", "OFFSET(latched_seq.val)", "SIZE(atomic_long_t)",
                                     "SIZE(prb_data_blk_lpos)", "BUILD-ID", "NUMBER(KERNEL_IMAGE_SIZE)",
                                     "NUMBER(sme_mask)"},
}
#: The synthesizer's own memory model: FLATMEM, one node.
SYNTHESIZED_ONLY = {"SYMBOL(mem_map)", "SYMBOL(contig_page_data)"}


def _same_machine(core) -> Fixture:
    """A synthesized fixture with the real machine's memory map, CPUs and page size."""
    head = core.head
    ram = tuple((ld.paddr, ld.memsz // 4096 * 4096) for ld in head.loads if ld.vaddr < KERNEL_MAP)
    return Fixture(name="same", platform="kdump", arch="x86_64", ram=ram, cpus=tuple(Cpu(p) for p in core.pids()),
                   osrelease=head.vmcoreinfo()["OSRELEASE"], page_size=head.page_size()).validate()


def test_b_a_synthesized_core_is_laid_out_like_the_real_one(recording) -> None:
    _, core = recording
    real = core.head
    image = VmcoreImage(_same_machine(core))
    synth = read_core_head(ReadAtStream(image.read, image.size), "synthesized")
    # Program headers: PT_NOTE first, then the kernel text load, then one load per RAM range in order.
    assert synth.segment_types == real.segment_types
    assert [ld.vaddr >= KERNEL_MAP for ld in synth.loads] == [ld.vaddr >= KERNEL_MAP for ld in real.loads]
    real_ram = [(ld.paddr, ld.memsz) for ld in real.loads if ld.vaddr < KERNEL_MAP]
    synth_ram = [(ld.paddr, ld.memsz) for ld in synth.loads if ld.vaddr < KERNEL_MAP]
    assert [p for p, _ in synth_ram] == [p for p, _ in real_ram]
    assert [(p, n) for p, n in real_ram if n % 4096] == [(0x1000, 0x9EC00)]  # ALLOWED "RAM ending mid-page"
    assert [n for _, n in synth_ram] == [n // 4096 * 4096 for _, n in real_ram]
    # File offsets: the notes at the second page, the first load right after them, each next one at the
    # previous one's end rounded up to a page. Both follow that rule.
    for head in (real, synth):
        assert head.loads[0].offset == 0x2000
        for before, after in zip(head.loads, head.loads[1:]):
            assert after.offset == -(-(before.offset + before.filesz) // 4096) * 4096
    # Notes: one CORE/NT_PRSTATUS per CPU (336 bytes) then VMCOREINFO, at the same offsets.
    assert [(n.name, n.type, n.offset) for n in synth.notes] == [(n.name, n.type, n.offset) for n in real.notes]
    assert [len(n.desc) for n in synth.notes[:-1]] == [len(n.desc) for n in real.notes[:-1]] == [336] * len(core.pids())
    # VMCOREINFO: the real kernel's keys, less those listed above with their reason.
    real_keys, synth_keys = set(real.vmcoreinfo()), set(synth.vmcoreinfo())
    absent = set().union(*ABSENT_KEYS.values())
    assert real_keys - synth_keys == absent
    assert synth_keys - real_keys == SYNTHESIZED_ONLY


def test_c_the_real_vmcore_served_by_the_mock_reads_like_the_file(recording, tmp_path: Path) -> None:
    manifest, core = recording
    with MockMount(str(manifest), workdir=tmp_path / "w") as mock:
        served = mock.path("/proc/vmcore")
        digest = hashlib.sha256()
        with open(served, "rb") as f:
            while chunk := f.read(8 << 20):
                digest.update(chunk)
        real = hashlib.sha256()
        with open(core.core_path, "rb") as f:
            while chunk := f.read(8 << 20):
                real.update(chunk)
        assert digest.hexdigest() == real.hexdigest()
        # vmcore-dmesg: the same text as in the guest, from the mock and from the file.
        dmesg = tool("vmcore-dmesg")
        through_mock = subprocess.run([dmesg, str(served)], capture_output=True, text=True, check=True).stdout
        from_file = subprocess.run([dmesg, str(core.core_path)], capture_output=True, text=True, check=True).stdout
        assert through_mock == from_file == core.recorded["capture"]["vmcore_dmesg"]
        assert "sysrq: Trigger a crash" in through_mock
        # ... and the armed kernel's own dmesg, read in the guest before the crash, is all in it, in order.
        guest_dmesg = _messages(core.recorded["armed-loaded"]["dmesg"])
        assert guest_dmesg[0].startswith("Linux version")  # the whole log, from the boot on
        assert _missing_in_order(guest_dmesg, _messages(through_mock)) == []
        # makedumpfile -d 31: the same compressed dump either way.
        outputs = []
        for source, name in ((served, "mock.kdump"), (core.core_path, "file.kdump")):
            out = tmp_path / name
            proc = subprocess.run([tool("makedumpfile"), "-c", "-d", "31", str(source), str(out)],
                                  capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            outputs.append(out.read_bytes())
        assert outputs[0] == outputs[1]
        # drgn, without debug info: physical reads and the kernel's own page tables.
        for path in (served, core.core_path):
            prog = drgn.Program()
            prog.set_core_dump(str(path))
            info = core.head.vmcoreinfo()
            uts = int(info["SYMBOL(init_uts_ns)"], 16) + int(info["OFFSET(uts_namespace.name)"])
            release = prog.read(uts + 65 * 2, 65).split(b"\0")[0]  # struct new_utsname: sysname, nodename, release
            assert release == _release(core).encode()


def _messages(log: str) -> list[str]:
    """A kernel log's message texts: each line without its "[  seconds] " stamp.

    dmesg (syslog(2)) stamps every line of a multi-line record, vmcore-dmesg only the first: an
    unstamped line is text too. Trailing blanks are dropped (one reader pads, the other not).
    """
    return [re.sub(r"^\[\s*\d+\.\d+\] ", "", line).rstrip() for line in log.splitlines() if line.strip()]


def _missing_in_order(wanted: list[str], log: list[str]) -> list[str]:
    """The lines of *wanted* that *log* does not hold in the same order (extra lines in *log* are fine)."""
    missing, at = [], 0
    for line in wanted:
        try:
            at = log.index(line, at) + 1
        except ValueError:
            missing.append(line)  # not after the previous match: the search goes on from there
    return missing


def test_the_order_check_finds_a_missing_or_swapped_line() -> None:
    log = _messages("[    0.000000] a\n[    0.100000] b\n  more of b\n[   12.500000] c\n")
    assert log == ["a", "b", "  more of b", "c"]
    assert _missing_in_order(_messages("[0.1] a\n[0.2] c\n"), log) == []
    assert _missing_in_order(["a", "x", "c"], log) == ["x"]
    assert _missing_in_order(["c", "a"], log) == ["a"]


@pytest.mark.parametrize("kernel", ["capture"])
def test_the_recording_keeps_to_its_owner(recording, kernel: str) -> None:
    manifest, core = recording
    for path in (manifest, core.core_path):
        assert os.stat(path).st_mode & 0o777 == 0o600

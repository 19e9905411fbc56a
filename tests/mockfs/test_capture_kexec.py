"""kexec -p in a capture kernel: no crashkernel= reservation there, so the kernel's answer is EADDRNOTAVAIL.

The capture kernel is booted without crashkernel= (kexec_crash_size reads 0 in a real
6.1 one: real-kernel-oracle.md), so crashk_res is empty: kexec_load fails in
kimage_alloc_init (the entry point is outside crashk_res), kexec_file_load in
kexec_add_buffer (no hole in crashk_res), both with EADDRNOTAVAIL.
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path

from mockfs.session.testbed import Machine

from ..support import SEALED, private_tree

_CALLS = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def err(rc):
    return str(ctypes.get_errno() if rc else 0)
image = os.open(sys.argv[2], os.O_RDONLY)
cmdline = b"console=ttyS0\0"
on_crash, no_initramfs = 0x2, 0x4
file_load = err(libc.syscall(320, image, -1, len(cmdline), cmdline, on_crash | no_initramfs))
data = ctypes.create_string_buffer(4096)
segment = (ctypes.c_uint64 * 4)(ctypes.addressof(data), 4096, 0x30000000, 4096)  # buf, bufsz, mem, memsz
load = err(libc.syscall(246, ctypes.c_ulong(0x30000000), ctypes.c_ulong(1), segment, ctypes.c_ulong(0x1)))
open(sys.argv[1], "w").write(f"{file_load} {load}")
"""


def test_a_crash_load_in_the_capture_kernel_finds_no_reservation(tmp_path: Path) -> None:
    (image,) = sorted((private_tree("linux-image-amd64") / "boot").glob("vmlinuz-*"))
    machine = Machine(tmp_path / "m", "kdump-x86_64", state="capture")
    out = tmp_path / "out"
    result = machine.run([*SEALED, sys.executable, "-c", _CALLS, f"{out}/errnos", str(image)], output=out)
    assert result.returncode == 0
    assert (out / "errnos").read_text().split() == [str(errno.EADDRNOTAVAIL)] * 2
    assert not machine.variables["crash_loaded"]
    refused = [e for e in machine.state["events"] if e["event"] == "kexec-refused"]
    assert [e["errno"] for e in refused] == ["EADDRNOTAVAIL", "EADDRNOTAVAIL"]
    assert all("a capture kernel boots without one" in e["reason"] for e in refused), refused

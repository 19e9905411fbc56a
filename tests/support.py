"""What the tests share: the real command line, real tools, waiting for events, and one ELF builder.

The ELF builder packs every byte with :mod:`struct` on purpose: it is the
tests' own statement of the ELF64 and /proc/vmcore layouts, independent of the
code under test (which builds and reads ELF through pyelftools).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from mockfs.tools.find import find_tool

REPO = Path(__file__).resolve().parent.parent
#: Generous deadlines for events on a loaded 2-core machine; a test waits for the event, not the time.
EVENT_TIMEOUT = 60.0


# -- real programs --------------------------------------------------------------------------


def tool(name: str) -> str:
    """Full path of a tool ``make test`` installs; a missing one fails the test (never skips)."""
    path = find_tool(name)
    if path is None:
        pytest.fail(f"required tool {name!r} is not installed (make install sets it up)")
    return str(path)


def private_tree(package: str) -> Path:
    """The private unpacked tree of a Debian package ``make test`` unpacks; a missing one fails the test."""
    from mockfs.tools import debs

    name = debs.resolve(package)
    trees = debs.unpacked(name)
    if not trees:
        pytest.fail(f"{name} is not unpacked privately (make private-debs does it)")
    return trees[-1]


#: Prefix of every command that writes /proc/sysrq-trigger, calls reboot(2) or runs kexec:
#: the probe proves, inside the runner, that the seals are in place, and only then execs it.
SEALED = [sys.executable, "-m", "mockfs.sandbox.probe", "--"]

#: Host sysctls a dump service writes (kdump-config: kernel.panic_on_oops) or that decide a crash.
WATCHED_SYSCTLS = ("kernel/panic_on_oops", "kernel/panic", "kernel/sysrq", "kernel/hostname",
                   "kernel/unknown_nmi_panic", "kernel/softlockup_panic", "vm/panic_on_oom")
#: Where a dump service on the host would leave files.
WATCHED_DIRS = ("/var/lib/kdump", "/var/crash", "/etc/default", "/boot", "/usr/sbin")
WATCHED_FILES = ("/sys/kernel/kexec_crash_loaded", "/sys/kernel/kexec_loaded", "/sys/kernel/kexec_crash_size",
                 "/sys/kernel/fadump_registered", "/sys/kernel/fadump/registered")


def host_snapshot() -> dict[str, object]:
    """What a dump service could change on the host: sysctls, kexec/fadump state, its directories."""
    snap: dict[str, object] = {}
    for key in WATCHED_SYSCTLS:
        path = Path("/proc/sys") / key
        snap[f"sysctl {key}"] = path.read_text() if path.exists() else None
    for name in WATCHED_FILES:
        path = Path(name)
        snap[name] = path.read_text() if path.exists() else None
    for name in WATCHED_DIRS:
        root = Path(name)
        snap[name] = sorted(str(p) for p in root.rglob("*")) if root.is_dir() else None
    snap["hostname"] = os.uname().nodename
    return snap


def cli_path() -> Path:
    """The installed ``abi-harness`` console script next to this Python."""
    script = Path(sys.executable).parent / "abi-harness"
    if not script.exists():
        raise RuntimeError(f"{script} is missing: install the package (make install)")
    return script


def run_cli(*args: str, stdin: bytes | None = None, cwd: Path | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``abi-harness`` command; never raises on a non-zero exit."""
    return subprocess.run(
        [str(cli_path()), *args],
        input=stdin.decode("latin-1") if stdin is not None else None,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


def gcore_of_sleep(directory: Path) -> Path:
    """A core of a real process, written by gdb's gcore (a user core, not a vmcore)."""
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        out = directory / "sleep.core"
        subprocess.run([tool("gdb"), "-batch", "-p", str(sleeper.pid), "-ex", f"gcore {out}"],
                       check=True, capture_output=True, timeout=300)
        return out
    finally:
        sleeper.kill()
        sleeper.wait()


def write_once(path: Path, data: bytes) -> int:
    """One write(2) of *data*, as `echo` does it; returns the count or raises OSError."""
    fd = os.open(path, os.O_WRONLY)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def assert_cleanup_removes_records(runtime: Path) -> None:
    """A SIGKILLed run left its run and mount records in *runtime*: `abi-harness cleanup` removes them all."""
    left = sorted(p.name for p in runtime.glob("*/*.r*"))
    assert left, f"a SIGKILLed run leaves its records in {runtime}"
    done = run_cli("cleanup", env={**os.environ, "ABI_HARNESS_RUNTIME_DIR": str(runtime)})
    assert done.returncode == 0, done.stderr
    assert not list(runtime.glob("*/*.r*")), (left, done.stdout)


def wait_until(predicate: Callable[[], bool], timeout: float = EVENT_TIMEOUT, what: str = "") -> bool:
    """Poll *predicate* until it holds or *timeout* passes; the result of the last look."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def wait_for_line(path: Path, line: str, timeout: float = EVENT_TIMEOUT) -> bool:
    """Whether *path* comes to hold *line* (a program's "I have started" signal) within *timeout*."""
    return wait_until(lambda: path.exists() and line in path.read_text().splitlines(), timeout)


def token_holders(token: str) -> list[int]:
    """Live pids (not this one) whose environment carries ``ABI_TEST_TOKEN=token`` (zombies have none).

    A test starts its processes with a fresh token, so it can find every
    descendant (supervisors, daemons, runners, programs) precisely, even while
    pytest-xdist runs other tests beside it.
    """
    needle = f"ABI_TEST_TOKEN={token}".encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.append(int(name))
            except OSError:
                pass
    return found


def process_gone(pid: int, timeout: float = EVENT_TIMEOUT) -> bool:
    """Whether *pid* exits within *timeout* (waits on a pidfd: no polling)."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


# -- one ELF builder ------------------------------------------------------------------------

#: (e_machine, struct byte-order prefix, NT_PRSTATUS size) per arch.
ARCHES = {"x86_64": (62, "<", 336), "ppc64": (21, ">", 504), "ppc64le": (21, "<", 504)}
EHDR, PHDR = 64, 56
PT_LOAD, PT_NOTE = 1, 4


def ehdr(machine: int, order: str, phnum: int) -> bytes:
    """An ELF64 ET_CORE header with *phnum* program headers right after it."""
    ident = b"\x7fELF" + bytes([2, 1 if order == "<" else 2, 1, 0]) + b"\0" * 8
    return ident + struct.pack(order + "HHIQQQIHHHHHH", 4, machine, 1, 0, EHDR, 0, 0, EHDR, PHDR, phnum, 0, 0, 0)


def phdr(order: str, p_type: int, flags: int, offset: int, vaddr: int, paddr: int, filesz: int, memsz: int) -> bytes:
    """One ELF64 program header."""
    return struct.pack(order + "IIQQQQQQ", p_type, flags, offset, vaddr, paddr, filesz, memsz, 0)


def note(order: str, name: bytes, n_type: int, desc: bytes) -> bytes:
    """One ELF note, name and descriptor padded to 4 bytes."""
    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)
    return struct.pack(order + "III", len(name) + 1, len(desc), n_type) + pad(name + b"\0") + pad(desc)


def build_core(
    arch: str = "x86_64",
    page: int = 4096,
    pids: tuple[int, ...] = (1, 2),
    ranges: Sequence[tuple[int, int]] = ((0, 0x3000), (0x100000, 0x1800)),
    info: str | None = None,
) -> bytes:
    """A core laid out as fs/proc/vmcore.c lays it out, memory a fixed byte ramp."""
    machine, order, prsize = ARCHES[arch]
    if info is None:
        info = f"OSRELEASE=6.1.0-test\nPAGESIZE={page}\nSYMBOL(init_uts_ns)=ffffffff82a0c000\nCRASHTIME=1700000000\n"
    notes = b""
    for pid in pids:
        desc = bytearray(prsize)
        struct.pack_into(order + "I", desc, 32, pid)  # pr_pid follows siginfo, cursig and two sigsets
        notes += note(order, b"CORE", 1, bytes(desc))
    notes += note(order, b"VMCOREINFO", 0, info.encode())
    phnum = 1 + len(ranges)
    note_off = -(-(EHDR + PHDR * phnum) // page) * page
    cursor = note_off + -(-len(notes) // page) * page
    phdrs = phdr(order, PT_NOTE, 0, note_off, 0, 0, len(notes), len(notes))
    body = b""
    for paddr, size in ranges:
        in_page = paddr % page
        slot = -(-(in_page + size) // page) * page
        phdrs += phdr(order, PT_LOAD, 7, cursor + in_page, 0xFFFF888000000000 + paddr, paddr, size, size)
        body += bytes(range(256)) * (slot // 256)
        cursor += slot
    head = ehdr(machine, order, phnum) + phdrs
    return head + b"\0" * (note_off - len(head)) + notes + b"\0" * (-len(notes) % page) + body


def write_dump(path: Path, arch: str, direct_map: int, loads: Sequence[tuple[int, int, int]],
               read: Callable[[int, int], bytes]) -> None:
    """An ELF dump with PT_LOADs (paddr, filesz, memsz) and no notes, as makedumpfile -E writes one.

    *read(paddr, n)* gives the memory content, so a test can plant a precise defect.
    """
    machine, order, _ = ARCHES[arch]
    off = -(-(EHDR + PHDR * len(loads)) // 4096) * 4096
    headers, body = [], []
    for paddr, filesz, memsz in loads:
        headers.append(phdr(order, PT_LOAD, 4, off, direct_map + paddr, paddr, filesz, memsz))
        body.append((off, paddr, filesz))
        off += filesz
    chunk = 4 << 20
    with open(path, "wb") as f:
        f.write(ehdr(machine, order, len(loads)) + b"".join(headers))
        for at, paddr, n in body:
            f.seek(at)
            for pos in range(0, n, chunk):
                f.write(read(paddr + pos, min(chunk, n - pos)))

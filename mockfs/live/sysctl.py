"""The machine's /proc/sys: the host's values until written, then the machine's.

A dump service's ``sysctl -w kernel.panic_on_oops=1`` must change the mocked
machine, never the host. Reads start from the host's value; a write is kept in
the machine's state (and reported), and reads of that file return it from then
on. Which files exist, and whether they take writes, follows the host's
/proc/sys (read through *host_proc*, the real procfs).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from abi_specs import WriteRejected

from .state import MachineState


@dataclass(frozen=True)
class SysctlEntry:
    """A directory or file of /proc/sys as the machine shows it."""

    is_dir: bool
    mode: int


class Sysctls:
    """/proc/sys of one machine, over the host's (paths are relative to /proc/sys)."""

    def __init__(self, state: MachineState, host_proc: str = "/proc") -> None:
        self.state = state
        self.root = os.path.join(host_proc, "sys")

    def _host(self, rel: str) -> str:
        clean = os.path.normpath("/" + rel).lstrip("/")
        return os.path.join(self.root, clean) if clean else self.root

    def entry(self, rel: str) -> SysctlEntry | None:
        """What is at *rel*, or None."""
        try:
            st = os.lstat(self._host(rel))
        except OSError:
            return None
        return SysctlEntry(stat.S_ISDIR(st.st_mode), stat.S_IMODE(st.st_mode))

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self._host(rel)))
        except OSError:
            return []

    def read(self, rel: str) -> bytes:
        """The value as the machine shows it: written by the machine, else the host's."""
        if rel in self.state.sysctls:
            return self.state.sysctls[rel].encode()
        try:
            with open(self._host(rel), "rb") as f:
                return f.read()
        except OSError as exc:
            raise WriteRejected(f"/proc/sys/{rel}", exc.errno or errno.EIO, exc.strerror or "unreadable") from None

    def write(self, rel: str, data: bytes) -> int:
        """Keep *data* as the machine's value of *rel* (the host's stays as it is)."""
        entry = self.entry(rel)
        if entry is None or entry.is_dir:
            raise WriteRejected(f"/proc/sys/{rel}", errno.ENOENT if entry is None else errno.EISDIR, "no such sysctl")
        if not entry.mode & 0o222:
            raise WriteRejected(f"/proc/sys/{rel}", errno.EACCES, "read-only sysctl")
        text = data.decode("latin-1").strip()
        self.state.sysctls[rel] = text + "\n"
        self.state.event("sysctl", key=rel.replace("/", "."), value=text)
        return len(data)

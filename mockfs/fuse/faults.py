"""Faults the mock injects on demand: ``--fault KIND[:ARG]``.

==================  =========================================================
``eio:START-END``   reads of /proc/vmcore touching file bytes [START, END) fail with EIO
``short:N``         every read of /proc/vmcore returns at most N bytes
``delay:MS``        every read of /proc/vmcore first sleeps MS milliseconds
``kill-after:N``    the reading process is killed (SIGKILL) once N bytes were read
``enospc:SIZE``     the output directory has SIZE bytes free; its files stay (``abi-harness run``)
==================  =========================================================

Numbers take ``0x`` hex and K/M/G/T (binary) suffixes. The mock serves one
request at a time (:mod:`mockfs.fuse.daemon`), so while a delayed read sleeps,
requests for other files wait too; a real kernel would answer them.
"""

from __future__ import annotations

from dataclasses import dataclass

from abi_specs.errors import AbiError
from abi_specs.units import EXAMPLES
from abi_specs.units import parse_size as _parse_size

#: A read slower than a minute is a hang, not a fault.
MAX_DELAY_MS = 60_000


class FaultSpecError(AbiError):
    """A ``--fault`` argument that cannot be understood."""


def parse_size(text: str, what: str) -> int:
    """``4096``, ``0x1000``, ``4K``, ``1GiB`` -> bytes; FaultSpecError naming *what* otherwise."""
    try:
        return _parse_size(text)
    except ValueError:
        raise FaultSpecError(f"{what}: {text!r} is not a size (examples: {EXAMPLES})") from None


@dataclass(frozen=True)
class FaultPlan:
    """All faults of one run."""

    eio: tuple[tuple[int, int], ...] = ()
    short: int = 0
    delay_ms: float = 0.0
    kill_after: int = 0
    enospc: int = 0

    @property
    def any_read_fault(self) -> bool:
        return bool(self.eio or self.short or self.delay_ms or self.kill_after)

    def describe(self) -> list[str]:
        out = [f"eio:{a:#x}-{b:#x}" for a, b in self.eio]
        if self.short:
            out.append(f"short:{self.short}")
        if self.delay_ms:
            out.append(f"delay:{self.delay_ms:g}")
        if self.kill_after:
            out.append(f"kill-after:{self.kill_after}")
        if self.enospc:
            out.append(f"enospc:{self.enospc}")
        return out


def parse_faults(specs: list[str] | tuple[str, ...]) -> FaultPlan:
    """A :class:`FaultPlan` from ``--fault`` arguments."""
    eio: list[tuple[int, int]] = []
    values: dict[str, float] = {}
    for spec in specs:
        kind, _, arg = spec.partition(":")
        what = f"--fault {spec}"
        if kind == "eio":
            lo, sep, hi = arg.partition("-")
            if not sep:
                raise FaultSpecError(f"{what}: expected eio:START-END")
            start, end = parse_size(lo, what), parse_size(hi, what)
            if end <= start:
                raise FaultSpecError(f"{what}: END must be above START")
            eio.append((start, end))
        elif kind in ("short", "kill-after", "enospc"):
            value = parse_size(arg, what)
            if value <= 0:
                raise FaultSpecError(f"{what}: must be positive")
            values[kind] = value
        elif kind == "delay":
            try:
                delay = float(arg)
            except ValueError:
                raise FaultSpecError(f"{what}: expected delay:MILLISECONDS") from None
            if not 0 < delay <= MAX_DELAY_MS:  # NaN fails this too
                raise FaultSpecError(f"{what}: the delay must be above 0 and at most {MAX_DELAY_MS} ms")
            values[kind] = delay
        else:
            raise FaultSpecError(f"{what}: unknown fault {kind!r} (eio, short, delay, kill-after, enospc)")
    return FaultPlan(
        eio=tuple(eio),
        short=int(values.get("short", 0)),
        delay_ms=values.get("delay", 0.0),
        kill_after=int(values.get("kill-after", 0)),
        enospc=int(values.get("enospc", 0)),
    )

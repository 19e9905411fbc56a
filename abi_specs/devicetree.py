"""Binary device-tree properties: big-endian fields packed back to back.

Open Firmware properties are arrays of big-endian 32-bit cells; a 64-bit
quantity takes two cells and need not be 8-byte aligned. A :class:`CellLayout`
names the fields of one record (declared with :class:`~abi_specs.binlayout.Layout`);
``repeat`` means the property is a sequence of such records
(``ibm,configure-kernel-dump-sizes`` is a list of (section id, size) records).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .binlayout import Layout
from .errors import ParseError

#: The cell types a property may use (a subset of the layout types: no padding, no words).
CELL_TYPES = ("u8", "u16", "u32", "u64")


@dataclass(frozen=True)
class CellLayout:
    """Named big-endian fields: an optional ``head`` record, then records.

    Without ``repeat`` the property holds exactly one record; with it, one or
    more records follow the head.
    """

    fields: tuple[tuple[str, str], ...]  # (type, name) of each record
    repeat: bool = False
    head: tuple[tuple[str, str], ...] = ()
    _record: Layout = field(init=False, repr=False, compare=False)
    _head: Layout = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for kind, name in self.head + self.fields:
            if kind not in CELL_TYPES:
                raise ValueError(f"field {name}: unknown type {kind!r} (use {', '.join(CELL_TYPES)})")
        object.__setattr__(self, "_record", Layout("record", self.fields, "big"))
        object.__setattr__(self, "_head", Layout("head", self.head, "big"))

    @property
    def head_size(self) -> int:
        return self._head.size

    @property
    def record_size(self) -> int:
        return self._record.size

    def pack(self, records: list[dict[str, int]], head: dict[str, int] | None = None) -> bytes:
        """The property bytes for *head* and *records* (one record unless ``repeat``)."""
        if not self.repeat and len(records) != 1:
            raise ValueError("a non-repeating property holds exactly one record")
        out = self._head.pack(head or {}) if self.head else b""
        return out + b"".join(self._record.pack(r) for r in records)

    def unpack(self, data: bytes, what: str = "property") -> dict[str, object]:
        """``{"head": {...}, "records": [...]}`` from *data*.

        Raises :class:`ParseError` when the size does not fit the layout.
        """
        hsize, size = self.head_size, self.record_size
        body = len(data) - hsize
        if body <= 0 or body % size or (not self.repeat and body != size):
            want = f"{hsize} + a multiple of {size} bytes" if self.repeat else f"{hsize + size} bytes"
            raise ParseError(what, 0, want, f"{len(data)} bytes")
        return {"head": self._head.unpack(data) if self.head else {}, "records": list(self._record.unpack_all(data, hsize))}

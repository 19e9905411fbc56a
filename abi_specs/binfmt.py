"""Binary device-tree properties: big-endian fields packed back to back.

Open Firmware properties are arrays of big-endian 32-bit cells; a 64-bit
quantity takes two cells and need not be 8-byte aligned. A :class:`CellLayout`
names the fields of one record; ``repeat`` means the property is a sequence of
such records (``ibm,configure-kernel-dump-sizes`` is a list of
(section id, size) records).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import ParseError

_TYPES = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q"}


@dataclass(frozen=True)
class CellLayout:
    """Named big-endian fields: an optional ``head`` record, then records.

    Without ``repeat`` the property holds exactly one record; with it, one or
    more records follow the head.
    """

    fields: tuple[tuple[str, str], ...]  # (type, name) of each record
    repeat: bool = False
    head: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for kind, name in self.head + self.fields:
            if kind not in _TYPES:
                raise ValueError(f"field {name}: unknown type {kind!r} (use {', '.join(_TYPES)})")

    @staticmethod
    def _struct(fields: tuple[tuple[str, str], ...]) -> struct.Struct:
        return struct.Struct(">" + "".join(_TYPES[k] for k, _ in fields))

    @property
    def head_size(self) -> int:
        return self._struct(self.head).size

    @property
    def record_size(self) -> int:
        return self._struct(self.fields).size

    def pack(self, records: list[dict[str, int]], head: dict[str, int] | None = None) -> bytes:
        """The property bytes for *head* and *records* (one record unless ``repeat``)."""
        if not self.repeat and len(records) != 1:
            raise ValueError("a non-repeating property holds exactly one record")
        out = b""
        if self.head:
            out = self._struct(self.head).pack(*((head or {})[name] for _, name in self.head))
        s = self._struct(self.fields)
        return out + b"".join(s.pack(*(r[name] for _, name in self.fields)) for r in records)

    def unpack(self, data: bytes, what: str = "property") -> dict[str, object]:
        """``{"head": {...}, "records": [...]}`` from *data*.

        Raises :class:`ParseError` when the size does not fit the layout.
        """
        hsize, size = self.head_size, self.record_size
        body = len(data) - hsize
        if body <= 0 or body % size or (not self.repeat and body != size):
            want = f"{hsize} + a multiple of {size} bytes" if self.repeat else f"{hsize + size} bytes"
            raise ParseError(what, 0, want, f"{len(data)} bytes")
        head = dict(zip((n for _, n in self.head), self._struct(self.head).unpack_from(data, 0)))
        s = self._struct(self.fields)
        names = [name for _, name in self.fields]
        records = [dict(zip(names, s.unpack_from(data, at))) for at in range(hsize, len(data), size)]
        return {"head": head, "records": records}

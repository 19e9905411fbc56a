"""Binary structures declared as data: named fields packed back to back.

A :class:`Layout` is a C structure (or a file-format record) written down as a
list of ``(type, name)`` pairs, the way pyelftools declares ELF: the field
names say what each byte means, and packing and unpacking both come from the
one declaration. Types are ``u8 u16 u32 u64 s8 s16 s32 s64``, ``ulong`` and
``long`` (the machine word: 8 bytes on the 64-bit kernels the ABI runs on, 4
in a 32-bit core), an array ``u64[27]``, or ``pad[N]`` bytes that are skipped.
Fields are packed without implicit alignment, as the declarations list every
padding explicitly.

>>> head = Layout("note", [("u32", "namesz"), ("u32", "descsz"), ("u32", "type")])
>>> head.big.unpack(head.big.pack(namesz=5, descsz=336, type=1))["descsz"]
336
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property

_CODES = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "s8": "b", "s16": "h", "s32": "i", "s64": "q"}
_WORD = {8: ("Q", "q"), 4: ("I", "i")}
_ARRAY = re.compile(r"^([a-z0-9]+)\[(\d+)\]$")
TYPES = (*_CODES, "ulong", "long", "pad[N]", "TYPE[N]")


def _split(kind: str) -> tuple[str, int]:
    m = _ARRAY.match(kind)
    return (m.group(1), int(m.group(2))) if m else (kind, 1)


class Layout:
    """A record of named fields in one byte order (``little`` or ``big``).

    ``word`` is the size of ``ulong``/``long`` (8 unless given). The same
    layout in the other byte order is :attr:`little` / :attr:`big`, or
    :meth:`order`.
    """

    def __init__(self, name: str, fields: Sequence[tuple[str, str]], byteorder: str = "little", word: int = 8) -> None:
        if byteorder not in ("little", "big"):
            raise ValueError(f"{name}: byte order must be 'little' or 'big', not {byteorder!r}")
        if word not in _WORD:
            raise ValueError(f"{name}: word size must be 4 or 8, not {word}")
        self.name = name
        self.fields = tuple((str(k), str(n)) for k, n in fields)
        self.byteorder = byteorder
        self.word = word
        codes: list[str] = []
        self._slots: list[tuple[str, int]] = []  # (name, count) of every value-carrying field
        for kind, field_name in self.fields:
            base, count = _split(kind)
            if base == "pad":
                codes.append(f"{count}x")
                continue
            if base in ("ulong", "long"):
                code = _WORD[word][base == "long"]
            elif base in _CODES:
                code = _CODES[base]
            else:
                raise ValueError(f"{name}.{field_name}: unknown type {kind!r} (use {', '.join(TYPES)})")
            codes.append(f"{count}{code}" if count != 1 else code)
            self._slots.append((field_name, count))
        self._struct = struct.Struct(("<" if byteorder == "little" else ">") + "".join(codes))
        self.size = self._struct.size

    def __repr__(self) -> str:
        return f"Layout({self.name!r}, {len(self.fields)} fields, {self.size} bytes, {self.byteorder})"

    @property
    def names(self) -> list[str]:
        """The names of the value-carrying fields, in order (padding excluded)."""
        return [n for n, _ in self._slots]

    def order(self, byteorder: str) -> Layout:
        """This layout in *byteorder*."""
        return self if byteorder == self.byteorder else Layout(self.name, self.fields, byteorder, self.word)

    @cached_property
    def little(self) -> Layout:
        return self.order("little")

    @cached_property
    def big(self) -> Layout:
        return self.order("big")

    def with_word(self, word: int) -> Layout:
        """This layout with ``ulong``/``long`` of *word* bytes."""
        return self if word == self.word else Layout(self.name, self.fields, self.byteorder, word)

    def offset_of(self, field_name: str) -> int:
        """Byte offset of *field_name* inside the record."""
        at = 0
        for kind, name in self.fields:
            if name == field_name:
                return at
            base, count = _split(kind)
            size = 1 if base == "pad" else (self.word if base in ("ulong", "long") else struct.calcsize(_CODES[base]))
            at += size * count
        raise KeyError(f"{self.name} has no field {field_name!r}")

    def pack(self, values: Mapping[str, object] | None = None, **more: object) -> bytes:
        """The record's bytes; fields not given are zero (arrays: all zeros)."""
        given = {**(values or {}), **more}
        unknown = set(given) - set(self.names)
        if unknown:
            raise KeyError(f"{self.name} has no field {sorted(unknown)[0]!r}")
        flat: list[object] = []
        for name, count in self._slots:
            value = given.get(name, 0)
            if count == 1:
                flat.append(value)
            else:
                items = list(value) if value else []  # type: ignore[call-overload]
                if len(items) > count:
                    raise ValueError(f"{self.name}.{name}: {len(items)} values for {count} slots")
                flat.extend(items + [0] * (count - len(items)))
        return self._struct.pack(*flat)

    def unpack(self, data: bytes | bytearray | memoryview, offset: int = 0) -> dict[str, object]:
        """The fields of the record at *offset* of *data* (arrays as tuples)."""
        raw = self._struct.unpack_from(data, offset)
        out: dict[str, object] = {}
        at = 0
        for name, count in self._slots:
            out[name] = raw[at] if count == 1 else tuple(raw[at:at + count])
            at += count
        return out

    def unpack_all(self, data: bytes | bytearray | memoryview, offset: int = 0) -> Iterator[dict[str, object]]:
        """Every whole record from *offset* to the end of *data*."""
        for at in range(offset, len(data) - self.size + 1, self.size):
            yield self.unpack(data, at)

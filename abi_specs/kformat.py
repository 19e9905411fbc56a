"""Kernel ``printf`` formats as two-way codecs.

A sysfs ``show`` method is one ``sprintf`` call, so the spec records the very
format string the kernel uses (``"%d\\n"``, or release_region's long line) and
this module derives both directions from it: :meth:`PrintfFormat.format` builds
the text the kernel prints, and :meth:`PrintfFormat.parse` accepts exactly the
texts that format can produce (lower-case hex without padding, decimal without
leading zeros, values within the C type's range) and rejects the rest with the
offset and the token expected.

Supported conversions: ``%d %i %u %x`` with ``hh h l ll z`` qualifiers,
``%s``, ``%pa`` (a ``phys_addr_t``: ``0x`` and 16 hex digits) and ``%%``.
"""

from __future__ import annotations

import re
from collections import namedtuple

from .errors import ParseError, show_text

_BITS = {"hh": 8, "h": 16, "": 32, "l": 64, "ll": 64, "z": 64}

_PATTERNS = {
    "x": re.compile(r"0|[1-9a-f][0-9a-f]*"),
    "u": re.compile(r"0|[1-9][0-9]*"),
    "d": re.compile(r"0|-?[1-9][0-9]*"),
    "pa": re.compile(r"0x[0-9a-f]{16}"),
}


# The records of this module are named tuples, not dataclasses: `abi-harness check` unpickles
# them from the spec cache, and importing dataclasses (inspect, ast...) would cost it 16 ms.


class Field(namedtuple("Field", ("name", "kind", "bits"))):
    """One conversion of a printf format, bound to a field name; ``kind`` is x, u, d, s or pa."""

    __slots__ = ()

    @property
    def minimum(self) -> int:
        return -(1 << (self.bits - 1)) if self.kind == "d" else 0

    @property
    def maximum(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.kind == "d" else (1 << self.bits) - 1

    def describe(self) -> str:
        kind = {
            "x": "lower-case hex digits",
            "u": "decimal digits",
            "d": "a decimal number",
            "pa": "0x and 16 lower-case hex digits",
            "s": "text",
        }[self.kind]
        return f"{kind} ({self.name})"

    def render(self, value: int | str) -> str:
        if self.kind == "s":
            if not isinstance(value, str):
                raise TypeError(f"{self.name}: expected a string, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{self.name}: expected an integer, got {value!r}")
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"{self.name}: {value} does not fit {self.bits} bits")
        if self.kind == "x":
            return format(value, "x")
        if self.kind == "pa":
            return "0x" + format(value, "016x")
        return str(value)


def _tokenize(fmt: str, names: list[str] | tuple[str, ...]) -> list[Field | str]:
    tokens: list[Field | str] = []
    literal = ""
    i = 0
    count = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            literal += ch
            i += 1
            continue
        if fmt.startswith("%%", i):
            literal += "%"
            i += 2
            continue
        if literal:
            tokens.append(literal)
            literal = ""
        j = i + 1
        if fmt.startswith("pa", j):
            kind, bits, j = "pa", 64, j + 2
        else:
            qual = ""
            for q in ("hh", "ll", "h", "l", "z"):
                if fmt.startswith(q, j):
                    qual = q
                    j += len(q)
                    break
            letter = fmt[j:j + 1]
            if letter not in ("d", "i", "u", "x", "s") or (letter == "s" and qual):
                raise ValueError(f"unsupported printf conversion {fmt[i:j + 1]!r} in {fmt!r}")
            kind = {"i": "d"}.get(letter, letter)
            bits = _BITS[qual]
            j += 1
        if count >= len(names):
            raise ValueError(f"format {fmt!r} has more conversions than field names {list(names)}")
        tokens.append(Field(names[count], kind, bits))
        count += 1
        i = j
    if literal:
        tokens.append(literal)
    if count != len(names):
        raise ValueError(f"format {fmt!r} has {count} conversions but {len(names)} field names")
    return tokens


class PrintfFormat:
    """A kernel printf format with named fields: formatter and strict parser."""

    def __init__(self, fmt: str, fields: list[str] | tuple[str, ...], what: str = "value") -> None:
        self.fmt = fmt
        self.what = what
        self.tokens = _tokenize(fmt, fields)
        self.fields = [t for t in self.tokens if isinstance(t, Field)]

    def __repr__(self) -> str:
        return f"PrintfFormat({self.fmt!r}, {[f.name for f in self.fields]!r})"

    def format(self, values: dict[str, int | str]) -> str:
        """The text the kernel prints for *values* (a dict keyed by field name)."""
        missing = [f.name for f in self.fields if f.name not in values]
        if missing:
            raise KeyError(f"{self.what}: missing values for {', '.join(missing)}")
        return "".join(t if isinstance(t, str) else t.render(values[t.name]) for t in self.tokens)

    def parse(self, text: str | bytes) -> dict[str, int | str]:
        """Parse *text* that the kernel printed; raise :class:`ParseError` otherwise."""
        if isinstance(text, bytes):
            text = text.decode("latin-1")
        values: dict[str, int | str] = {}
        pos = 0
        for k, token in enumerate(self.tokens):
            if isinstance(token, str):
                for offset, ch in enumerate(token):
                    if text[pos + offset:pos + offset + 1] != ch:
                        rest = token[offset:]
                        raise ParseError(self.what, pos + offset, repr(rest), show_text(text[pos + offset:]))
                pos += len(token)
                continue
            if token.kind == "s":
                end = self._string_end(text, pos, k)
                if "\0" in text[pos:end]:
                    bad = text.index("\0", pos)
                    raise ParseError(self.what, bad, "text without NUL bytes", show_text(text[bad:]))
                values[token.name] = text[pos:end]
                pos = end
                continue
            match = _PATTERNS[token.kind].match(text, pos)
            if not match:
                raise ParseError(self.what, pos, token.describe(), show_text(text[pos:]))
            digits = match.group(0)
            value = int(digits, 16) if token.kind in ("x", "pa") else int(digits)
            if not token.minimum <= value <= token.maximum:
                raise ParseError(self.what, pos, f"{token.describe()} within {token.bits} bits", show_text(digits))
            values[token.name] = value
            pos = match.end()
        if pos != len(text):
            raise ParseError(self.what, pos, "end of input", show_text(text[pos:]))
        return values

    def _string_end(self, text: str, pos: int, k: int) -> int:
        """Where a ``%s`` ends: before the literal that follows it."""
        following = self.tokens[k + 1] if k + 1 < len(self.tokens) else None
        if following is None:
            return len(text)
        if not isinstance(following, str):
            raise ValueError(f"{self.what}: %s must be followed by literal text in {self.fmt!r}")
        # The last field of a line: its closing literal is the end of the text.
        last = k + 2 == len(self.tokens)
        end = text.rfind(following, pos) if last else text.find(following, pos)
        return len(text) if end < 0 else end


class ByteRange(namedtuple("ByteRange", ("name", "start", "length"))):
    """A named (start, length) pair inside a multi-value read format: the names of its two fields."""

    __slots__ = ()


class ReadFormat(namedtuple("ReadFormat", ("printf", "ranges"), defaults=((),))):
    """What a read returns: the kernel's printf format with named fields, and the ranges among them."""

    __slots__ = ()
    printf: PrintfFormat
    ranges: tuple[ByteRange, ...]

    def format(self, values: dict[str, int | str]) -> str:
        return self.printf.format(values)

    def parse(self, text: str | bytes) -> dict[str, int | str]:
        return self.printf.parse(text)

    def ranges_of(self, values: dict[str, int | str]) -> list[dict[str, int | str]]:
        """The (name, start, length) pairs in *values*, in format order."""
        return [
            {"name": r.name, "start": values[r.start], "length": values[r.length]}
            for r in self.ranges
        ]

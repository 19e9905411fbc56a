"""How the kernel reads numbers out of a sysfs write buffer.

A model of the kernel's own ``vsscanf`` (integer conversions) and ``kstrto*``
helpers from ``lib/vsprintf.c`` and ``lib/kstrtox.c``, written from their
documented behaviour. Both work on the raw bytes userspace wrote: sysfs hands
the store method a NUL-terminated copy, so scanning stops at the first NUL.

Behaviour worth knowing (each one is tested):

* ``%x`` conversions skip leading white space, accept an optional ``0x`` or
  ``0X`` prefix and stop at the first non-hex character; digits alone are hex
  (``1024`` is 0x1024). A sign character stops the scan (unlike glibc).
* ``0x`` followed by no hex digit still converts, to 0, and scanning resumes
  after the prefix: ``"0x 20"`` scans as (0, 0x20).
* Overflow is not detected by ``vsscanf``: the value keeps the low 64 bits.
* White space in the format matches any amount of white space, including none;
  the kernel's ``isspace`` also counts byte 0xA0 (Latin-1 no-break space).
* ``kstrto*`` accept an optional sign, base auto-detection with base 0
  (``0x`` hex, leading ``0`` octal), a single trailing newline, and nothing else.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from .errors import ParseError, show_text

# The kernel's ctype table marks these bytes as white space (_S), 0xA0 included.
_SPACE = frozenset(b" \t\n\v\f\r\xa0")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DEC = frozenset(b"0123456789")

ULLONG_MASK = (1 << 64) - 1

# (signed, bits) of each C integer type on the 64-bit kernels the ABI runs on.
_QUALIFIER_TYPES = {
    "hh": (8,), "h": (16,), "": (32,), "l": (64,), "ll": (64,), "L": (64,), "z": (64,),
}


def _digit_value(byte: int) -> int:
    if 48 <= byte <= 57:
        return byte - 48
    low = byte | 0x20
    if 97 <= low <= 102:
        return low - 87
    return 99


def c_string(buf: bytes) -> bytes:
    """The part of *buf* a C string function sees: up to the first NUL."""
    nul = buf.find(b"\0")
    return buf if nul < 0 else buf[:nul]


def fixup_radix(buf: bytes, pos: int, base: int) -> tuple[int, int]:
    """Choose the base (when 0) and skip a ``0x`` prefix, as the kernel does.

    Returns ``(new_pos, base)``. With base 0, ``0x`` is taken as hex only when a
    hex digit follows; with base 16 the prefix is skipped regardless.
    """
    at = buf[pos:pos + 3]
    if base == 0:
        if at[:1] == b"0":
            base = 16 if at[1:2] in (b"x", b"X") and at[2:3] and at[2] in _HEX else 8
        else:
            base = 10
    if base == 16 and at[:1] == b"0" and at[1:2] in (b"x", b"X"):
        pos += 2
    return pos, base


def parse_digits(buf: bytes, pos: int, base: int) -> tuple[int, int, bool]:
    """Read digits of *base* from *pos*: ``(value mod 2**64, end, overflowed)``."""
    value = 0
    overflow = False
    end = pos
    while end < len(buf):
        digit = _digit_value(buf[end])
        if digit >= base:
            break
        value = value * base + digit
        if value > ULLONG_MASK:
            overflow = True
            value &= ULLONG_MASK
        end += 1
    return value, end, overflow


@dataclass(frozen=True)
class Conversion:
    """One ``%`` conversion of a scanf format: qualifier, letter and field name."""

    qualifier: str
    letter: str
    field: str

    @property
    def base(self) -> int:
        return {"x": 16, "X": 16, "o": 8, "d": 10, "u": 10, "i": 0}[self.letter]

    @property
    def signed(self) -> bool:
        return self.letter in "di"

    @property
    def bits(self) -> int:
        return _QUALIFIER_TYPES[self.qualifier][0]

    def describe(self) -> str:
        kind = {16: "hex digits", 8: "octal digits", 10: "decimal digits", 0: "a number"}[self.base]
        return f"{kind} for {self.field}" if self.field else kind


def parse_scanf_format(fmt: str, fields: list[str] | tuple[str, ...] = ()) -> list[Conversion | str]:
    """Split a scanf format into literal text and integer conversions.

    Only the integer conversions (d i u x X o with h hh l ll z qualifiers) are
    supported: they are all the dump ABI uses. *fields* names the conversions
    in order (for messages); missing names default to ``value1``, ``value2``...
    """
    items: list[Conversion | str] = []
    i = 0
    count = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            items.append(ch)
            i += 1
            continue
        j = i + 1
        qual = ""
        for q in ("hh", "ll", "h", "l", "L", "z"):
            if fmt.startswith(q, j):
                qual = q
                j += len(q)
                break
        if j >= len(fmt) or fmt[j] not in "diuxXo":
            raise ValueError(f"unsupported scanf conversion {fmt[i:j + 1]!r} in {fmt!r}")
        name = fields[count] if count < len(fields) else f"value{count + 1}"
        items.append(Conversion(qual, fmt[j], name))
        count += 1
        i = j + 1
    return items


@dataclass(frozen=True)
class ScanResult:
    """What ``sscanf`` returned: the converted values, in order, and where it stopped.

    ``stop`` is the offset at which scanning ended; ``expected`` says what the
    next conversion needed there (empty when every conversion succeeded).
    """

    values: tuple[int, ...]
    stop: int
    expected: str


def kernel_sscanf(buf: bytes, fmt: str, fields: list[str] | tuple[str, ...] = ()) -> ScanResult:
    """Scan *buf* with format *fmt* the way the kernel's ``sscanf`` does."""
    buf = c_string(buf)
    items = parse_scanf_format(fmt, fields)
    values: list[int] = []
    pos = 0
    k = 0
    while k < len(items):
        item = items[k]
        if isinstance(item, str):
            if item.isspace():
                # White space in the format matches any run of white space.
                while k < len(items) and isinstance(items[k], str) and items[k].isspace():
                    k += 1
                while pos < len(buf) and buf[pos] in _SPACE:
                    pos += 1
                continue
            if pos >= len(buf) or buf[pos] != ord(item):
                return ScanResult(tuple(values), pos, repr(item))
            pos += 1
            k += 1
            continue
        conv = item
        if pos >= len(buf):
            return ScanResult(tuple(values), pos, conv.describe())
        while pos < len(buf) and buf[pos] in _SPACE:
            pos += 1
        start = pos
        first = buf[pos] if pos < len(buf) else 0
        negative = conv.signed and first == ord("-")
        if negative:
            first = buf[pos + 1] if pos + 1 < len(buf) else 0
        ok = {16: first in _HEX, 8: first in b"01234567", 10: first in _DEC, 0: first in _DEC}[conv.base]
        if not first or not ok:
            return ScanResult(tuple(values), start, conv.describe())
        if negative:
            pos += 1
        pos, base = fixup_radix(buf, pos, conv.base)
        value, pos, _overflow = parse_digits(buf, pos, base)
        if negative:
            value = -value
        mask = (1 << conv.bits) - 1
        value &= mask
        if conv.signed and value >> (conv.bits - 1):
            value -= 1 << conv.bits
        values.append(value)
        k += 1
    return ScanResult(tuple(values), pos, "")


class KstrtoxError(ParseError):
    """A ``kstrto*`` failure; ``errno`` is what the kernel helper returned."""

    def __init__(self, what: str, offset: int, expected: str, found: str, err: int) -> None:
        super().__init__(what, offset, expected, found)
        self.errno = err


def _kstrtoull(buf: bytes, pos: int, base: int, what: str) -> int:
    start = pos
    pos, base = fixup_radix(buf, pos, base)
    value, end, overflow = parse_digits(buf, pos, base)
    if end == pos:
        raise KstrtoxError(what, start, "a number", show_text(buf[start:]), errno.EINVAL)
    if overflow:
        raise KstrtoxError(what, start, "a number that fits 64 bits", show_text(buf[start:end]), errno.ERANGE)
    if buf[end:end + 1] == b"\n":
        end += 1
    if end != len(buf):
        raise KstrtoxError(what, end, "end of input (one newline allowed)", show_text(buf[end:]), errno.EINVAL)
    return value


def kstrtoull(buf: bytes, base: int = 0, what: str = "value") -> int:
    """The kernel's ``kstrtoull``: whole-buffer unsigned parse (``+`` allowed)."""
    buf = c_string(buf)
    pos = 1 if buf[:1] == b"+" else 0
    return _kstrtoull(buf, pos, base, what)


def kstrtoll(buf: bytes, base: int = 0, what: str = "value") -> int:
    """The kernel's ``kstrtoll``: optional sign, then as :func:`kstrtoull`."""
    buf = c_string(buf)
    if buf[:1] == b"-":
        magnitude = _kstrtoull(buf, 1, base, what)
        if magnitude > 1 << 63:
            raise KstrtoxError(what, 0, "a number that fits 64 bits", show_text(buf), errno.ERANGE)
        return -magnitude
    value = kstrtoull(buf, base, what)
    if value >= 1 << 63:
        raise KstrtoxError(what, 0, "a number that fits 64 bits", show_text(buf), errno.ERANGE)
    return value


def kstrtoint(buf: bytes, base: int = 0, what: str = "value") -> int:
    """The kernel's ``kstrtoint``: :func:`kstrtoll` limited to a C ``int``."""
    value = kstrtoll(buf, base, what)
    if not -(1 << 31) <= value < 1 << 31:
        raise KstrtoxError(what, 0, "a number that fits an int", show_text(c_string(buf)), errno.ERANGE)
    return value


def kstrtoul(buf: bytes, base: int = 0, what: str = "value") -> int:
    """The kernel's ``kstrtoul`` on a 64-bit kernel (same as :func:`kstrtoull`)."""
    return kstrtoull(buf, base, what)


KSTRTOX = {"kstrtoint": kstrtoint, "kstrtoul": kstrtoul, "kstrtoull": kstrtoull, "kstrtoll": kstrtoll}

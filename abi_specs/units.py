"""The one grammar of byte sizes, for manifests, command lines and fault plans.

``4096``, ``0x1000``, ``64K``, ``256 MiB``, ``4GB``, ``1_048_576``: a decimal or
``0x`` hex number, optional ``_`` separators, optional white space, and an
optional unit. Units are binary whether or not they carry an ``i`` (``K`` =
``KB`` = ``KiB`` = 1024) and ``B`` is optional, because that is how dump sizes
are talked about. :func:`format_size` writes sizes back the short way.
"""

from __future__ import annotations

import re

_UNITS = {"": 1, "b": 1}
for _power, _letter in enumerate("kmgtp", start=1):
    for _suffix in (_letter, f"{_letter}b", f"{_letter}ib"):
        _UNITS[_suffix] = 1 << (10 * _power)
_SIZE = re.compile(r"^\s*(0[xX][0-9a-fA-F_]+|[0-9][0-9_]*)\s*([A-Za-z]*)\s*$")
EXAMPLES = "4096, 0x1000, 64K, 512M, 4G, 1TiB"


def parse_size(text: str | int) -> int:
    """Bytes in *text* (see the module docstring); ValueError with a one-line message otherwise."""
    if isinstance(text, bool):
        raise ValueError(f"cannot read {text!r} as a size (e.g. {EXAMPLES})")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"negative size {text}")
        return text
    m = _SIZE.match(str(text))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS or m.group(1).endswith("_"):
        raise ValueError(f"cannot read {text!r} as a size (e.g. {EXAMPLES})")
    return int(m.group(1).replace("_", ""), 0) * _UNITS[unit]


def format_size(n: int) -> str:
    """*n* bytes the short way a person writes it: ``4 GiB``, ``768 MiB``, ``1.75 GiB``, ``100 B``."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            # Whole units print exactly; anything else with two decimals.
            return f"{n // scale} {unit}" if n % scale == 0 else f"{n / scale:.2f} {unit}"
    return f"{n} B"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 page``, ``2 pages``: a count with its noun in the right number."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"

"""Typed access to parsed TOML, with one-line errors that name the file and the key.

The spec files, fixture manifests and imported-core manifests are all TOML
written by people; a mistake in any of them must come back as one line
``FILE: key.path: problem``. :class:`TableReader` walks a parsed table and
raises the error class its caller chose, so every loader reports alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .errors import AbiError
from .units import EXAMPLES, parse_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

ErrorFactory = Callable[[str, str, str], AbiError]


def read_toml(path: Path, error: ErrorFactory) -> dict[str, Any]:
    """Parse the TOML file *path*; unreadable or invalid files raise ``error(path, "", problem)``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(str(path), "", f"cannot read: {exc.strerror}") from None
    return parse_toml(raw, str(path), error)


def parse_toml(raw: bytes | str, source: str, error: ErrorFactory) -> dict[str, Any]:
    """Parse TOML text; invalid text raises ``error(source, "", problem)``."""
    import tomllib  # here, not at the top: a quick command loading the cached spec parses no TOML

    try:
        return tomllib.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError as exc:
        raise error(source, "", f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(source, "", f"not valid TOML: {exc}") from None


def _type_name(kind: type | tuple[type, ...]) -> str:
    return kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)


class TableReader:
    """One table of a TOML document: typed getters whose errors name ``source: key``."""

    def __init__(self, source: str, key: str, table: Any, error: ErrorFactory) -> None:
        self.source, self.key, self.error = source, key, error
        if not isinstance(table, dict):
            raise error(source, key, f"expected a table, got {type(table).__name__}")
        self.table: dict[str, Any] = table

    def path(self, key: str) -> str:
        """The dotted path of *key* inside this table."""
        return f"{self.key}.{key}" if self.key else key

    def fail(self, key: str, problem: str) -> AbiError:
        """The error for *key* (not raised: ``raise reader.fail(...)``)."""
        return self.error(self.source, self.path(key) if key else self.key, problem)

    def check_keys(self, allowed: Iterable[str]) -> None:
        """Fail on the first key not in *allowed*."""
        allowed = set(allowed)
        unknown = sorted(set(self.table) - allowed)
        if unknown:
            raise self.fail(unknown[0], f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def require(self, *keys: str) -> None:
        """Fail on the first of *keys* that is missing."""
        for key in keys:
            if key not in self.table:
                raise self.fail(key, "missing required key")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        """The value of *key*, checked to be of *kind* (a bool is never an int)."""
        if key not in self.table:
            if required:
                raise self.fail(key, "missing required key")
            return default
        value = self.table[key]
        is_int_wanted = kind is int or (isinstance(kind, tuple) and int in kind and bool not in kind)
        if not isinstance(value, kind) or (isinstance(value, bool) and is_int_wanted):
            raise self.fail(key, f"expected {_type_name(kind)}, got {type(value).__name__} {value!r}")
        return value

    def string(self, key: str, default: str | None = None, required: bool = False) -> str:
        return self.get(key, str, default, required)

    def strings(self, key: str, required: bool = False) -> tuple[str, ...]:
        """A string or an array of strings, as a tuple."""
        value = self.get(key, (list, str), [], required)
        if isinstance(value, str):
            return (value,)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{key}[{i}]", f"expected a string, got {item!r}")
        return tuple(value)

    def size(self, key: str, default: int | None = None, required: bool = False) -> int:
        """A non-negative integer, or a size string such as ``"4 GiB"`` (see :mod:`abi_specs.units`)."""
        value = self.get(key, (int, str), default, required)
        return self.size_value(value, key)

    def size_value(self, value: Any, key: str) -> int:
        """Check one size value (an element of an array, say) named *key* in errors."""
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.fail(key, f"expected an integer or a size string, got {type(value).__name__}")
        try:
            return parse_size(value)
        except ValueError:
            if isinstance(value, int):
                raise self.fail(key, f"negative value {value}") from None
            raise self.fail(key, f"cannot read {value!r} as a number or size (e.g. {EXAMPLES})") from None

    def array(self, key: str, required: bool = False) -> list[Any]:
        return self.get(key, list, [], required)

    def sub(self, key: str, default: Any = None, required: bool = False) -> TableReader:
        """The sub-table *key* (an empty one when absent and not required)."""
        value = self.table.get(key, {} if default is None else default)
        if key not in self.table and required:
            raise self.fail(key, "missing required key")
        return TableReader(self.source, self.path(key), value, self.error)

    def items(self, key: str) -> list[TableReader]:
        """Readers of each table in the array of tables *key*."""
        return [TableReader(self.source, f"{self.path(key)}[{i}]", t, self.error) for i, t in enumerate(self.array(key))]

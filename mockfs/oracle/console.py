"""The guest's records, parsed from the serial console: ``@@ABI`` lines framed per state."""

from __future__ import annotations

import base64
import errno as errno_mod
import gzip
import os
from collections.abc import Iterable
from typing import Any

from .profiles import OracleError

# Parsing the recorded state
# --------------------------------------------------------------------------

_STRERROR_TO_NAME = {os.strerror(n): name for n, name in errno_mod.errorcode.items()}


def _errno_from_message(message: str) -> dict[str, str | None]:
    """Turn ``sh: write error: Invalid argument`` into phase and errno name."""
    message = message.strip()
    if not message:
        return {"phase": None, "errno": None}
    if "can't create" in message:
        phase = "open"
    else:
        phase = "write" if "write error" in message else "other"
    text = message.rsplit(": ", 1)[-1]
    return {"phase": phase, "errno": _STRERROR_TO_NAME.get(text)}


def _convert(field: str, value: str) -> Any:
    if field == "rc" or field.endswith("_rc") or field == "length":
        try:
            return int(value.strip())
        except ValueError:
            return value
    return value


def _structure(raw: dict[str, str]) -> dict[str, Any]:
    """Nest ``file#PATH#field`` / ``write#N#field`` / ``a#b`` keys."""
    state: dict[str, Any] = {}
    files: dict[str, dict[str, Any]] = {}
    writes: dict[int, dict[str, Any]] = {}
    for key, value in raw.items():
        parts = key.split("#")
        if parts[0] == "file" and len(parts) == 3:
            entry = files.setdefault(parts[1], {})
            if parts[2] == "stat":
                entry.update(_parse_stat(value))
            else:
                entry[parts[2]] = _convert(parts[2], value)
        elif parts[0] == "write" and len(parts) == 3:
            writes.setdefault(int(parts[1]), {})[parts[2]] = _convert(parts[2], value)
        elif len(parts) == 2:
            state.setdefault(parts[0], {})[parts[1]] = _convert(parts[1], value)
        else:
            state[key] = _convert(key, value)
    for entry in writes.values():
        entry.update(_errno_from_message(entry.get("error", "")))
    if files:
        state["files"] = dict(sorted(files.items()))
    if writes:
        state["writes"] = [writes[n] for n in sorted(writes)]
    return state


def _parse_stat(value: str) -> dict[str, Any]:
    if value == "absent":
        return {"present": False}
    mode, uid, gid, size, ftype = value.split(" ", 4)
    return {
        "present": True,
        "mode": mode,
        "uid": int(uid),
        "gid": int(gid),
        "size": int(size),
        "type": ftype,
    }


def _decode(key: str, chunks: list[str]) -> tuple[str, str]:
    """Join and decode one value; binary values (NUL, not UTF-8) become ``<key>_hex``."""
    data = base64.b64decode("".join(chunks))
    if key.endswith("@gz"):
        key, data = key[:-3], gzip.decompress(data) if data else b""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return key + "_hex", data.hex()
    if "\0" in text:
        return key + "_hex", data.hex()
    return key, text


def parse_serial_log(lines: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Parse ``@@ABI`` records into ``{state: structured dict}``.

    Raises OracleError when a block is cut off or its key count is wrong
    (which would mean kernel output corrupted a record).
    """
    raw: dict[str, dict[str, list[str]]] = {}
    ended: set[str] = set()
    for line in lines:
        line = line.strip()
        if line.startswith("@@ABI-BEGIN "):
            raw[line.split()[1]] = {}
        elif line.startswith("@@ABI-END "):
            _, name, count = line.split()
            if len(raw.get(name, {})) != int(count):
                raise OracleError(
                    f"state {name}: {len(raw.get(name, {}))} keys on the console,"
                    f" guest sent {count}"
                )
            ended.add(name)
        elif line.startswith("@@ABI "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[1] not in raw:
                raise OracleError(f"malformed record line: {line[:120]!r}")
            _, name, key, token = parts
            if token == ".":
                raw[name][key] = []
            else:
                raw[name][key].append(token)
    unfinished = set(raw) - ended
    if unfinished:
        raise OracleError(f"state block(s) cut off: {', '.join(sorted(unfinished))}")
    return {
        name: _structure(dict(_decode(k, v) for k, v in keys.items())) for name, keys in raw.items()
    }

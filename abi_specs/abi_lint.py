"""Check a Documentation/ABI tree the way the kernel's ``scripts/get_abi.py validate`` does.

Written from the parser's documented rules (not its code), so that drafts are
known to validate before they are sent:

* a tag is a word in column 0 followed by a colon; it is valid when its lower
  case contains one of what, where, date, kernelversion, contact, description
  or users (a substring match: ``User:`` is not valid);
* an invalid tag outside a description is a warning; inside one it is text;
* ``Where:`` is accepted as ``What:`` with a warning;
* any valid tag before the first ``What:`` of a file is a warning;
* an entry without a description is a warning;
* the same ``What:`` in more than one file is a warning.

One check goes beyond the kernel's, because the kernel's silence there hides
a mistake: a column-0 ``Users``-like word inside a description that is not a
valid tag (``User:``), which the kernel folds into the description text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_TAG = re.compile(r"^(\S+)(:\s*)(.*)")
_VALID = re.compile(r"(what|where|date|kernelversion|contact|description|users)")
_SKIPPED_SUFFIXES = (".rej", ".orig", ".org", ".bak", "~")


@dataclass
class _Entry:
    whats: list[str] = field(default_factory=list)
    line: int = 0
    described: bool = False


def _valid_tag(word: str) -> str | None:
    m = _VALID.search(word.lower())
    return m.group(1) if m else None


def lint_file(path: Path, text: str, defined: dict[str, list[str]]) -> list[str]:
    """Warnings for one ABI file; every What it defines is added to *defined* (what -> places)."""
    warnings: list[str] = []
    entry: _Entry | None = None
    tag = ""

    def close() -> None:
        if entry is not None and not entry.described:
            warnings.append(f"{path}:{entry.line}: {entry.whats[0]} doesn't have a description")

    for n, line in enumerate(text.splitlines(), 1):
        m = _TAG.match(line)
        valid = _valid_tag(m.group(1)) if m else None
        if m and valid is None:
            if tag == "description":
                if m.group(1).lower().startswith("user"):
                    warnings.append(f"{path}:{n}: '{m.group(1)}:' inside a description is text to the kernel, "
                                    "not a Users tag (write 'Users:')\n\t\t" + line)
                continue
            if tag:
                warnings.append(f"{path}:{n}: tag '{tag}' is invalid\n\t\t{line}")
            continue
        if valid is None:
            continue
        if valid == "where":
            warnings.append(f"{path}:{n}: tag 'Where' is invalid. Should be 'What:' instead")
            valid = "what"
        if valid == "what":
            if tag != "what":
                close()
                entry = _Entry(line=n)
            assert entry is not None
            what = m.group(3).strip()
            entry.whats.append(what)
            defined.setdefault(what, []).append(f"{path}:{n}")
        elif entry is None:
            warnings.append(f"{path}:{n}: 'What:' should come first:\n\t\t{line}")
        elif valid == "description":
            entry.described = True
        tag = valid
    close()
    return warnings


def lint_tree(root: Path) -> list[str]:
    """Every warning ``get_abi.py validate`` would print for the tree under *root*, and ours."""
    defined: dict[str, list[str]] = {}
    warnings: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name.startswith(".") or path.name.endswith(_SKIPPED_SUFFIXES) or path.name == "README":
            continue
        warnings += lint_file(path, path.read_text(encoding="utf-8"), defined)
    for what, places in sorted(defined.items()):
        files = {p.rsplit(":", 1)[0] for p in places}
        if len(files) > 1:
            warnings.append(f"{what} is defined {len(places)} times: {'; '.join(places)}")
    return warnings

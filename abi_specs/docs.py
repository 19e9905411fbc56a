"""Render Documentation/ABI entries from the spec.

The layout follows the kernel's ``Documentation/ABI/README``: one file per
attribute group under the directory of its stability level (``testing/``,
``obsolete/``...), no title, and entries of the six tags What, Date,
KernelVersion, Contact, Description and Users, in that order, separated by a
blank line. Everything in an entry comes from the spec: the prose
description, and the facts the spec holds as data (mode, where the file
exists, the read format, the errors a write can fail with).
"""

from __future__ import annotations

from pathlib import Path

from .model import AbiFile, Spec

_INDENT = "\t\t"


def _facts(entry: AbiFile, spec: Spec) -> list[str]:
    """Paragraphs generated from the spec's data, appended to the prose."""
    where = []
    for name in entry.platforms:
        platform = spec.platforms[name]
        states = " and ".join({"capture": "in the capture kernel", "armed": "when armed"}[s] for s in entry.present)
        where.append(f"{platform.title}, {states}")
    access = {0o444: "readable by all", 0o400: "readable by root only", 0o600: "root only",
              0o644: "readable by all, writable by root", 0o200: "writable by root only"}
    lines = [
        f"Mode {entry.mode:04o} ({access.get(entry.mode, entry.mode_text)}). Present on {'; '.join(where)}.",
    ]
    if entry.link_to and entry.link_since:
        lines[0] += f" A symbolic link to /sys/kernel/{entry.link_to} since Linux {entry.link_since}, a file of its own before."
    elif entry.link_to:
        lines[0] += f" A symbolic link to /sys/kernel/{entry.link_to}."
    for state, version in entry.since.items():
        lines[0] += f" In the {state} kernel only since Linux {version}."
    if entry.removed:
        lines[0] += f" Removed in Linux {entry.removed}."
    out = [" ".join(lines)]
    if entry.errors:
        out.append("Writes fail with:\n\n" + "\n".join(f"- {e.errno}: {e.when}" for e in entry.errors))
    return out


def _wrap(text: str, width: int = 64) -> list[str]:
    """Wrap one paragraph: list items get a hanging indent, indented lines stay as they are."""
    lines: list[str] = []
    for raw in text.split("\n"):
        if raw.startswith("  ") or not raw:
            lines.append(raw)
            continue
        item = raw.startswith("- ")
        current = ""
        for word in raw.split():
            if current and len(current) + 1 + len(word) > width:
                lines.append(current)
                current = ("  " if item else "") + word
            else:
                current = f"{current} {word}" if current else word
        lines.append(current)
    return lines


def _reflow(text: str) -> list[str]:
    """The spec's prose as Documentation/ABI lines: each paragraph joined and wrapped to fit 80
    columns after the two-tab indent; indented lines and list items stay as written."""
    lines: list[str] = []
    for n, paragraph in enumerate(text.split("\n\n")):
        if n:
            lines.append("")
        raw = paragraph.split("\n")
        if any(line.startswith(("  ", "- ")) for line in raw):
            lines.extend(_wrap(paragraph))
        else:
            lines.extend(_wrap(" ".join(line.strip() for line in raw)))
    return lines


def render_entry(entry: AbiFile, spec: Spec) -> str:
    """One Documentation/ABI entry for *entry*."""
    paragraphs = [entry.description, *_facts(entry, spec)]
    body: list[str] = []
    for i, paragraph in enumerate(paragraphs):
        if i:
            body.append("")
        body.extend(_reflow(paragraph))
    users = [line for u in entry.users or ["(none known)"] for line in _wrap(u, 60)]
    out = [
        f"What:\t\t{entry.path}/*" if entry.directory else f"What:\t\t{entry.path}",
        f"Date:\t\t{entry.date}",
        f"KernelVersion:\t{entry.kernel_version}",
        f"Contact:\t{entry.contact}",
        "Description:",
        *[f"{_INDENT}{line}" if line else "" for line in body],
        f"Users:\t\t{users[0]}",
        *[f"{_INDENT}{u}" for u in users[1:]],
    ]
    return "\n".join(out) + "\n"


def render_tree(spec: Spec, entries: list[AbiFile] | None = None) -> dict[str, str]:
    """``{relative path: text}`` of every Documentation/ABI file for *entries*."""
    groups: dict[str, list[AbiFile]] = {}
    for entry in entries if entries is not None else spec.files:
        if entry.documented:
            groups.setdefault(f"{entry.stability}/{entry.group}", []).append(entry)
    return {path: "\n".join(render_entry(e, spec) for e in items) for path, items in sorted(groups.items())}


def write_tree(tree: dict[str, str], out: Path) -> list[Path]:
    """Write *tree* under *out*, removing stale rendered files; return the files written."""
    written = []
    for rel, text in tree.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    for stale in _existing(out) - set(tree):
        (out / stale).unlink()
    return written


def _existing(out: Path) -> set[str]:
    if not out.is_dir():
        return set()
    return {p.relative_to(out).as_posix() for p in out.glob("*/*") if p.is_file()}


def first_difference(tree: dict[str, str], out: Path) -> str | None:
    """The first file under *out* that differs from *tree* (missing, changed or extra)."""
    for rel, text in tree.items():
        target = out / rel
        if not target.is_file():
            return f"{target}: missing"
        if target.read_text(encoding="utf-8") != text:
            return f"{target}: differs from the spec"
    extra = sorted(_existing(out) - set(tree))
    if extra:
        return f"{out / extra[0]}: not generated from the spec"
    return None

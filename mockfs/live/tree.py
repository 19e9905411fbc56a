"""The tree a live machine shows: which ABI files exist now, as directories, files and links."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from abi_specs import AbiFile


@dataclass(frozen=True)
class Node:
    """One entry of the mock tree: a directory, an ABI file or a symbolic link."""

    kind: str  # "dir", "file" or "link"
    mode: int
    entry: AbiFile | None = None
    target: str = ""


def rel(path: str) -> str:
    """A canonical path relative to the mount root."""
    return path.lstrip("/")


def build_tree(files: Iterable[AbiFile]) -> dict[str, Node]:
    """Every entry of the tree holding *files*, by path relative to the mount root."""
    tree: dict[str, Node] = {"": Node("dir", 0o755)}
    for f in files:
        path = rel(f.path)
        parts = path.split("/")
        for i in range(1, len(parts)):
            tree.setdefault("/".join(parts[:i]), Node("dir", 0o755))
        kind = "link" if f.link_to else "dir" if f.directory else "file"
        tree[path] = Node(kind, 0o777 if f.link_to else f.mode, f, f.link_to)
    return tree

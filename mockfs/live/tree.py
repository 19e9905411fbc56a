"""The tree a live machine shows: which ABI files exist now, as directories, files and links."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from abi_specs import AbiFile
from abi_specs.versions import KernelVersion


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


def build_tree(files: Iterable[AbiFile], version: KernelVersion | None = None) -> dict[str, Node]:
    """Every entry of the tree holding *files* in a kernel of *version*, by path relative to the mount root.

    A file that became a symlink later (the flat fadump_* names, links since
    5.7) is a plain file, with its target's mode, in kernels before that.
    """
    files = list(files)
    by_name = {f.name: f for f in files}
    tree: dict[str, Node] = {"": Node("dir", 0o755)}
    for f in files:
        path = rel(f.path)
        parts = path.split("/")
        for i in range(1, len(parts)):
            tree.setdefault("/".join(parts[:i]), Node("dir", 0o755))
        if f.is_link_in(version):
            tree[path] = Node("link", 0o777, f, f.link_to)
        elif f.link_to:
            target = by_name.get(f.link_to)  # link_to names the target by its spec name
            tree[path] = Node("file", target.mode if target else f.mode, f)
        else:
            tree[path] = Node("dir" if f.directory else "file", f.mode, f)
    return tree


"""The one reader of /proc/PID/mountinfo (builtin modules only: the runner uses it too).

Mount points there are escaped octal-style: space ``\\040``, tab ``\\011``,
newline ``\\012`` and backslash ``\\134``.
"""

from __future__ import annotations


def escape(path: str) -> str:
    """*path* as mountinfo writes it."""
    return path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")


def unescape(field: str) -> str:
    """A mountinfo field back to the path it names."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and len(field[i + 1:i + 4]) == 3:
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(pid: int | str = "self", proc: str = "/proc") -> list[str]:
    """Every mount point in the mount namespace of *pid*, unescaped, in mountinfo order."""
    try:
        with open(f"{proc}/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            return [unescape(line.split(" ", 5)[4]) for line in f if line.count(" ") >= 5]
    except OSError:
        return []


def mounts(pid: int | str = "self", proc: str = "/proc") -> list[tuple[str, str, list[str], str]]:
    """(mount point, fstype, per-mount options, source) of each mount of *pid*'s namespace.

    Raises OSError when mountinfo cannot be read and ValueError when a line has no ``-`` separator.
    """
    out = []
    with open(f"{proc}/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-") if "-" in fields else -1
            if sep < 6 or len(fields) < sep + 3:
                raise ValueError(f"mountinfo line without its fields: {line.strip()!r}")
            out.append((unescape(fields[4]), fields[sep + 1], fields[5].split(","), unescape(fields[sep + 2])))
    return out


def is_mount_point(path: str, pid: int | str = "self", proc: str = "/proc") -> bool:
    """Whether *path* (already resolved) is a mount point in the mount namespace of *pid*."""
    return path in mount_points(pid, proc)


def mounts_under(root: str, pid: int | str = "self") -> list[str]:
    """Mount points at or below *root*, deepest first."""
    found = [m for m in mount_points(pid) if m == root or m.startswith(root.rstrip("/") + "/")]
    return sorted(found, key=len, reverse=True)

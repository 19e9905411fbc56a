"""The sealed root file system a runner builds, then pivots into (builtin modules only).

* ``/`` is an overlay: the host's root below, the machine's directory above,
  so every write outside the binds lands in the machine, never on the host;
* ``/dev`` is the host's, but ``/dev/shm`` is private and ``/dev/kmsg`` closed (bound nodev);
* ``/sys`` is the host's, read-only, with the mock's /sys/kernel files merged in
  (:func:`merge_sys`: /sys/kernel and /sys/devices/system/{cpu,memory});
* ``/proc`` is the runner's FUSE overlay (:mod:`mockfs.fuse.procfs`) with the
  machine's files bound over their names: vmcore, sysrq-trigger, sys, iomem...;
* the output directory and extra binds are the host's own, by design.

Each step raises :class:`SetupError` naming the seal it could not put in place:
the runner then refuses to run anything.
"""

from __future__ import annotations

import os
import stat

from .binds import sealed_tree
from .syscalls import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT, make_readonly_recursive, mount


class SetupError(Exception):
    """A seal or mount could not be set up; the caller reports it as a NamespaceError."""


def _seal(what: str, action, *args) -> None:  # type: ignore[no-untyped-def]
    try:
        action(*args)
    except OSError as exc:
        raise SetupError(f"cannot seal {what}: {exc.strerror or exc}") from None


def overlay_root(newroot: str, upper: str, work: str) -> None:
    """The host's root, read-only underneath the machine's writable layer, at *newroot*."""
    for d in (upper, work):
        os.makedirs(d, mode=0o700, exist_ok=True)
    if in_user_namespace():
        _overlay_each_top_directory(newroot, upper, work)
        return
    _seal("the root file system (overlayfs over /)", mount, "abi-harness-root", newroot, "overlay", 0,
          f"lowerdir=/,upperdir={upper},workdir={work}")


#: What the runner builds itself, whatever the root holds there.
_SEALED_ELSEWHERE = ("proc", "sys", "dev")


def _overlay_each_top_directory(newroot: str, upper: str, work: str) -> None:
    """Rootless mode: the kernel refuses an overlay whose lower layer hides mounts it locked (every
    mount a user namespace inherits), so each directory of / gets its own overlay instead, a
    directory holding such mounts a read-only bind (writes there fail), and the links of /
    (``/bin -> usr/bin``) are made again."""
    from .mountinfo import mount_points

    mount("abi-harness-root", newroot, "tmpfs", MS_NOSUID, "mode=755")
    inherited = [m for m in mount_points() if m != "/"]
    for name in sorted(os.listdir("/")):
        source, target = f"/{name}", f"{newroot}/{name}"
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
            continue
        if not os.path.isdir(source):
            bind_into(newroot, source, recursive=False)
            continue
        os.mkdir(target)
        if name in _SEALED_ELSEWHERE:
            continue
        if any(m == source or m.startswith(source + "/") for m in inherited):
            bind_into(newroot, source)
            make_readonly_recursive(target)
            continue
        for d in (f"{upper}/{name}", f"{work}/{name}"):
            os.makedirs(d, mode=0o755, exist_ok=True)
        _seal(f"the root file system (overlayfs over {source})", mount, "abi-harness-root", target, "overlay", 0,
              f"lowerdir={source},upperdir={upper}/{name},workdir={work}/{name},userxattr")
        # overlayfs makes its scratch directory mode 0 and works in it with the mounter's rights whatever its
        # mode: opened to its owner, an ordinary user can remove the machine (or the run's scratch) later.
        if os.path.isdir(f"{work}/{name}/work"):
            os.chmod(f"{work}/{name}/work", 0o700)


def in_user_namespace() -> bool:
    """Whether this process runs in a user namespace of its own (rootless mode)."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


#: Links followed while resolving one bind target, as the kernel allows a path (ELOOP beyond).
MAX_LINKS = 40


def resolve_in_root(newroot: str, path: str) -> str:
    """*path* as a program inside *newroot* will see it: its links followed inside the root.

    A link's absolute target starts from the root's top and ``..`` never climbs
    above it, as after the pivot; resolution stops at the first component that
    does not exist yet (the bind creates the rest as directories). The mount
    syscall itself would follow links from the runner's own root, before the
    pivot: out of the machine, or over a seal.
    """
    parts = [p for p in os.path.normpath(path).split("/") if p]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part in (".", ".."):  # only from a link's target: the path itself is normalised
            if part == ".." and done:
                done.pop()
            continue
        current = newroot + "/" + "/".join([*done, part])
        if os.path.islink(current):
            links += 1
            if links > MAX_LINKS:
                raise SetupError(f"cannot bind at {path}: more than {MAX_LINKS} symbolic links on the way")
            target = os.readlink(current)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        done.append(part)
        if not os.path.lexists(current):
            done += [p for p in parts if p != "."]
            break
    return os.path.normpath("/" + "/".join(done))


def bind_into(newroot: str, source: str, path: str | None = None, recursive: bool = True) -> str:
    """Bind *source* at the same *path* (default: its own) inside *newroot*; returns the target.

    Links on the way are followed inside the root (:func:`resolve_in_root`). A
    kept machine's overlay keeps the links its programs made, so one that leads
    a later bind into a sealed tree is refused.
    """
    wanted = os.path.normpath(path or source)
    inner = resolve_in_root(newroot, wanted)
    if inner != wanted and (seal := sealed_tree(inner)):
        raise SetupError(f"cannot bind at {wanted}: its symbolic links lead to {inner}, and a bind there would undo "
                         f"the seal of {seal}")
    target = newroot + inner
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    elif not os.path.lexists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    return target


def seal_dev(newroot: str) -> None:
    """The host's /dev, with a private /dev/shm and a closed /dev/kmsg.

    A read-only mount does not stop writes to a device node, so /dev/kmsg is
    bound ``nodev``: opening it fails (EACCES) and nothing reaches the host's log.
    """
    bind_into(newroot, "/dev")
    _seal("/dev/shm", mount, "shm", newroot + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    kmsg = newroot + "/dev/kmsg"
    if os.path.exists(kmsg):
        _seal("/dev/kmsg", mount, kmsg, kmsg, None, MS_BIND)
        _seal("/dev/kmsg", mount, None, kmsg, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NODEV | MS_NOSUID)


def seal_sys(newroot: str) -> None:
    """The host's /sys, read-only all the way down (power, modules, everything)."""
    bind_into(newroot, "/sys")
    _seal("/sys (read-only)", make_readonly_recursive, newroot + "/sys")


def graft(source: str, target: str) -> None:
    """Make *target* show *source*: a bind for files and directories, a copy for symlinks."""
    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
    elif os.path.isdir(source):
        os.mkdir(target)
        mount(source, target, None, MS_BIND | MS_REC)
    else:
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        mount(source, target, None, MS_BIND)


def _is_plain_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def merge(real: str, mock: str, target: str) -> None:
    """Fill the empty tmpfs directory *target* with the union of *real* and *mock*.

    A directory both sides have is merged one level down (its files from the
    mock, the rest real); any other clash goes to the mock.
    """
    mock_names = os.listdir(mock)
    for name in os.listdir(real):
        if name not in mock_names:
            graft(os.path.join(real, name), os.path.join(target, name))
    for name in mock_names:
        real_entry, mock_entry, here = os.path.join(real, name), os.path.join(mock, name), os.path.join(target, name)
        if _is_plain_dir(real_entry) and _is_plain_dir(mock_entry):
            os.mkdir(here)
            merge(real_entry, mock_entry, here)
        else:
            graft(mock_entry, here)


#: The /sys directories a machine may add files to (its dump ABI lives there).
SYS_MERGED = ("sys/kernel", "sys/devices/system/cpu", "sys/devices/system/memory")


def merge_sys(newroot: str, mock: str) -> None:
    """Lay the mock's files into each directory of :data:`SYS_MERGED` it has files for."""
    for rel in SYS_MERGED:
        source = os.path.join(mock, rel)
        if os.path.isdir(source) and os.path.isdir(f"{newroot}/{rel}"):
            merge_sys_dir(newroot, source, rel)


def merge_sys_dir(newroot: str, mock_dir: str, rel: str = "sys/kernel") -> None:
    """A tmpfs at /*rel* holding the (read-only) real entries and the mock's files."""
    real = f"{newroot}/{rel}"
    saved = f"{newroot}/{rel.replace('/', '-')}-real"  # on the overlay: the machine's layer, not the host
    os.makedirs(saved, exist_ok=True)
    mount(real, saved, None, MS_BIND | MS_REC)
    mount("sysfs-mock", real, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
    merge(saved, mock_dir, real)
    from .syscalls import umount_lazy

    umount_lazy(saved)
    os.rmdir(saved)


def _kernel_like_vmcore(path: str, mode: int) -> bool:
    """Whether the mock's vmcore already has the kernel's owner and mode, so a bind keeps them."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_uid == 0 and stat.S_IMODE(st.st_mode) == mode


def bind_proc_entries(newroot: str, mock_proc: str, real_proc: str, names: tuple[str, ...], vmcore_mode: int) -> None:
    """Bind the machine's /proc files over the overlay's entries; seal the ones the mock lacks.

    A mock without /proc/sys or /proc/sysrq-trigger still gets them sealed:
    read-only binds of the host's, so writes fail with EROFS instead of
    reaching the host kernel.
    """
    for name in names:
        source = os.path.join(mock_proc, name)
        target = f"{newroot}/proc/{name}"
        if name == "vmcore" and not _kernel_like_vmcore(source, vmcore_mode):
            continue  # the /proc daemon serves it with the kernel's owner and mode instead
        if os.path.lexists(source) and not os.path.islink(source):
            mount(source, target, None, MS_BIND | (MS_REC if os.path.isdir(source) else 0))
        elif name in ("sys", "sysrq-trigger") and os.path.lexists(os.path.join(real_proc, name)):
            real = os.path.join(real_proc, name)
            _seal(f"/proc/{name}", mount, real, target, None, MS_BIND | MS_REC)
            _seal(f"/proc/{name}", make_readonly_recursive, target)


def pivot(newroot: str) -> None:
    """Make *newroot* the root of this mount namespace, and let go of the old one."""
    from .syscalls import pivot_root, umount_lazy

    os.chdir(newroot)
    _seal("the root file system (pivot_root)", pivot_root, ".", ".")
    umount_lazy(".")
    os.chdir("/")

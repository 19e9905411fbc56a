"""Debian packages for the guest (downloaded with apt-get download, unpacked with dpkg-deb -x, never
installed): the kernel, kexec-tools, busybox and the libraries the guest's programs need."""

from __future__ import annotations

import dataclasses
import gzip
import io
import lzma
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from elftools.elf.elffile import ELFFile

from .host import private_dir, run, write_private
from .profiles import KEXEC_PACKAGE, ArchProfile, OracleError

# Debian packages (downloaded, never installed)
# --------------------------------------------------------------------------


def host_debian_arch() -> str:
    """The host's dpkg architecture (``amd64`` on this machine)."""
    return run(["dpkg", "--print-architecture"], what="dpkg --print-architecture").strip()


@dataclasses.dataclass(frozen=True)
class Apt:
    """apt-get/apt-cache for one Debian architecture.

    For the host's own architecture ``options`` is empty (the host's apt
    set-up, read only).  For a foreign architecture every apt call gets a
    private state, cache and status under the oracle's cache, so the host's
    apt configuration and lists are never touched; the sources stay the
    host's.
    """

    arch: str
    options: tuple[str, ...] = ()

    def run(self, tool: str, *args: str, cwd: Path | None = None, what: str) -> str:
        return run([tool, "-q", *self.options, *args], cwd=cwd, what=what)


def apt_for(arch: str, cache: Path) -> Apt:
    """An :class:`Apt` for ``arch``; a foreign one runs a private ``apt-get update`` once."""
    if arch == host_debian_arch():
        return Apt(arch)
    root = private_dir(cache.resolve() / f"apt-{arch}")
    for sub in ("lists/partial", "archives/partial", "state"):
        private_dir(root / sub)
    status = root / "state/status"
    if not status.exists():
        write_private(status, b"")
    options = (
        "-o", f"APT::Architecture={arch}",
        "-o", f"APT::Architectures={arch}",
        "-o", f"Dir::State={root / 'state'}",
        "-o", f"Dir::State::Lists={root / 'lists'}",
        "-o", f"Dir::State::status={status}",
        "-o", f"Dir::Cache={root}",
        "-o", f"Dir::Cache::archives={root / 'archives'}",
        "-o", "Dir::Cache::pkgcache=",
        "-o", "Dir::Cache::srcpkgcache=",
        "-o", "APT::Sandbox::User=root",
        "-o", "Debug::NoLocking=1",
    )  # fmt: skip
    apt = Apt(arch, options)
    if not any((root / "lists").glob("*Packages*")):
        apt.run("apt-get", "update", what=f"private apt-get update for {arch}")
    return apt


def _current_kernel_package(apt: Apt, flavour: str) -> str:
    """Name of the package ``linux-image-<flavour>`` depends on right now."""
    meta = f"linux-image-{flavour}"
    out = apt.run("apt-cache", "depends", meta, what=f"apt-cache depends {meta}")
    for line in out.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-\S+)", line)
        if m:
            return m.group(1)
    raise OracleError(f"apt-cache: {meta} depends on no linux-image")


def _cached_deb(debs: Path, package: str, arch: str) -> Path | None:
    found = sorted(debs.glob(f"{package}_*_{arch}.deb")) or sorted(
        debs.glob(f"{package}_*_all.deb")
    )
    return found[-1] if found else None


def fetch_deb(package: str, cache: Path, apt: Apt) -> Path:
    """Return ``cache/debs/<package>_*_<arch>.deb``, running ``apt-get download`` if absent."""
    debs = private_dir(cache / "debs")
    cached = _cached_deb(debs, package, apt.arch)
    if cached is not None:
        return cached
    apt.run(
        "apt-get",
        "-o",
        "APT::Sandbox::User=root",
        "download",
        package,
        cwd=debs,
        what=f"apt-get download {package} ({apt.arch}; missing from the mirror?)",
    )
    cached = _cached_deb(debs, package, apt.arch)
    if cached is None:
        raise OracleError(f"apt-get download {package} produced no .deb in {debs}")
    return cached


def unpack_deb(deb: Path, cache: Path) -> Path:
    """``dpkg-deb -x`` a package into ``cache/unpacked/<name>`` (once)."""
    if not deb.is_file():
        raise OracleError(f"package file {deb} does not exist")
    root = private_dir(cache / "unpacked")
    dest = root / deb.name.removesuffix(".deb")
    if dest.is_dir():
        return dest
    tmp = root / (dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    private_dir(tmp)
    run(["dpkg-deb", "-x", str(deb), str(tmp)], what=f"dpkg-deb -x {deb.name}")
    tmp.chmod(0o700)
    tmp.rename(dest)
    return dest


def fetch_tree(package: str, cache: Path, apt: Apt) -> Path:
    """Download and unpack ``package``; return the unpacked tree."""
    return unpack_deb(fetch_deb(package, cache, apt), cache)




@dataclasses.dataclass(frozen=True)
class KernelImage:
    """A bootable kernel plus (optionally) its module tree."""

    vmlinuz: Path
    version: str
    modules_dir: Path | None
    source: str


@dataclasses.dataclass(frozen=True)
class KexecTools:
    """The kexec and vmcore-dmesg binaries from an unpacked kexec-tools."""

    kexec: Path
    vmcore_dmesg: Path
    package: str


#: Maps a binary to the libraries it needs as (path in the guest, host file).
LibraryResolver = Callable[[Path], list[tuple[str, Path]]]


@dataclasses.dataclass(frozen=True)
class GuestUserland:
    """busybox and a way to find shared libraries, for the guest's architecture."""

    busybox: Path
    libraries: LibraryResolver


def _kernel_from_tree(tree: Path, source: str, glob: str) -> KernelImage:
    """Find ``boot/<glob>`` and its ``lib/modules/<version>`` in a tree."""
    images = sorted((tree / "boot").glob(glob))
    if not images:
        raise OracleError(f"{source}: no boot/{glob} inside")
    return _kernel_from_image(images[-1], source)


def _kernel_from_image(vmlinuz: Path, source: str) -> KernelImage:
    name = vmlinuz.name
    version = name.split("-", 1)[1] if name.startswith(("vmlinuz-", "vmlinux-")) else ""
    root = vmlinuz.resolve().parent.parent
    modules_dir = None
    for base in (root / "lib/modules", root / "usr/lib/modules", Path("/lib/modules")):
        if version and (base / version).is_dir():
            modules_dir = base / version
            break
    return KernelImage(vmlinuz, version, modules_dir, source)


def resolve_kernel(
    kernel: str | os.PathLike[str] | None, cache: Path, profile: ArchProfile, apt: Apt
) -> KernelImage:
    """Resolve the ``kernel`` argument of :func:`record_vm`.

    ``None`` fetches the package ``linux-image-<flavour>`` currently depends
    on; a ``.deb`` path is unpacked; any other path is taken as the kernel
    image, its modules looked up next to it (``../lib/modules/<version>``).
    """
    if kernel is None:
        package = _current_kernel_package(apt, profile.kernel_flavour)
        deb = fetch_deb(package, cache, apt)
        return _kernel_from_tree(unpack_deb(deb, cache), deb.name, profile.kernel_glob)
    path = Path(kernel)
    if not path.exists():
        raise OracleError(f"kernel {path} does not exist")
    if path.suffix == ".deb":
        return _kernel_from_tree(unpack_deb(path, cache), path.name, profile.kernel_glob)
    return _kernel_from_image(path, str(path))


def find_in(tree: Path, name: str, subdirs: Sequence[str]) -> Path:
    for sub in subdirs:
        if (tree / sub / name).is_file():
            return tree / sub / name
    raise OracleError(f"{tree.name}: no {name} inside")


def resolve_kexec_tools(cache: Path, apt: Apt) -> KexecTools:
    """Fetch and unpack kexec-tools; return its binaries."""
    deb = fetch_deb(KEXEC_PACKAGE, cache, apt)
    tree = unpack_deb(deb, cache)
    dirs = ("sbin", "usr/sbin", "usr/bin")
    return KexecTools(find_in(tree, "kexec", dirs), find_in(tree, "vmcore-dmesg", dirs), deb.name)


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        raise OracleError(f"{path.name}: zstd-compressed modules are not supported")
    return data


def _module_depends(image: bytes) -> list[str]:
    """The ``depends=`` list from a module's ``.modinfo`` section."""
    section = ELFFile(io.BytesIO(image)).get_section_by_name(".modinfo")
    if section is None:
        return []
    for entry in section.data().split(b"\0"):
        if entry.startswith(b"depends="):
            return [d for d in entry[8:].decode().split(",") if d]
    return []


def _module_name(path: Path) -> str:
    return path.name.split(".ko")[0].replace("-", "_")


def resolve_modules(kernel: KernelImage, wanted: Iterable[str]) -> list[tuple[str, bytes]]:
    """Modules ``wanted`` and their dependencies, in load order.

    Debian's package ships no ``modules.dep`` (depmod runs at install time),
    so dependencies come from each module's ``.modinfo``.  Built-in modules
    (``modules.builtin``) are skipped.
    """
    wanted = [w.replace("-", "_") for w in wanted]
    if kernel.modules_dir is None:
        raise OracleError(f"kernel {kernel.source}: no module tree found for {', '.join(wanted)}")
    builtin: set[str] = set()
    builtin_list = kernel.modules_dir / "modules.builtin"
    if builtin_list.is_file():
        builtin = {_module_name(Path(line)) for line in builtin_list.read_text().split()}
    index = {_module_name(p): p for p in kernel.modules_dir.rglob("*.ko*")}
    order: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in seen or name in builtin:
            return
        if name in chain:
            raise OracleError(f"module dependency cycle: {' -> '.join((*chain, name))}")
        if name not in index:
            raise OracleError(f"module {name} not found under {kernel.modules_dir}")
        image = _read_module(index[name])
        for dep in _module_depends(image):
            visit(dep, (*chain, name))
        seen.add(name)
        order.append((name, image))

    for name in wanted:
        visit(name, ())
    return order


def ldd_libraries(binary: Path) -> list[tuple[str, Path]]:
    """Libraries of a host-architecture binary, as ``ldd`` lists them."""
    out = run(["ldd", str(binary)], what=f"ldd {binary.name}")
    libs: list[tuple[str, Path]] = []
    for line in out.splitlines():
        if "not found" in line:
            raise OracleError(f"{binary.name} needs a library the host lacks: {line.strip()}")
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            libs.append((m.group(1), Path(m.group(1)).resolve()))
    return libs


def _elf_needs(binary: Path) -> tuple[list[str], str | None]:
    """(DT_NEEDED names, PT_INTERP path) of an ELF file."""
    with binary.open("rb") as fh:
        elf = ELFFile(fh)
        interp = next(
            (s.get_interp_name() for s in elf.iter_segments() if s["p_type"] == "PT_INTERP"),
            None,
        )
        dynamic = elf.get_section_by_name(".dynamic")
        needed = (
            [t.needed for t in dynamic.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
            if dynamic is not None
            else []
        )
    return needed, interp


def _sysroot_resolver(sysroot: Path) -> LibraryResolver:
    """Resolve libraries from an unpacked foreign libc (no ``ldd`` needed)."""
    libdirs = [p for p in sysroot.glob("lib/*-linux-gnu*") if p.is_dir()]
    libdirs += [sysroot / "lib64", sysroot / "lib", sysroot / "usr/lib"]

    def host_file(name: str) -> Path:
        for d in libdirs:
            candidate = d / name
            if candidate.exists():
                # Symlinks inside the tree are absolute: resolve them in it.
                target = os.readlink(candidate) if candidate.is_symlink() else None
                if target is not None and target.startswith("/"):
                    return sysroot / target.lstrip("/")
                return candidate
        raise OracleError(f"library {name} not found in {sysroot.name}")

    def resolve(binary: Path) -> list[tuple[str, Path]]:
        found: dict[str, Path] = {}
        todo = [binary]
        while todo:
            needed, interp = _elf_needs(todo.pop())
            if interp is not None and interp not in found:
                found[interp] = host_file(Path(interp).name)
            for name in needed:
                host = host_file(name)
                guest = "/" + str(host.relative_to(sysroot))
                if guest not in found:
                    found[guest] = host
                    todo.append(host)
        return list(found.items())

    return resolve


def _is_static(path: Path) -> bool:
    return _elf_needs(path)[1] is None


def guest_userland(profile: ArchProfile, cache: Path, apt: Apt) -> GuestUserland:
    """busybox-static and a library resolver for the guest architecture.

    The host's own busybox and ``ldd`` serve a guest of the host's
    architecture; for a foreign one busybox-static and libc6 of that
    architecture are downloaded and unpacked.
    """
    if not apt.options:
        for candidate in ("/bin/busybox", "/usr/bin/busybox"):
            path = Path(candidate)
            if path.is_file() and _is_static(path):
                return GuestUserland(path, ldd_libraries)
        raise OracleError("no statically linked busybox (Debian package busybox-static)")
    busybox = find_in(fetch_tree("busybox-static", cache, apt), "busybox", ("bin", "usr/bin"))
    return GuestUserland(busybox, _sysroot_resolver(fetch_tree("libc6", cache, apt)))

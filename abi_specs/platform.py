"""The spec's platforms (phyp, fadump, kdump) and the sysfs generations their kernels have."""

from __future__ import annotations

from dataclasses import dataclass, field

from .versions import KernelVersion


@dataclass(frozen=True)
class SysfsEra:
    """How the sysfs of a kernel generation hands writes to store(); every attribute's st_size is PAGE_SIZE."""

    name: str  # "sysfs-2.6" or "kernfs"
    title: str
    since: str  # first kernel version of this era
    store_slack: int  # store() sees at most PAGE_SIZE - store_slack bytes; longer writes are cut
    empty_write: int  # what write(2) of 0 bytes returns (store() is not called)

    def write_limit(self, page_size: int) -> int:
        """Longest write the store method sees; longer writes are cut to this."""
        return page_size - self.store_slack


@dataclass(frozen=True)
class Platform:
    """A dump mechanism (phyp, fadump, kdump) and the kernel generation it lives in."""

    name: str
    title: str
    arches: tuple[str, ...]
    default_arch: str
    states: dict[str, str]
    description: str
    layout: dict[str, int]  # sizing constants of the dump areas (see abi_specs.phyp, abi_specs.fadump)
    kernels: tuple[str, str] = ("2.6.0", "")  # [first, end) kernel versions that have the platform
    default_kernel: str = "5.15.0"  # what a new machine runs unless told otherwise
    # The first kernel of each era of the platform's layout, by name (see abi_specs.fadump).
    eras: dict[str, str] = field(default_factory=dict)
    # Kernel messages by name: (first kernel, str.format text) pairs, oldest first.
    messages: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def in_kernel(self, version: KernelVersion) -> bool:
        """Whether a kernel of *version* has this dump mechanism."""
        first, end = self.kernels
        return KernelVersion.parse(first) <= version and (not end or version < KernelVersion.parse(end))

    def era(self, name: str) -> KernelVersion:
        """The first kernel of the era *name*."""
        try:
            return KernelVersion.parse(self.eras[name])
        except KeyError:
            raise KeyError(f"{self.name} has no era {name!r} (known: {', '.join(self.eras) or 'none'})") from None

    def message(self, name: str, version: KernelVersion, **values: object) -> str:
        """The kernel message *name* as a kernel of *version* prints it, with *values* filled in.

        A version older than every form gets the oldest: whether the platform
        exists in that kernel at all is :meth:`in_kernel`'s question, asked
        when a fixture is checked.
        """
        forms = self.messages[name]
        chosen = [text for since, text in forms if KernelVersion.parse(since) <= version] or [forms[0][1]]
        return chosen[-1].format(**values)

    def kernel_range(self) -> str:
        """The kernels that have it, in words: ``2.6.26 to 3.3`` or ``3.4 and later``."""
        first, end = self.kernels
        return f"{first} and later" if not end else f"{first} up to (not including) {end}"

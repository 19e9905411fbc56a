"""A real kernel as the referee: kdump recorded in a throw-away QEMU guest.

:func:`mockfs.oracle.vm.record_vm` boots an unmodified Debian kernel (its
package downloaded with ``apt-get download`` and unpacked privately, never
installed), arms kdump with ``kexec -p``, crashes the guest with sysrq, and
lets the capture kernel record every dump ABI file the spec knows and copy
``/proc/vmcore`` to a raw virtio disk. Everything that would be dangerous on
the host (kexec, sysrq, sysfs writes) happens only inside the guest's
``/init`` (``guest_init.sh``); the host only runs QEMU and reads its console.

Modules: :mod:`.profiles` (architectures, constants), :mod:`.host` (small
helpers), :mod:`.packages` (Debian packages for the guest), :mod:`.initramfs`
(newc cpio images), :mod:`.guest` (what the guest records, from the spec),
:mod:`.qemu` (the emulator, its console, the KVM probe), :mod:`.console`
(parsing the records), :mod:`.disk` (the vmcore's way out), :mod:`.vm`.
"""

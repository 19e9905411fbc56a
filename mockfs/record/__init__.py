"""Real crashes as fixtures: ``abi-harness fixture record``, on a live capture kernel or a QEMU guest.

* abi: what a live kernel's dump ABI holds, read only (every file the spec knows);
* fixture: a recorded fixture, the core beside its manifest, from a live capture
  kernel (``record_live``) or the oracle's guest (``record_qemu``).
"""

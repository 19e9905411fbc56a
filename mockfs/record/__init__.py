"""Real crashes as fixtures: ``abi-harness fixture record``, on a live capture kernel or a QEMU guest."""

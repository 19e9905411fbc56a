"""The real tools the harness drives: where they are, and Debian packages unpacked privately.

Some tools (kdump-tools, a Debian kernel) come in packages whose maintainer
scripts change the machine they are installed on (kdump-tools sets
``USE_KDUMP=1`` and adds ``crashkernel=`` to GRUB). :mod:`mockfs.tools.debs`
unpacks such packages into a private directory instead, without running any
script; :func:`find_tool` looks for a program on PATH, in the system
directories, then in those private trees.
"""

"""``python -m abi_harness``: the same as the ``abi-harness`` command."""

import sys

from .cli import main

sys.exit(main())
